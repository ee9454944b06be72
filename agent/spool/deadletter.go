package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DeadLetter keeps messages that can never be delivered (larger than the broker takes, or
// refused every time they are sent), so that they are not retried forever and not lost
// either: each becomes one JSON file an operator can read, fix and republish. The folder is
// bounded: past MaxBytes the oldest files go.
type DeadLetter struct {
	dir      string
	maxBytes int64

	mu    sync.Mutex
	seq   uint64
	count uint64
}

// Letter is the file written for one message set aside.
type Letter struct {
	Topic    string    `json:"topic"`
	QoS      byte      `json:"qos"`
	Retained bool      `json:"retained"`
	Created  time.Time `json:"created"`
	SetAside time.Time `json:"setAside"`
	// Reason says why the message could not be delivered.
	Reason string `json:"reason"`
	Bytes  int    `json:"bytes"`
	// Payload holds the message when it is JSON (as the agent's messages are);
	// PayloadBase64 otherwise.
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 []byte          `json:"payloadBase64,omitempty"`
}

// OpenDeadLetter opens (or creates) the dead-letter folder dir, bounded to maxBytes (0: no
// bound).
func OpenDeadLetter(dir string, maxBytes int64) (*DeadLetter, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("dead-letter folder %s: %w", dir, err)
	}
	return &DeadLetter{dir: dir, maxBytes: maxBytes}, nil
}

// Dir is the folder of the letters.
func (d *DeadLetter) Dir() string { return d.dir }

// Count is the messages set aside since start.
func (d *DeadLetter) Count() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count
}

// Put writes r with the reason, then trims the folder to its bound. It returns the file's
// path.
func (d *DeadLetter) Put(r Record, reason string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now().UTC()
	l := Letter{Topic: r.Topic, QoS: r.QoS, Retained: r.Retained, Created: r.Created.UTC(), SetAside: now, Reason: reason, Bytes: len(r.Payload)}
	if json.Valid(r.Payload) {
		l.Payload = r.Payload
	} else {
		l.PayloadBase64 = r.Payload
	}
	body, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return "", err
	}
	d.seq++
	name := fmt.Sprintf("%s-%06d.json", now.Format("20060102T150405.000Z"), d.seq%1000000)
	path := filepath.Join(d.dir, name)
	if d.maxBytes > 0 && int64(len(body)) > d.maxBytes {
		return "", fmt.Errorf("message of %d bytes is larger than the dead-letter folder's bound (spool.dead_letter_mb)", len(body))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o640); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	d.count++
	return path, d.trim()
}

// trim deletes the oldest letters until the folder is within its bound.
func (d *DeadLetter) trim() error {
	if d.maxBytes <= 0 {
		return nil
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	type file struct {
		name string
		size int64
	}
	var files []file
	var total int64
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, file{e.Name(), info.Size()})
		total += info.Size()
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var errs []error
	for i := 0; total > d.maxBytes && i < len(files)-1; i++ {
		if err := os.Remove(filepath.Join(d.dir, files[i].name)); err != nil {
			errs = append(errs, err)
			continue
		}
		total -= files[i].size
	}
	return errors.Join(errs...)
}
