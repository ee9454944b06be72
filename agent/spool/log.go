// Package spool keeps MQTT messages on disk while the broker is unreachable, so that a
// prediction made during an outage, or before a crash, still arrives.
//
// A Log is one append-only queue: numbered segment files of CRC-checked records, and a
// cursor file that says how far delivery has got. Appends are synced to disk before they
// return, so a record survives kill -9. A torn record at the end of a segment (a crash
// mid-write) is cut off when the log is opened. A Store holds one Log per class of message
// and enforces the byte and age bounds, dropping the configured class first.
//
// This package is pure Go and knows nothing of MQTT.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one spooled message.
type Record struct {
	Topic    string
	QoS      byte
	Retained bool
	Created  time.Time
	Payload  []byte
}

const (
	headerSize     = 8 // body length, CRC-32C of the body
	bodyFixed      = 1 + 1 + 1 + 8 + 2
	recordVersion  = 1
	maxRecordBytes = 64 << 20
	segmentBytes   = 8 << 20
	cursorFile     = "cursor"
	segmentSuffix  = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrEmpty is returned by Peek when nothing is spooled.
var ErrEmpty = errors.New("spool empty")

func (r Record) size() int64 { return int64(headerSize + bodyFixed + len(r.Topic) + len(r.Payload)) }

func (r Record) encode() ([]byte, error) {
	if len(r.Topic) > 0xffff {
		return nil, fmt.Errorf("topic of %d bytes is too long", len(r.Topic))
	}
	if r.size() > maxRecordBytes {
		return nil, fmt.Errorf("message of %d bytes is larger than the spool takes (%d)", r.size(), maxRecordBytes)
	}
	buf := make([]byte, r.size())
	body := buf[headerSize:]
	body[0] = recordVersion
	body[1] = r.QoS
	if r.Retained {
		body[2] = 1
	}
	binary.LittleEndian.PutUint64(body[3:], uint64(r.Created.UnixNano()))
	binary.LittleEndian.PutUint16(body[11:], uint16(len(r.Topic)))
	copy(body[bodyFixed:], r.Topic)
	copy(body[bodyFixed+len(r.Topic):], r.Payload)
	binary.LittleEndian.PutUint32(buf[0:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(body, castagnoli))
	return buf, nil
}

// decodeBody reads a record body whose CRC has been checked.
func decodeBody(body []byte) (Record, error) {
	if len(body) < bodyFixed || body[0] != recordVersion {
		return Record{}, errors.New("unknown record layout")
	}
	n := int(binary.LittleEndian.Uint16(body[11:]))
	if bodyFixed+n > len(body) {
		return Record{}, errors.New("topic longer than the record")
	}
	return Record{
		QoS:      body[1],
		Retained: body[2] == 1,
		Created:  time.Unix(0, int64(binary.LittleEndian.Uint64(body[3:]))),
		Topic:    string(body[bodyFixed : bodyFixed+n]),
		Payload:  append([]byte(nil), body[bodyFixed+n:]...),
	}, nil
}

// segment is one file of records.
type segment struct {
	seq  uint64
	size int64
}

// Log is one persistent FIFO of records. It is safe for concurrent use.
type Log struct {
	dir string

	mu       sync.Mutex
	segs     []segment // oldest first; the last one takes appends
	w        *os.File  // the last segment, open for append
	r        *os.File  // the first segment, open for reading
	rseq     uint64    // segment r belongs to
	off      int64     // read offset in segs[0]
	count    int
	bytes    int64
	pops     int
	saved    time.Time
	onRepair func(msg string)
}

// OpenLog opens or creates the log in dir. onRepair, if set, hears about records cut off as
// torn or corrupt.
func OpenLog(dir string, onRepair func(string)) (*Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	l := &Log{dir: dir, onRepair: onRepair, saved: time.Now()}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			continue
		}
		l.segs = append(l.segs, segment{seq: seq})
	}
	sort.Slice(l.segs, func(i, j int) bool { return l.segs[i].seq < l.segs[j].seq })
	cseq, coff := l.readCursor()
	// drop segments delivered before the cursor
	for len(l.segs) > 0 && l.segs[0].seq < cseq {
		os.Remove(l.path(l.segs[0].seq))
		l.segs = l.segs[1:]
	}
	if len(l.segs) == 0 || l.segs[0].seq != cseq {
		coff = 0
	}
	for i := range l.segs {
		start := int64(0)
		if i == 0 {
			start = coff
		}
		size, n, bytes, err := l.scan(l.segs[i].seq, start)
		if err != nil {
			return nil, err
		}
		if i == 0 && start > size {
			start = size // the cursor pointed past a cut tail
		}
		l.segs[i].size = size
		l.count += n
		l.bytes += bytes
		if i == 0 {
			l.off = start
		}
	}
	if len(l.segs) == 0 {
		if err := l.newSegment(1); err != nil {
			return nil, err
		}
	} else if l.w, err = os.OpenFile(l.path(l.segs[len(l.segs)-1].seq), os.O_WRONLY|os.O_APPEND, 0o640); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) path(seq uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%016d%s", seq, segmentSuffix))
}

func (l *Log) readCursor() (uint64, int64) {
	raw, err := os.ReadFile(filepath.Join(l.dir, cursorFile))
	if err != nil {
		return 0, 0
	}
	var seq uint64
	var off int64
	if _, err := fmt.Sscanf(string(raw), "%d %d", &seq, &off); err != nil || off < 0 {
		return 0, 0
	}
	return seq, off
}

