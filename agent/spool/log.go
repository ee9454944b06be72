// Package spool keeps MQTT messages on disk while the broker is unreachable, so that a
// prediction made during an outage, or before a crash, still arrives.
//
// A Log is one append-only queue: numbered segment files of records, and a cursor file
// that says how far delivery has got. Every record carries a sync marker, its length and a
// CRC-32C of its body. Appends are synced to disk before they return, so a record survives
// kill -9; an append that fails (disk full, I/O error) is cut off again, so no partial
// record is left between good ones. A record that is torn or corrupt all the same (a power
// cut, a bad sector) is never handed out: the reader skips to the next sync marker whose
// record checks out, reports what it skipped, and delivers every valid record behind it,
// also after a restart. Segments that have been delivered are deleted, and a log that has
// delivered everything is cut back to zero bytes, so the disk space is there for the next
// outage.
//
// Delivery may run ahead of acknowledgement: Ahead and Advance hand out records in order
// without removing them, PopAt removes the oldest once it is acknowledged, and Rewind hands
// out again from the oldest after a failure.
//
// A Store holds one Log per class of message and enforces the byte and age bounds,
// dropping the configured class first.
//
// This package is pure Go and knows nothing of MQTT.
package spool

import (
	"bytes"
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

// On disk a record is: the sync marker (4 bytes), the body's length (4, little endian), the
// CRC-32C of the body (4), then the body: version, QoS, retained, created (Unix ns, 8),
// topic length (2), topic, payload. Records of version 1, written before the sync marker,
// had only the length and the CRC in front; they are still read.
const (
	headerSize       = 12
	legacyHeaderSize = 8
	bodyFixed        = 1 + 1 + 1 + 8 + 2
	recordVersion    = 2
	legacyVersion    = 1
	maxRecordBytes   = 64 << 20
	// segmentBytes is where a new segment file starts. Smaller segments give disk space
	// back sooner while a backlog drains.
	segmentBytes  = 4 << 20
	cursorFile    = "cursor"
	segmentSuffix = ".seg"
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	syncMarker = []byte{0xC5, 'c', 'v', 'S'}
)

// ErrEmpty is returned by Peek and Ahead when no record is waiting.
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
	copy(buf, syncMarker)
	binary.LittleEndian.PutUint32(buf[4:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[8:], crc32.Checksum(body, castagnoli))
	return buf, nil
}

// decodeBody reads a record body whose CRC has been checked.
func decodeBody(body []byte, version byte) (Record, error) {
	if len(body) < bodyFixed || body[0] != version {
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

// readRecord reads and checks the record at pos of f, whose valid bytes end at limit. It
// returns the record and its size on disk, or ok false when no valid record starts there.
func readRecord(f io.ReaderAt, pos, limit int64) (rec Record, size int64, ok bool, err error) {
	var hdr [headerSize]byte
	n, err := f.ReadAt(hdr[:], pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return Record{}, 0, false, err
	}
	hsize, version := int64(headerSize), byte(recordVersion)
	var blen int64
	var sum uint32
	switch {
	case n >= headerSize && bytes.Equal(hdr[:4], syncMarker):
		blen, sum = int64(binary.LittleEndian.Uint32(hdr[4:])), binary.LittleEndian.Uint32(hdr[8:])
	case n >= legacyHeaderSize:
		hsize, version = legacyHeaderSize, legacyVersion
		blen, sum = int64(binary.LittleEndian.Uint32(hdr[0:])), binary.LittleEndian.Uint32(hdr[4:])
	default:
		return Record{}, 0, false, nil
	}
	if blen < bodyFixed || blen > maxRecordBytes || pos+hsize+blen > limit {
		return Record{}, 0, false, nil
	}
	body := make([]byte, blen)
	if _, err := f.ReadAt(body, pos+hsize); err != nil {
		if errors.Is(err, io.EOF) {
			return Record{}, 0, false, nil
		}
		return Record{}, 0, false, err
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return Record{}, 0, false, nil
	}
	rec, derr := decodeBody(body, version)
	if derr != nil {
		return Record{}, 0, false, nil
	}
	return rec, hsize + blen, true, nil
}

// nextValid finds the first valid record at or after pos (before limit): it tries pos
// itself, then every sync marker after it. It returns where that record starts (limit when
// there is none), the record and its size.
func nextValid(f io.ReaderAt, pos, limit int64) (start int64, rec Record, size int64, err error) {
	if rec, size, ok, err := readRecord(f, pos, limit); err != nil || ok {
		return pos, rec, size, err
	}
	buf := make([]byte, 64<<10)
	for from := pos + 1; from < limit; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), limit-from)], from)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, Record{}, 0, err
		}
		if n == 0 {
			break
		}
		chunk := buf[:n]
		for i := 0; ; {
			j := bytes.Index(chunk[i:], syncMarker[:1])
			if j < 0 {
				break
			}
			at := from + int64(i+j)
			if rec, size, ok, err := readRecord(f, at, limit); err != nil || ok {
				return at, rec, size, err
			}
			i += j + 1
		}
		from += int64(n)
	}
	return limit, Record{}, 0, nil
}

