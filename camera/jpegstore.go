package camera

import (
	"os"
	"sync"
	"syscall"

	"gocv.io/x/gocv"
)

// JPEGStore holds the JPEG of frames kept for a while (a camera's ring of recent frames) in
// blocks of memory of its own, mapped from the kernel, filled in order, and unmapped once no
// frame holds a part of them.
//
// Why: a kept JPEG (0.12 MB at 1080p) lives for seconds, while a decoded frame (6.2 MB)
// lives for milliseconds. From the same glibc heap, the kept JPEGs end up scattered between
// the places where the frames come and go, and the heap can neither reuse the holes for a
// frame nor give them back: with 4 cameras at 1080p, the private memory crept up by a fifth
// in half an hour (docs/benchmarks.md, "Cameras at 1080p"). Held apart, the JPEGs cost their
// own bytes and the heap serves the short-lived buffers alone.
//
// A store is safe for use by several goroutines. Its zero value is ready to use; Close it
// when its owner goes.
type JPEGStore struct {
	mu     sync.Mutex
	cur    *jpegBlock // the block being filled; nil: none yet, or closed
	closed bool
	mapped int // bytes mapped, for tests and figures
}

// jpegBlock is one mapping of the store. Frames hold parts of it; it is unmapped when the
// last of them lets go and it is no longer the block being filled.
type jpegBlock struct {
	mem  []byte
	used int // bytes handed out from its start
	refs int // frames that hold a part of it
}

// jpegBlockBytes is the size of a block: 16 JPEGs of a 1080p frame at 0.12 MB. A JPEG larger
// than a quarter of it (a 4K frame's) gets a mapping of its own, its size rounded up to pages,
// so that no block is left more than a quarter empty when it fills. While frames leave in the
// order they came, as from a ring, a store thus maps at most what its frames hold, a third
// more, and two blocks: the one being filled, and the oldest, partly let go.
const jpegBlockBytes = 2 << 20

// put copies b into the store and returns a 1×len(b) CV_8U Mat over the copy, and the block
// to release when the Mat is closed. ok is false when the store is closed or the kernel gives
// no memory: the caller keeps its JPEG where it is.
func (s *JPEGStore) put(b []byte) (m gocv.Mat, blk *jpegBlock, ok bool) {
	if len(b) == 0 {
		return gocv.Mat{}, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return gocv.Mat{}, nil, false
	}
	n := (len(b) + 15) &^ 15 // each part starts 16-aligned
	blk = s.cur
	own := n > jpegBlockBytes/4
	if own || blk == nil || blk.used+n > len(blk.mem) {
		size := jpegBlockBytes
		if own {
			size = (n + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
		}
		next := s.mapBlock(size)
		if next == nil {
			return gocv.Mat{}, nil, false
		}
		if own {
			blk = next // a mapping of its own; the block being filled stays
		} else {
			s.retire(s.cur)
			s.cur, blk = next, next
		}
	}
	part := blk.mem[blk.used : blk.used+len(b) : blk.used+len(b)]
	copy(part, b)
	m, err := gocv.NewMatFromBytes(1, len(b), gocv.MatTypeCV8U, part)
	if err != nil {
		if blk != s.cur {
			s.unmap(blk)
		}
		return gocv.Mat{}, nil, false
	}
	blk.used += n
	blk.refs++
	return m, blk, true
}

// release notes that a frame let go of its part of blk (its Mat closed first).
func (s *JPEGStore) release(blk *jpegBlock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	blk.refs--
	if blk.refs > 0 {
		return
	}
	if blk == s.cur {
		blk.used = 0 // filled again from its start
		return
	}
	s.unmap(blk)
}

// retire lets the block being filled go: unmapped now if no frame holds a part of it, else
// when the last one lets go.
func (s *JPEGStore) retire(blk *jpegBlock) {
	if blk != nil && blk.refs == 0 {
		s.unmap(blk)
	}
}

// mapBlock maps a block of size bytes; nil when the kernel gives no memory (the caller then
// keeps its JPEG where it is, so the reason is not needed).
func (s *JPEGStore) mapBlock(size int) *jpegBlock {
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil
	}
	s.mapped += size
	return &jpegBlock{mem: mem}
}

func (s *JPEGStore) unmap(blk *jpegBlock) {
	if blk.mem == nil {
		return
	}
	s.mapped -= len(blk.mem)
	_ = syscall.Munmap(blk.mem) // fails only for a range that is not mapped
	blk.mem = nil
}

// Mapped is the memory the store has mapped, in bytes: its frames' JPEGs and the rest of the
// block being filled.
func (s *JPEGStore) Mapped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mapped
}

// Close takes no more JPEGs and unmaps the block being filled once no frame holds a part of
// it. Frames it holds stay valid until they are closed.
func (s *JPEGStore) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.retire(s.cur)
	s.cur = nil
}

// StoreJPEG moves the JPEG of a frame from a JPEG source into s, freeing the buffer it was
// read into, for a frame kept for a while. Any other frame, one already in a store, or a
// closed one is left as it is; so is the frame when s takes no more.
func (f *Frame) StoreJPEG(s *JPEGStore) {
	j := f.jpeg
	if j == nil || s == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.held != nil || j.data.Ptr() == nil {
		return
	}
	b, err := j.data.DataPtrUint8()
	if err != nil {
		return
	}
	m, blk, ok := s.put(b)
	if !ok {
		return
	}
	j.data.Close()
	j.data, j.held, j.store = m, blk, s
}