// scan validates the records of a segment from offset start. It cuts the file at the first
// torn or corrupt record and returns the valid size, and the records and bytes after start.
func (l *Log) scan(seq uint64, start int64) (size int64, n int, bytes int64, err error) {
	f, err := os.OpenFile(l.path(seq), os.O_RDWR, 0o640)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	var hdr [headerSize]byte
	pos := int64(0)
	for pos < st.Size() {
		if _, err := f.ReadAt(hdr[:], pos); err != nil {
			break
		}
		blen := int64(binary.LittleEndian.Uint32(hdr[0:]))
		if blen < bodyFixed || blen > maxRecordBytes || pos+headerSize+blen > st.Size() {
			break
		}
		body := make([]byte, blen)
		if _, err := f.ReadAt(body, pos+headerSize); err != nil || crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		if pos >= start {
			n++
			bytes += headerSize + blen
		}
		pos += headerSize + blen
	}
	if pos < st.Size() {
		if l.onRepair != nil {
			l.onRepair(fmt.Sprintf("%s: cut %d bytes of a torn or corrupt record at offset %d", l.path(seq), st.Size()-pos, pos))
		}
		if err := f.Truncate(pos); err != nil {
			return 0, 0, 0, err
		}
	}
	return pos, n, bytes, nil
}

func (l *Log) newSegment(seq uint64) error {
	f, err := os.OpenFile(l.path(seq), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	if l.w != nil {
		l.w.Close()
	}
	l.w = f
	l.segs = append(l.segs, segment{seq: seq})
	return nil
}

// Append writes r at the end and syncs it to disk.
func (l *Log) Append(r Record) error {
	buf, err := r.encode()
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := &l.segs[len(l.segs)-1]
	if last.size > 0 && last.size+int64(len(buf)) > segmentBytes {
		if err := l.newSegment(last.seq + 1); err != nil {
			return err
		}
		last = &l.segs[len(l.segs)-1]
	}
	if _, err := l.w.Write(buf); err != nil {
		return err
	}
	if err := l.w.Sync(); err != nil {
		return err
	}
	last.size += int64(len(buf))
	l.count++
	l.bytes += int64(len(buf))
	return nil
}

// Pos identifies a record's place in a Log.
type Pos struct {
	seq uint64
	off int64
}

// Peek returns the oldest record and its place without removing it, or ErrEmpty.
func (l *Log) Peek() (Record, Pos, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec, _, err := l.peek()
	return rec, Pos{l.rseq, l.off}, err
}

func (l *Log) peek() (Record, int64, error) {
	if l.count == 0 {
		return Record{}, 0, ErrEmpty
	}
	l.skipFinished()
	seg := l.segs[0]
	if l.r == nil || l.rseq != seg.seq {
		if l.r != nil {
			l.r.Close()
		}
		f, err := os.Open(l.path(seg.seq))
		if err != nil {
			return Record{}, 0, err
		}
		l.r, l.rseq = f, seg.seq
	}
	var hdr [headerSize]byte
	if _, err := l.r.ReadAt(hdr[:], l.off); err != nil {
		return Record{}, 0, fmt.Errorf("spool %s: %w", l.dir, err)
	}
	blen := int64(binary.LittleEndian.Uint32(hdr[0:]))
	if blen > maxRecordBytes {
		return Record{}, 0, fmt.Errorf("spool %s: record of %d bytes at %d", l.dir, blen, l.off)
	}
	body := make([]byte, blen)
	if _, err := l.r.ReadAt(body, l.off+headerSize); err != nil && !errors.Is(err, io.EOF) {
		return Record{}, 0, err
	}
	rec, err := decodeBody(body)
	return rec, headerSize + blen, err
}

// skipFinished moves past segments that have been read to the end and deletes them.
func (l *Log) skipFinished() {
	for len(l.segs) > 1 && l.off >= l.segs[0].size {
		if l.r != nil && l.rseq == l.segs[0].seq {
			l.r.Close()
			l.r = nil
		}
		os.Remove(l.path(l.segs[0].seq))
		l.segs = l.segs[1:]
		l.off = 0
	}
}

// Pop removes the oldest record (to drop it).
func (l *Log) Pop() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pop(nil)
}

// PopAt removes the oldest record if it is still the one at p (after it was delivered); it
// does nothing when that record was dropped meanwhile.
func (l *Log) PopAt(p Pos) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pop(&p)
}

func (l *Log) pop(at *Pos) error {
	if l.count == 0 {
		if at != nil {
			return nil
		}
		return ErrEmpty
	}
	_, size, err := l.peek()
	if at != nil && (at.seq != l.rseq || at.off != l.off) {
		return nil
	}
	if err != nil {
		return err
	}
	l.off += size
	l.count--
	l.bytes -= size
	l.skipFinished()
	l.pops++
	if l.pops >= 64 || time.Since(l.saved) > time.Second {
		return l.saveCursor()
	}
	return nil
}

// saveCursor records the read position; losing it only means redelivery.
func (l *Log) saveCursor() error {
	l.pops, l.saved = 0, time.Now()
	tmp := filepath.Join(l.dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", l.segs[0].seq, l.off)), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(l.dir, cursorFile))
}

// Len is the number of records waiting.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// Bytes is the size of the records waiting.
func (l *Log) Bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// Close saves the cursor and closes the files.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.saveCursor()
	if l.r != nil {
		l.r.Close()
	}
	if l.w != nil {
		l.w.Close()
	}
	return err
}