// segment is one file of records. size is where its valid records end: appends that
// failed are never counted in it.
type segment struct {
	seq  uint64
	size int64
}

// Pos identifies a record's place in a Log.
type Pos struct {
	seq uint64
	off int64
}

func (p Pos) before(q Pos) bool { return p.seq < q.seq || (p.seq == q.seq && p.off < q.off) }

// Log is one persistent FIFO of records. It is safe for concurrent use.
type Log struct {
	dir string

	mu    sync.Mutex
	segs  []segment // oldest first; the last one takes appends
	w     *os.File  // the last segment, open for append; nil after a write that could not be undone
	files map[uint64]*os.File
	off   int64 // read offset of the oldest record in segs[0]
	next  Pos   // the next record Ahead hands out; never before the oldest
	// nextSize is the size of the record at next, once Ahead has read it (0: not read).
	nextSize int64
	count    int
	bytes    int64
	pops     int
	saved    time.Time
	// skipped counts bytes of corrupt records passed over; onRepair hears of each.
	skipped  int64
	onRepair func(msg string)
}

// OpenLog opens or creates the log in dir. onRepair, if set, hears about records cut off or
// skipped as torn or corrupt.
func OpenLog(dir string, onRepair func(string)) (*Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	l := &Log{dir: dir, onRepair: onRepair, saved: time.Now(), files: map[uint64]*os.File{}}
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
		if i == 0 {
			l.off = min(start, size) // the cursor may point past a cut tail
		}
		l.segs[i].size = size
		l.count += n
		l.bytes += bytes
	}
	if len(l.segs) == 0 {
		if err := l.newSegment(1); err != nil {
			return nil, err
		}
	} else if l.w, err = os.OpenFile(l.path(l.segs[len(l.segs)-1].seq), os.O_WRONLY|os.O_APPEND, 0o640); err != nil {
		return nil, err
	}
	l.next = Pos{l.segs[0].seq, l.off}
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

func (l *Log) repaired(format string, args ...any) {
	if l.onRepair != nil {
		l.onRepair(fmt.Sprintf(format, args...))
	}
}

