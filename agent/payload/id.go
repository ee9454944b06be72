package payload

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"time"
)

// NewID returns a random (version 4) UUID, the id of a message.
func NewID() string { return string(AppendID(make([]byte, 0, 36))) }

// AppendID appends a random (version 4) UUID, 36 characters, to dst.
func AppendID(dst []byte) []byte {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	for i, part := range [...][2]int{{0, 4}, {4, 6}, {6, 8}, {8, 10}, {10, 16}} {
		if i > 0 {
			dst = append(dst, '-')
		}
		dst = hex.AppendEncode(dst, b[part[0]:part[1]])
	}
	return dst
}

// Ms is d in milliseconds, to the microsecond: the unit of every latency in the messages.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Round rounds v to digits decimals, as the messages carry their figures.
func Round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}
