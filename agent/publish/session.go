package publish

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/cvedge/cvedge/agent/spool"
)

// poisonAfter is how many times in a row the broker may drop the connection while the same
// spooled message is the one in flight before that message is set aside; maxPoison bounds
// how many set-aside messages are remembered (to skip their copies).
const (
	poisonAfter = 3
	maxPoison   = 1024
)

// connectionLost is called when the connection drops. When the broker closed a connection
// that lasted only a little, the oldest message paho keeps for resending (the one it sends
// first, alone, after each reconnection) counts the loss; one that reaches poisonAfter
// such losses in a row is set aside and removed from paho's session, so that it is not
// sent again and the messages behind it flow. It records when, for the subscriptions'
// duplicates (subscriptions.go).
func (p *Publisher) connectionLost(err error) {
	p.lostAt.Store(int64(mono()))
	up := time.Since(time.Unix(0, p.upSince.Load()))
	if up > shortConnection || !closedByBroker(err) {
		p.session.forgive()
		return
	}
	pub := p.session.countLoss()
	if pub == nil {
		return
	}
	p.poisonMu.Lock()
	if p.poisonSet == nil || len(p.poisonSet) >= maxPoison { // bounded: such messages are rare
		p.poisonSet = map[uint64]bool{}
	}
	k := poisonKey(pub.TopicName, pub.Payload)
	known := p.poisonSet[k]
	if !known {
		p.poisonSet[k] = true
		p.poison.Add(1)
	}
	p.poisonMu.Unlock()
	if !known {
		p.putAside(spool.Record{Topic: pub.TopicName, QoS: pub.Qos, Retained: pub.Retain, Created: time.Now(), Payload: pub.Payload}, spool.Predictions,
			fmt.Sprintf("the broker closed the connection each of the %d times this message was sent (over its message size limit, or refused by its policy)", poisonAfter))
	}
}

// closedByBroker tells a connection the broker closed (reset, end of stream) from one that
// timed out, as a frozen broker or a bad network does.
func closedByBroker(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF"))
}

// shortConnection is how long a connection may last and still count as closed over the
// message paho sent first on it.
const shortConnection = 10 * time.Second

func poisonKey(topic string, payload []byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum64()
}

// sessionStore is paho's in-memory session store, which keeps the messages in flight to
// send them again after a reconnection. It hands them back oldest first (paho's own store
// has no order), so that with one message at a time in flight while resuming, the first
// message after a reconnection is the oldest one not acknowledged. It counts the losses of
// that message.
type sessionStore struct {
	*paho.MemoryStore
	mu    sync.Mutex
	seq   uint64
	order map[string]stored
	// first and losses: the oldest message at the last loss, and the losses in a row it
	// was the oldest at.
	first  *packets.PublishPacket
	losses int
}

type stored struct {
	pub *packets.PublishPacket
	seq uint64
}

func newSessionStore() *sessionStore {
	return &sessionStore{MemoryStore: paho.NewMemoryStore(), order: map[string]stored{}}
}

func (s *sessionStore) Put(key string, m packets.ControlPacket) {
	s.MemoryStore.Put(key, m)
	pub, ok := m.(*packets.PublishPacket)
	if !ok || !strings.HasPrefix(key, "o.") {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.order[key]; !ok || st.pub != pub {
		s.seq++
		s.order[key] = stored{pub, s.seq}
	}
}

func (s *sessionStore) Del(key string) {
	s.MemoryStore.Del(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.order, key)
}

func (s *sessionStore) Reset() {
	s.MemoryStore.Reset()
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.order)
}

// All returns the keys, outgoing messages oldest first after the rest.
func (s *sessionStore) All() []string {
	keys := s.MemoryStore.All()
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.SliceStable(keys, func(i, j int) bool { return s.order[keys[i]].seq < s.order[keys[j]].seq })
	return keys
}

// countLoss counts a loss against the oldest outgoing message kept; once it has been the
// oldest at poisonAfter losses in a row, it is removed and returned.
func (s *sessionStore) countLoss() *packets.PublishPacket {
	s.mu.Lock()
	var key string
	var oldest stored
	for k, st := range s.order {
		if oldest.pub == nil || st.seq < oldest.seq {
			key, oldest = k, st
		}
	}
	if oldest.pub == nil {
		s.first, s.losses = nil, 0
		s.mu.Unlock()
		return nil
	}
	if oldest.pub != s.first {
		s.first, s.losses = oldest.pub, 0
	}
	s.losses++
	poison := s.losses >= poisonAfter
	if poison {
		s.first, s.losses = nil, 0
	}
	var copies []string // the same message sent again from the spool
	for k, st := range s.order {
		if poison && st.pub.TopicName == oldest.pub.TopicName && bytes.Equal(st.pub.Payload, oldest.pub.Payload) {
			copies = append(copies, k)
		}
	}
	s.mu.Unlock()
	if !poison {
		return nil
	}
	for _, k := range append(copies, key) {
		s.Del(k)
	}
	return oldest.pub
}

// forgive clears the count after a connection that lasted, or one that was not closed by
// the broker.
func (s *sessionStore) forgive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.first, s.losses = nil, 0
}
