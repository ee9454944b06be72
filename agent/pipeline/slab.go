package pipeline

import (
	"unsafe"

	"github.com/cvedge/cvedge/agent/payload"
)

// slab cuts small slices of T out of larger blocks, so that the many small parts of a frame's
// message (its tags, boxes, classifications) cost an allocation per block rather than one
// each. A block is never reused: the collector frees it once no message holds a part of it,
// so a message may be kept (by the ring, a sample, the publisher) as long as it is needed,
// and a part handed to another goroutine stays that goroutine's. A slab belongs to one
// goroutine.
type slab[T any] struct {
	block []T
}

// slabBytes is the size of a block; a request for more than a quarter of it gets a slice of
// its own.
const slabBytes = 16 << 10

// take returns a zeroed slice of n elements, with no room beyond them (an append allocates
// rather than write over the next part). It is never nil, so that an empty list encodes as
// [] in JSON.
func (s *slab[T]) take(n int) []T {
	if n == 0 {
		return []T{}
	}
	if n > len(s.block) {
		var zero T
		per := max(16, slabBytes/max(1, int(unsafe.Sizeof(zero))))
		if n > per/4 {
			return make([]T, n)
		}
		s.block = make([]T, per)
	}
	out := s.block[:n:n]
	s.block = s.block[n:]
	return out
}

// one returns a pointer to a new zero T.
func (s *slab[T]) one() *T { return &s.take(1)[0] }

// idBatch hands out random (version 4) UUIDs, made idsPerBatch at a time into one string
// that each ID is a part of: one allocation per batch rather than per ID.
type idBatch struct {
	batch string
}

const idsPerBatch = 32

func (b *idBatch) next() string {
	if len(b.batch) == 0 {
		buf := make([]byte, 0, idsPerBatch*36)
		for range idsPerBatch {
			buf = payload.AppendID(buf)
		}
		b.batch = string(buf)
	}
	id := b.batch[:36]
	b.batch = b.batch[36:]
	return id
}