// scan checks every record of a segment. Corrupt stretches between valid records are left
// for the reader to skip (and reported); a torn or corrupt tail is cut off. It returns the
// valid size, and the records and bytes at or after start.
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
	end, pos := st.Size(), int64(0)
	for pos < end {
		at, _, rsize, err := nextValid(f, pos, end)
		if err != nil {
			return 0, 0, 0, err
		}
		if at == end {
			break
		}
		if at > pos {
			l.repaired("%s: %d bytes of corrupt records at offset %d are skipped; the valid records behind them are kept", l.path(seq), at-pos, pos)
		}
		if at >= start {
			n++
			bytes += rsize
		}
		pos = at + rsize
	}
	if pos < end {
		l.repaired("%s: cut %d bytes of a torn or corrupt record at offset %d", l.path(seq), end-pos, pos)
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

// Append writes r at the end and syncs it to disk. When the write or the sync fails, the
// partial record is cut off again (or, if even that fails, appends go on in a new segment),
// so a failed append never leaves a torn record before later good ones.
func (l *Log) Append(r Record) error {
	buf, err := r.encode()
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := &l.segs[len(l.segs)-1]
	if l.w == nil || (last.size > 0 && last.size+int64(len(buf)) > segmentBytes) {
		if err := l.newSegment(last.seq + 1); err != nil {
			return err
		}
		last = &l.segs[len(l.segs)-1]
	}
	_, err = l.w.Write(buf)
	if err == nil {
		err = l.w.Sync()
	}
	if err != nil {
		if terr := l.w.Truncate(last.size); terr != nil {
			l.w.Close()
			l.w = nil // the tail past last.size is never read; it is cut when the log is opened again
		}
		return err
	}
	last.size += int64(len(buf))
	l.count++
	l.bytes += int64(len(buf))
	return nil
}

// file returns segment seq open for reading.
func (l *Log) file(seq uint64) (*os.File, error) {
	if f, ok := l.files[seq]; ok {
		return f, nil
	}
	f, err := os.Open(l.path(seq))
	if err != nil {
		return nil, err
	}
	l.files[seq] = f
	return f, nil
}

func (l *Log) segIndex(seq uint64) int {
	for i, s := range l.segs {
		if s.seq == seq {
			return i
		}
	}
	return -1
}

// at returns the first valid record at or after p, moving to later segments at the end of
// one. skipped is the corrupt bytes passed over. It returns ErrEmpty past the last record.
func (l *Log) at(p Pos) (rec Record, start Pos, size, skipped int64, err error) {
	i := l.segIndex(p.seq)
	if i < 0 {
		i, p = 0, Pos{l.segs[0].seq, l.off}
	}
	for ; i < len(l.segs); i++ {
		seg := l.segs[i]
		if i > 0 && p.seq != seg.seq {
			p = Pos{seg.seq, 0}
		}
		if p.off >= seg.size {
			continue
		}
		f, err := l.file(seg.seq)
		if err != nil {
			return Record{}, p, 0, 0, fmt.Errorf("spool %s: %w", l.dir, err)
		}
		from := p.off
		at, rec, size, err := nextValid(f, from, seg.size)
		if err != nil {
			return Record{}, p, 0, 0, fmt.Errorf("spool %s: %w", l.path(seg.seq), err)
		}
		skipped += at - from
		if at < seg.size {
			return rec, Pos{seg.seq, at}, size, skipped, nil
		}
		p = Pos{seg.seq, seg.size}
	}
	return Record{}, p, 0, skipped, ErrEmpty
}

// head finds the oldest record, passing over (and reporting) corrupt bytes before it.
func (l *Log) head() (Record, int64, error) {
	if l.count == 0 {
		return Record{}, 0, ErrEmpty
	}
	rec, start, size, skipped, err := l.at(Pos{l.segs[0].seq, l.off})
	if skipped > 0 {
		l.skipped += skipped
		l.repaired("%s: skipped %d bytes of corrupt records before offset %d", l.dir, skipped, start.off)
	}
	if errors.Is(err, ErrEmpty) {
		// the counts promised more than the files hold (changed behind the log's back)
		l.repaired("%s: %d records counted but none readable; the count is reset", l.dir, l.count)
		l.count, l.bytes = 0, 0
	}
	if err != nil {
		return Record{}, 0, err
	}
	l.moveHead(start)
	return rec, size, nil
}

// moveHead sets the oldest record's place, deleting segments before it.
func (l *Log) moveHead(p Pos) {
	for len(l.segs) > 1 && l.segs[0].seq < p.seq {
		l.removeFirst()
	}
	if l.segs[0].seq == p.seq {
		l.off = p.off
	}
	if l.next.before(Pos{l.segs[0].seq, l.off}) {
		l.setNext(Pos{l.segs[0].seq, l.off})
	}
}

func (l *Log) removeFirst() {
	seq := l.segs[0].seq
	if f, ok := l.files[seq]; ok {
		f.Close()
		delete(l.files, seq)
	}
	os.Remove(l.path(seq))
	l.segs = l.segs[1:]
	l.off = 0
}

// Peek returns the oldest record and its place without removing it, or ErrEmpty.
func (l *Log) Peek() (Record, Pos, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec, _, err := l.head()
	return rec, Pos{l.segs[0].seq, l.off}, err
}

// Ahead returns the next record to hand out (the oldest one not yet handed out since the
// last Rewind) without moving on; Advance moves past it. ErrEmpty: all are handed out.
func (l *Log) Ahead() (Record, Pos, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == 0 {
		return Record{}, l.next, ErrEmpty
	}
	rec, start, size, _, err := l.at(l.next)
	if err == nil {
		l.next, l.nextSize = start, size
	}
	return rec, start, err
}

// Advance moves the hand-out position past the record at p, as returned by Ahead.
func (l *Log) Advance(p Pos) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p != l.next || l.nextSize == 0 {
		return
	}
	l.next.off += l.nextSize
	l.nextSize = 0
}

// Rewind hands out again from the oldest record.
func (l *Log) Rewind() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setNext(Pos{l.segs[0].seq, l.off})
}

func (l *Log) setNext(p Pos) { l.next, l.nextSize = p, 0 }

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
	_, size, err := l.head()
	if at != nil && *at != (Pos{l.segs[0].seq, l.off}) {
		return nil
	}
	if err != nil {
		return err
	}
	l.off += size
	l.count--
	l.bytes -= size
	l.moveHead(Pos{l.segs[0].seq, l.off})
	for len(l.segs) > 1 && l.off >= l.segs[0].size {
		l.removeFirst()
		l.moveHead(Pos{l.segs[0].seq, 0})
	}
	if l.count == 0 {
		return l.compact()
	}
	l.pops++
	if l.pops >= 64 || time.Since(l.saved) > time.Second {
		return l.saveCursor()
	}
	return nil
}

// compact gives the disk space back once nothing valid waits: earlier segments are deleted
// and the last is cut to zero bytes, then the cursor is saved at its start. (A crash
// between the two leaves a cursor past the end, which OpenLog reads as the end.)
func (l *Log) compact() error {
	for len(l.segs) > 1 {
		l.removeFirst()
	}
	switch {
	case l.w == nil: // the writer is gone after a failed append: the next append starts a new segment
		l.off = l.segs[0].size
	case l.segs[0].size > 0:
		if err := l.w.Truncate(0); err != nil {
			return err
		}
		l.segs[0].size, l.off = 0, 0
	}
	l.setNext(Pos{l.segs[0].seq, l.off})
	return l.saveCursor()
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

// DiskBytes is the size of the segment files: the records waiting, plus delivered or
// dropped records in segments not yet finished.
func (l *Log) DiskBytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// Skipped is the corrupt bytes passed over since the log was opened.
func (l *Log) Skipped() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.skipped
}

// Close saves the cursor and closes the files.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.saveCursor()
	for seq, f := range l.files {
		f.Close()
		delete(l.files, seq)
	}
	if l.w != nil {
		l.w.Close()
	}
	return err
}
