package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
)

// DecisionBench is the parts decided in the multi-camera run by one cause (line, time, end,
// stop), with their latency: from the capture of the last frame that saw the part to its
// decision's arrival at a subscriber of the broker.
type DecisionBench struct {
	By    string      `json:"by"`
	Parts int         `json:"parts"`
	Ms    Percentiles `json:"ms"`
}

// benchLine is the decision line of the multi-camera run's cameras: the middle of the frame,
// drawn top to bottom (the demo's parts cross it left to right).
var benchLine = configs.Line{Name: "bench", From: configs.Point{0.5, 0}, To: configs.Point{0.5, 1}}

// decisionWatch hears every camera's decisions on the broker, as a reject gate would.
type decisionWatch struct {
	client paho.Client
	mu     sync.Mutex
	ms     map[string][]float64 // by cause
}

// watchDecisions subscribes to the decisions under prefix on the broker at url.
func watchDecisions(url, prefix string) (*decisionWatch, error) {
	w := &decisionWatch{ms: map[string][]float64{}}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID("gate")).SetAutoReconnect(false)
	w.client = paho.NewClient(opts)
	if t := w.client.Connect(); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("bench: the decisions' subscriber cannot connect to %s: %v", url, t.Error())
	}
	t := w.client.Subscribe(prefix+"/cameras/+/decisions", 1, func(_ paho.Client, m paho.Message) {
		at := time.Now()
		var d payload.Decision
		if json.Unmarshal(m.Payload(), &d) != nil || d.Captured.IsZero() {
			return
		}
		w.mu.Lock()
		w.ms[d.By] = append(w.ms[d.By], float64(at.Sub(d.Captured))/float64(time.Millisecond))
		w.mu.Unlock()
	})
	if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		w.client.Disconnect(0)
		return nil, fmt.Errorf("bench: subscribing to the decisions: %v", t.Error())
	}
	return w, nil
}

// stop ends the subscription and returns what it heard, by cause.
func (w *decisionWatch) stop() []DecisionBench {
	w.client.Disconnect(100)
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []DecisionBench
	for _, by := range slices.Sorted(maps.Keys(w.ms)) {
		out = append(out, DecisionBench{By: by, Parts: len(w.ms[by]), Ms: percentiles(w.ms[by])})
	}
	return out
}
