package plant

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/agent/station"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// TestStationOverMosquitto: agents publish as they do (a retained status before the station
// starts, a sample after); the station started on a real broker shows the agents on
// /api/state, queues the sample, and an operator's correction arrives on the feedback topic
// of the agent's own prefix.
func TestStationOverMosquitto(t *testing.T) {
	b := testenv.StartMosquitto(t)
	agentCl := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL).SetClientID("test-agent"))
	if tok := agentCl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("agent connect: %v", tok.Error())
	}
	defer agentCl.Disconnect(100)
	pub := func(topic string, retained bool, v any) {
		t.Helper()
		raw, _ := json.Marshal(v)
		if tok := agentCl.Publish(topic, 1, retained, raw); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub("cvedge/line3/status", true, status("line3", "online"))
	pub("acme/plant1/cell2/status", true, status("cell2", "online"))
	pub("cvedge/line3/cameras/cam1/counts", true, counts("line3", "cam1", 12))
	feedback := testenv.Subscribe(t, b.URL, "+/+/+/feedback")
	feedback2 := testenv.Subscribe(t, b.URL, "+/+/feedback")

	q := openQueue(t)
	p := New(Options{Queue: q, Log: quiet})
	cfg := configs.Default().MQTT
	cfg.Broker, cfg.ClientID = b.URL, fmt.Sprintf("test-review-%d", time.Now().UnixNano())
	filters, err := Filters([]string{DefaultPrefix, "acme/+/+"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(cfg, filters); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st, err := station.New(station.Options{Config: configs.Default().UI, State: p.View, Review: q, Feedback: p.Feedback, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st)
	defer srv.Close()
	defer st.Close()

	state := func() station.View {
		resp, err := http.Get(srv.URL + "/api/state")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v station.View
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
			t.Fatalf("/api/state: %s", resp.Status)
		}
		return v
	}
	testenv.WaitFor(t, "both agents on /api/state", 10*time.Second, func() bool { return len(state().Agents) == 2 })
	v := state()
	if v.Agents[0].Status.Agent != "cell2" || v.Agents[1].Status.Agent != "line3" || v.Agents[1].Status.State != "online" || v.Agents[1].Counts["cam1"].Parts != 12 {
		t.Fatalf("/api/state: %+v", v)
	}
	if !p.Connected() {
		t.Error("not connected")
	}

	pub("cvedge/line3/cameras/cam1/samples", false, sample(t, "line3", "cam1", 1))
	pub("cvedge/line3/cameras/cam1/predictions", false, map[string]any{"schema": 1}) // not followed
	testenv.WaitFor(t, "the sample in the review queue", 10*time.Second, func() bool { return len(q.List(review.Filter{})) == 1 })

	if err := p.Feedback("cell2", payload.Feedback{ID: "fb-1", PredictionID: "p-1", Tag: "blue", Operator: "anna"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Feedback("line3", payload.Feedback{ID: "fb-2", PartID: "part-1", Tag: "red"}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the feedback on each agent's prefix", 10*time.Second, func() bool {
		return len(feedback.Get("acme/plant1/cell2/feedback")) == 1 && len(feedback2.Get("cvedge/line3/feedback")) == 1
	})
	fb, err := payload.ParseFeedback(feedback.Get("acme/plant1/cell2/feedback")[0])
	if err != nil || fb.ID != "fb-1" || fb.Tag != "blue" || fb.Operator != "anna" {
		t.Errorf("feedback received: %+v %v", fb, err)
	}
	if c := p.Counters(); c.Queued != 1 || c.Bad != 0 || c.Taken != 3 {
		t.Errorf("counters %+v", c)
	}
	p.Close()
	if err := p.Feedback("line3", payload.Feedback{ID: "fb-3", PartID: "part-1", Tag: "red"}); err == nil {
		t.Error("feedback after Close")
	}
}

// TestSamplesSentWhileAwayQueued: samples published while the station is stopped wait in its
// persistent session, and the broker hands them over as it connects again, before the
// station has logged its connection and subscribed (a busy box, here a slow log). Each one
// reaches the review queue.
func TestSamplesSentWhileAwayQueued(t *testing.T) {
	b := testenv.StartMosquitto(t)
	agent := testenv.Subscribe(t, b.URL, "none")
	send := func(n int) {
		agent.Publish(t, "cvedge/line3/cameras/cam1/samples", string(mustJSON(t, sample(t, "line3", "cam1", n))))
	}
	q := openQueue(t)
	cfg := configs.Default().MQTT
	cfg.Broker, cfg.ClientID = b.URL, fmt.Sprintf("test-review-%d", time.Now().UnixNano())
	filters, err := Filters([]string{DefaultPrefix})
	if err != nil {
		t.Fatal(err)
	}
	first := New(Options{Queue: q, Log: quiet})
	if err := first.Start(cfg, filters); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the first session's subscription", 10*time.Second, func() bool { send(0); return len(q.List(review.Filter{})) > 0 })
	first.Close()
	const n = 8
	for i := 1; i <= n; i++ {
		send(i)
	}
	second := New(Options{Queue: q, Log: testenv.SlowLog(300 * time.Millisecond)})
	if err := second.Start(cfg, filters); err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	testenv.WaitFor(t, "the samples sent while away", 10*time.Second, func() bool { return len(q.List(review.Filter{})) == n+1 })
}

// TestOldPrefixNotQueued: the station's persistent session still has the subscriptions of an
// earlier run with another prefix. Samples under that prefix are acknowledged and dropped,
// not queued for review.
func TestOldPrefixNotQueued(t *testing.T) {
	b := testenv.StartMosquitto(t)
	agent := testenv.Subscribe(t, b.URL, "none")
	send := func(prefix string, n int) {
		agent.Publish(t, prefix+"/cameras/cam1/samples", string(mustJSON(t, sample(t, "line3", "cam1", n))))
	}
	q := openQueue(t)
	cfg := configs.Default().MQTT
	cfg.Broker, cfg.ClientID = b.URL, fmt.Sprintf("test-review-%d", time.Now().UnixNano())
	start := func(prefix string) *Plant {
		t.Helper()
		filters, err := Filters([]string{prefix})
		if err != nil {
			t.Fatal(err)
		}
		p := New(Options{Queue: q, Log: quiet})
		if err := p.Start(cfg, filters); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := start("acme/plant1/line1")
	testenv.WaitFor(t, "the first session's subscription", 10*time.Second, func() bool {
		send("acme/plant1/line1", 0)
		return len(q.List(review.Filter{})) > 0
	})
	first.Close()
	second := start("acme/plant1/line2")
	defer second.Close()
	testenv.WaitFor(t, "the new prefix's sample", 10*time.Second, func() bool {
		send("acme/plant1/line1", 1)
		send("acme/plant1/line2", 2)
		if len(q.List(review.Filter{})) < 2 {
			return false
		}
		time.Sleep(500 * time.Millisecond) // the rest of what was sent
		return true
	})
	if n := len(q.List(review.Filter{})); n != 2 {
		t.Fatalf("%d samples queued: those of the old prefix were taken", n)
	}
}

// TestOverlappingPrefixesTakeOnce: with prefix patterns that overlap, a message matches
// several subscriptions; it is taken once.
func TestOverlappingPrefixesTakeOnce(t *testing.T) {
	b := testenv.StartMosquitto(t)
	agent := testenv.Subscribe(t, b.URL, "none")
	q := openQueue(t)
	cfg := configs.Default().MQTT
	cfg.Broker, cfg.ClientID = b.URL, fmt.Sprintf("test-review-%d", time.Now().UnixNano())
	filters, err := Filters([]string{"cvedge/+", "cvedge/line3"})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Queue: q, Log: quiet})
	if err := p.Start(cfg, filters); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// line9 matches one filter only: once it is taken, the subscriptions are made
	testenv.WaitFor(t, "the subscriptions", 10*time.Second, func() bool {
		agent.Publish(t, "cvedge/line9/cameras/cam1/counts", string(mustJSON(t, counts("line9", "cam1", 1))))
		return p.Counters().Taken > 0
	})
	time.Sleep(300 * time.Millisecond)
	before := p.Counters().Taken
	agent.Publish(t, "cvedge/line3/cameras/cam1/counts", string(mustJSON(t, counts("line3", "cam1", 12))))
	testenv.WaitFor(t, "the counts", 10*time.Second, func() bool { return p.Counters().Taken > before })
	time.Sleep(300 * time.Millisecond)
	if n := p.Counters().Taken - before; n != 1 {
		t.Fatalf("the message was taken %d times", n)
	}
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"cvedge/+/status", "cvedge/line3/status", true},
		{"cvedge/line3/status", "cvedge/line3/status", true},
		{"cvedge/+/status", "cvedge/line3/stats", false},
		{"cvedge/+/status", "cvedge/a/b/status", false},
		{"acme/+/+/cameras/+/samples", "acme/p1/l2/cameras/c/samples", true},
		{"cvedge/+/status", "other/line3/status", false},
	} {
		if got := matches(c.filter, c.topic); got != c.want {
			t.Errorf("matches(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
}
