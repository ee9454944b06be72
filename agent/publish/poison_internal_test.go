package publish

import (
	"testing"

	"github.com/cvedge/cvedge/agent/spool"
)

// TestPoisonCopiesAllSkipped: a message set aside because the broker closed the connection
// over it may sit in the spool more than once (spooled at several connection losses). Every
// copy is skipped, not only the first: the second copy, sent again, cost three more dropped
// connections and was set aside a second time (TestMessageOverBrokerLimit saw "2 messages set
// aside" now and then).
func TestPoisonCopiesAllSkipped(t *testing.T) {
	p := &Publisher{}
	big := spool.Record{Topic: "big/1000", Payload: make([]byte, 20000)}
	p.poisonSet = map[uint64]bool{poisonKey(big.Topic, big.Payload): true}
	p.poison.Store(1)
	for copy := 1; copy <= 3; copy++ {
		if !p.isPoison(big) {
			t.Fatalf("copy %d of the set-aside message would be sent again", copy)
		}
	}
	if p.isPoison(spool.Record{Topic: "big/1", Payload: []byte("small")}) {
		t.Error("a message never set aside is skipped")
	}
}
