package publish_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

func mqttConfig(broker string) configs.MQTT {
	c := configs.Default().MQTT
	c.Broker = broker
	c.ClientID = fmt.Sprintf("pub-test-%d", time.Now().UnixNano())
	c.TopicPrefix = "t"
	c.KeepAlive = 3 * time.Second
	c.ConnectTimeout = 2 * time.Second
	c.PublishTimeout = 2 * time.Second
	c.MaxReconnectInterval = time.Second
	return c
}

type harness struct {
	pub   *publish.Publisher
	spool *spool.Store
	dead  *spool.DeadLetter
	logs  *testenv.LogBuffer
}

func start(t *testing.T, cfg configs.MQTT, o publish.Options) *harness {
	t.Helper()
	return startLogging(t, cfg, o, func(w io.Writer) io.Writer { return w })
}

// startLogging is start with the publisher's log written through wrap(the harness's log).
func startLogging(t *testing.T, cfg configs.MQTT, o publish.Options, wrap func(io.Writer) io.Writer) *harness {
	t.Helper()
	dir := t.TempDir()
	s, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{DropOrder: []string{spool.Samples, spool.Predictions}})
	if err != nil {
		t.Fatal(err)
	}
	dl, err := spool.OpenDeadLetter(filepath.Join(dir, "deadletter"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{spool: s, dead: dl, logs: &testenv.LogBuffer{}}
	o.Spool, o.DeadLetter = s, dl
	h.pub, err = publish.Connect(cfg, o, slog.New(slog.NewTextHandler(wrap(h.logs), &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.pub.Close(ctx)
		s.Close()
		if t.Failed() {
			t.Logf("publisher log:\n%s", h.logs)
		}
	})
	return h
}

func (h *harness) waitConnected(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, "the publisher to connect", 15*time.Second, h.pub.Connected)
}

// msg is message i on topic prefix/i, with a JSON body padded to size bytes.
func msg(prefix string, i, size int) publish.Message {
	body := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", max(size-20, 0)))
	return publish.Message{Topic: fmt.Sprintf("%s/%d", prefix, i), QoS: 1, Payload: []byte(body), Class: spool.Predictions}
}

// received returns the distinct message numbers that arrived under prefix.
func received(in *testenv.Inbox, prefix string, n int) map[int]bool {
	got := map[int]bool{}
	for i := 0; i < n; i++ {
		if len(in.Get(fmt.Sprintf("%s/%d", prefix, i))) > 0 {
			got[i] = true
		}
	}
	return got
}

// TestWindowKeepsUpWithFarBroker: a broker 100 ms away (200 ms round trip) takes 40
// messages a second as they come. Published one acknowledged message at a time it takes
// 5 a second, and the queue grows without end.
func TestWindowKeepsUpWithFarBroker(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	far := testenv.DelayProxy(t, broker.Addr, 100*time.Millisecond)
	sub := testenv.Subscribe(t, broker.URL, "far/#")
	h := start(t, mqttConfig(far.URL), publish.Options{})
	h.waitConnected(t)

	const n = 160
	maxQueued := 0
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		h.pub.Send(msg("far", i, 200))
		st := h.pub.Stats()
		maxQueued = max(maxQueued, st.Queued)
	}
	testenv.WaitFor(t, "every message at the subscriber", 30*time.Second, func() bool { return len(received(sub, "far", n)) == n })
	st := h.pub.Stats()
	t.Logf("40 msg/s over a 200 ms round trip: at most %d queued, %d spooled", maxQueued, st.Spooled)
	if maxQueued > 16 || st.Spooled != 0 {
		t.Fatalf("the publisher fell behind a far broker: up to %d messages queued in memory, %d spooled", maxQueued, st.Spooled)
	}
}

// TestFrozenBroker freezes the broker (SIGSTOP: the connection stays open, nothing answers).
// Within the stall time the publisher notices, and from then on every message is on disk
// at once: nothing waits in memory, where a crash would lose it. When the broker thaws,
// everything arrives.
func TestFrozenBroker(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	sub := testenv.Dashboard(t, broker.URL, "frozen/#")
	cfg := mqttConfig(broker.URL)
	h := start(t, cfg, publish.Options{})
	h.waitConnected(t)

	i := 0
	send := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); i++ {
			h.pub.Send(msg("frozen", i, 100))
			time.Sleep(50 * time.Millisecond)
		}
	}
	send(time.Second)
	broker.Freeze(t)
	frozeAt := time.Now()
	noticed := time.Time{}
	for time.Since(frozeAt) < 10*time.Second && noticed.IsZero() {
		send(100 * time.Millisecond)
		if st := h.pub.Stats(); st.State != "connected" {
			noticed = time.Now()
		}
	}
	if noticed.IsZero() {
		t.Fatalf("a frozen broker was not noticed within 10 s (stall time %s)", min(cfg.PublishTimeout, cfg.KeepAlive))
	}
	t.Logf("frozen broker noticed after %s (stall time %s)", noticed.Sub(frozeAt).Round(100*time.Millisecond), min(cfg.PublishTimeout, cfg.KeepAlive))
	send(2 * time.Second)
	testenv.WaitFor(t, "nothing left in memory", time.Second, func() bool {
		st := h.pub.Stats()
		return st.Queued == 0 && st.InFlight == 0
	})
	st := h.pub.Stats()
	if int(st.Sent)+h.spool.Len() < i {
		t.Fatalf("of %d messages, %d acknowledged and %d on disk: the rest only in memory", i, st.Sent, h.spool.Len())
	}
	broker.Thaw(t)
	testenv.WaitFor(t, "every message after the thaw", 60*time.Second, func() bool { return len(received(sub, "frozen", i)) == i })
}

// TestMessageOverBrokerLimit: a message larger than the broker takes must not stop
// delivery. A broker that drops the connection over it (mosquitto's max_packet_size, AWS IoT
// Core) made the agent send it again first after every reconnection, so nothing behind it
// arrived. Without mqtt.max_payload_kb the message is recognised by the broker dropping the
// connection each time it is sent, and set aside; with it, it is set aside before it is
// sent (which also covers brokers that drop it silently, as message_size_limit does).
func TestMessageOverBrokerLimit(t *testing.T) {
	for _, c := range []struct {
		limitKB int
		broker  string
	}{{0, "max_packet_size 10000"}, {9, "max_packet_size 10000"}, {9, "message_size_limit 10000"}} {
		t.Run(fmt.Sprintf("max_payload_kb=%d,%s", c.limitKB, strings.Fields(c.broker)[0]), func(t *testing.T) {
			broker := testenv.StartMosquitto(t, c.broker)
			sub := testenv.Dashboard(t, broker.URL, "big/#")
			cfg := mqttConfig(broker.URL)
			cfg.MaxPayloadKB = c.limitKB
			h := start(t, cfg, publish.Options{})
			h.waitConnected(t)
			const n = 60
			for i := 0; i < n; i++ {
				if i == 5 {
					h.pub.Send(msg("big", 1000, 20000))
				}
				h.pub.Send(msg("big", i, 200))
				time.Sleep(20 * time.Millisecond)
			}
			testenv.WaitFor(t, "every message behind the big one", 60*time.Second, func() bool { return len(received(sub, "big", n)) == n })
			testenv.WaitFor(t, "the big message set aside", 20*time.Second, func() bool { return h.pub.Stats().SetAside >= 1 })
			if n := h.pub.Stats().SetAside; n != 1 {
				t.Fatalf("%d messages set aside, want 1", n)
			}
			files, _ := filepath.Glob(filepath.Join(h.dead.Dir(), "*.json"))
			if len(files) != 1 {
				t.Fatalf("%d dead-letter files, want 1", len(files))
			}
			raw, _ := os.ReadFile(files[0])
			var l spool.Letter
			if err := json.Unmarshal(raw, &l); err != nil || l.Topic != "big/1000" || l.Bytes < 19000 || l.Reason == "" || !json.Valid(l.Payload) {
				t.Fatalf("dead letter %s: %v: topic %q, %d bytes, reason %q", files[0], err, l.Topic, l.Bytes, l.Reason)
			}
			t.Logf("set aside: %s", l.Reason)
			if len(sub.Get("big/1000")) != 0 {
				t.Fatal("the broker delivered a message over its limit")
			}
			if h.logs.Count("message set aside") != 1 {
				t.Fatalf("want one log line for the message set aside:\n%s", h.logs)
			}
		})
	}
}

// TestConnectionFailuresExplained: each way a connection fails gives one log line with the
// reason and what to fix (not one per retry), and the reason in the stats.
func TestConnectionFailuresExplained(t *testing.T) {
	dir := t.TempDir()
	pki := testenv.NewPKI(t, dir)
	other := testenv.NewPKI(t, t.TempDir())
	pwfile := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pwfile, "line3", "Right-Pa55").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, []byte("topic write #\n"), 0o600)
	tlsPort, mtlsPort := testenv.FreePort(t), testenv.FreePort(t)
	testenv.StartMosquitto(t,
		fmt.Sprintf("listener %d 127.0.0.1", tlsPort), "cafile "+pki.CA, "certfile "+pki.ServerCert, "keyfile "+pki.ServerKey,
		fmt.Sprintf("listener %d 127.0.0.1", mtlsPort), "cafile "+pki.CA, "certfile "+pki.ServerCert, "keyfile "+pki.ServerKey, "require_certificate true")
	pwBroker := testenv.StartMosquitto(t, "allow_anonymous false", "password_file "+pwfile)
	aclBroker := testenv.StartMosquitto(t, "acl_file "+acl)
	closed := testenv.FreePort(t)

	cases := []struct {
		name, state, want string
		cfg               func(c *configs.MQTT)
	}{
		{"wrong password", "refused", "mqtt.username and mqtt.password", func(c *configs.MQTT) {
			c.Broker = pwBroker.URL
			c.Username, c.Password = "line3", "Wrong-Pa55"
		}},
		{"nothing listening", "refused", "nothing accepts connections", func(c *configs.MQTT) {
			c.Broker = fmt.Sprintf("tcp://127.0.0.1:%d", closed)
		}},
		{"unknown CA", "refused", "set mqtt.tls.ca_file", func(c *configs.MQTT) {
			c.Broker = fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort)
			c.TLS.CAFile = other.CA
		}},
		{"client certificate rejected", "refused", "rejected this agent's client certificate", func(c *configs.MQTT) {
			c.Broker = fmt.Sprintf("ssl://127.0.0.1:%d", mtlsPort)
			c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile = pki.CA, other.ClientCert, other.ClientKey
		}},
		{"access refused by the ACL", "connected", "did not deliver it back", func(c *configs.MQTT) {
			c.Broker = aclBroker.URL
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := mqttConfig("")
			c.cfg(&cfg)
			h := start(t, cfg, publish.Options{
				Subscriptions: map[string]func([]byte){"t/commands": func([]byte) {}},
				OnConnect: func() []publish.Message {
					return []publish.Message{{Topic: "t/status", QoS: 1, Retained: true, Payload: []byte(time.Now().String())}}
				},
				Echo: "t/status",
			})
			testenv.WaitFor(t, "the reason in the stats", 30*time.Second, func() bool {
				st := h.pub.Stats()
				return st.State == c.state && strings.Contains(st.LastError, c.want)
			})
			time.Sleep(3 * time.Second) // a few more attempts
			if n := h.logs.Count(c.want); n != 1 {
				t.Fatalf("the reason was logged %d times, want once:\n%s", n, h.logs)
			}
			if strings.Contains(h.logs.String(), "Wrong-Pa55") || strings.Contains(h.pub.Stats().LastError, "Wrong-Pa55") {
				t.Fatal("the password shows in the log or the stats")
			}
		})
	}
}

// BenchmarkSend publishes b.N predictions of 1 KiB to a local mosquitto and waits for every
// acknowledgement, with messages queued in memory (the default) and with mqtt.spool_first
// (each synced to the spool before Send returns). send-us/op is what the camera's goroutine
// pays per message; msgs/s the delivered rate.
func BenchmarkSend(b *testing.B) {
	broker := testenv.StartMosquitto(b)
	for _, spoolFirst := range []bool{false, true} {
		name := "memory"
		if spoolFirst {
			name = "spool_first"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			s, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{DropOrder: []string{spool.Samples, spool.Predictions}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			cfg := mqttConfig(broker.URL)
			cfg.SpoolFirst = spoolFirst
			inSend := sendAll(b, cfg, publish.Options{Spool: s}, time.Minute)
			b.ReportMetric(float64(inSend.Microseconds())/float64(b.N), "send-us/op")
		})
	}
}

// BenchmarkFarBroker publishes b.N messages to a broker 100 ms away (a 200 ms round trip)
// and waits for every acknowledgement, one message at a time in flight and with the default
// window: msgs/s is the rate the broker takes.
func BenchmarkFarBroker(b *testing.B) {
	broker := testenv.StartMosquitto(b)
	far := testenv.DelayProxy(b, broker.Addr, 100*time.Millisecond)
	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("inflight=%d", window), func(b *testing.B) {
			cfg := mqttConfig(far.URL)
			cfg.Inflight = window
			cfg.PublishTimeout = time.Minute
			sendAll(b, cfg, publish.Options{}, 5*time.Minute)
		})
	}
}

// sendAll connects a publisher with cfg and o, publishes b.N messages of 1 KiB, waits (up
// to wait) for every acknowledgement and reports the delivered msgs/s. It returns the time
// spent in Send.
func sendAll(b *testing.B, cfg configs.MQTT, o publish.Options, wait time.Duration) time.Duration {
	b.Helper()
	cfg.QueueSize = max(cfg.QueueSize, b.N+1)
	pub, err := publish.Connect(cfg, o, slog.New(slog.NewTextHandler(&testenv.LogBuffer{}, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close(context.Background())
	testenv.WaitFor(b, "connected", 10*time.Second, pub.Connected)
	body := msg("bench", 0, 1024)
	b.ResetTimer()
	start := time.Now()
	var inSend time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		pub.Send(body)
		inSend += time.Since(t0)
	}
	testenv.WaitFor(b, "every acknowledgement", wait, func() bool { return pub.Stats().Sent >= uint64(b.N) })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	return inSend
}

// TestOutageOnEmbeddedBroker: messages sent while the broker is gone go to the spool and
// arrive, in order and each once, when it is back. The in-process broker needs no mosquitto,
// so this runs under -short too.
func TestOutageOnEmbeddedBroker(t *testing.T) {
	broker := testenv.StartEmbedded(t)
	h := start(t, mqttConfig(broker.URL), publish.Options{})
	h.waitConnected(t)
	const n = 60
	for i := 0; i < n/2; i++ {
		h.pub.Send(msg("order", i, 100))
	}
	testenv.WaitFor(t, "the first half acknowledged", 10*time.Second, func() bool { return h.pub.Stats().Sent >= n/2 })
	broker.Stop()
	testenv.WaitFor(t, "the publisher to notice", 10*time.Second, func() bool { return !h.pub.Connected() })
	for i := n / 2; i < n; i++ {
		h.pub.Send(msg("order", i, 100))
	}
	testenv.WaitFor(t, "the second half spooled", 10*time.Second, func() bool { return h.spool.Len() == n/2 })
	broker.Start(t)
	sub := testenv.Subscribe(t, broker.URL, "order/#")
	testenv.WaitFor(t, "the spool drained", 20*time.Second, func() bool { return h.spool.Len() == 0 && h.pub.Stats().Sent >= n })
	testenv.WaitFor(t, "every spooled message at the subscriber", 10*time.Second, func() bool { return len(received(sub, "order", n)) == n/2 })
	if got := received(sub, "order", n/2); len(got) != 0 {
		t.Fatalf("messages of the first half came again: %v", got)
	}
	if st := h.pub.Stats(); st.Lost != 0 || st.Spooled != n/2 {
		t.Fatalf("stats %+v: want %d spooled, none lost", st, n/2)
	}
}

// TestCommandsSentWhileAwayArrive: commands sent while the agent is away wait in its
// persistent session at the broker, which hands them over the moment the agent connects
// again. Each one reaches its handler, whether it comes before or after the agent's
// subscriptions are renewed; none is left unacknowledged until some later reconnection.
// The second publisher's log is slow (a busy box), so the messages come first.
func TestCommandsSentWhileAwayArrive(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := mqttConfig(broker.URL)
	got := make(chan string, 100)
	opts := publish.Options{Subscriptions: map[string]func([]byte){"t/commands": func(b []byte) { got <- string(b) }}}
	first := start(t, cfg, opts)
	first.waitConnected(t)
	in := testenv.Subscribe(t, broker.URL, "t/none")
	testenv.WaitFor(t, "the first session's subscription", 10*time.Second, func() bool {
		in.Publish(t, "t/commands", "probe")
		select {
		case <-got:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	first.pub.Close(ctx)
	cancel()
	for len(got) > 0 {
		<-got
	}
	const n = 30
	for i := range n {
		in.Publish(t, "t/commands", fmt.Sprint("away-", i))
	}
	startLogging(t, cfg, opts, func(w io.Writer) io.Writer { return testenv.SlowWriter{W: w, Delay: 300 * time.Millisecond} })
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for len(seen) < n {
		select {
		case b := <-got:
			if b != "probe" { // a late probe of the first session
				seen[b] = true
			}
		case <-deadline:
			t.Fatalf("%d of the %d commands sent while the agent was away reached it", len(seen), n)
		}
	}
}

// TestFloodWhileHandlerIsSlow: while a handler is held up (a correction waiting on a hung
// disk), a flood of 100 more messages at QoS 0 (no in-flight limit at the broker) keeps at most
// publish.InboxSize of them waiting, on no extra goroutine; each one beyond goes to Busy, so
// its sender gets an answer. None is lost or handled twice, and the other topic's messages
// still go through meanwhile.
func TestFloodWhileHandlerIsSlow(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	release, entered := make(chan struct{}), make(chan struct{}, 1000)
	var mu sync.Mutex
	handled, busy, other := map[string]int{}, map[string]int{}, 0
	h := start(t, mqttConfig(broker.URL), publish.Options{
		Subscriptions: map[string]func([]byte){
			"t/feedback": func(b []byte) {
				entered <- struct{}{}
				<-release
				mu.Lock()
				handled[string(b)]++
				mu.Unlock()
			},
			"t/commands": func([]byte) { mu.Lock(); other++; mu.Unlock() },
		},
		Busy: func(topic string, b []byte) {
			mu.Lock()
			if topic == "t/feedback" {
				busy[string(b)]++
			}
			mu.Unlock()
		},
	})
	h.waitConnected(t)
	in := testenv.Subscribe(t, broker.URL, "t/none")
	testenv.WaitFor(t, "the subscriptions", 10*time.Second, func() bool {
		in.Publish(t, "t/commands", "probe")
		mu.Lock()
		defer mu.Unlock()
		return other > 0
	})
	in.Publish(t, "t/feedback", "first")
	select {
	case <-entered: // the handler is held up from now on
	case <-time.After(10 * time.Second):
		t.Fatal("the first message did not reach the handler")
	}
	base := runtime.NumGoroutine()
	const n = 100
	for i := range n {
		in.C.Publish("t/feedback", 0, false, fmt.Sprint(i))
	}
	want := n - publish.InboxSize // InboxSize wait, the rest are refused
	testenv.WaitFor(t, "the busy answers", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(busy) >= want
	})
	if g := runtime.NumGoroutine(); g > base+20 {
		t.Errorf("%d goroutines during the flood, %d before", g, base)
	}
	before := other
	in.Publish(t, "t/commands", "beside the flood")
	testenv.WaitFor(t, "the other topic's message", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return other > before })
	close(release)
	testenv.WaitFor(t, "every message handled or refused", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)+len(busy) == n+1
	})
	mu.Lock()
	defer mu.Unlock()
	if len(busy) != want || len(handled) != publish.InboxSize+1 {
		t.Errorf("%d handled and %d refused; want %d (with the first) and %d", len(handled), len(busy), publish.InboxSize+1, want)
	}
	for i := range n {
		if k := fmt.Sprint(i); handled[k]+busy[k] != 1 {
			t.Errorf("message %s: handled %d times, refused %d times", k, handled[k], busy[k])
		}
	}
}

// TestCommandsInOrder: commands reach their handler in the order they were sent (an
// activate, then a rollback).
func TestCommandsInOrder(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	got, probes := make(chan string, 1000), make(chan string, 1000)
	h := start(t, mqttConfig(broker.URL), publish.Options{Subscriptions: map[string]func([]byte){"t/commands": func(b []byte) {
		if string(b) == "probe" {
			probes <- string(b)
			return
		}
		got <- string(b)
	}}})
	h.waitConnected(t)
	in := testenv.Subscribe(t, broker.URL, "t/none")
	testenv.WaitFor(t, "the subscription", 10*time.Second, func() bool {
		in.Publish(t, "t/commands", "probe")
		return len(probes) > 0
	})
	const n = 200
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = in.C.Publish("t/commands", 1, false, fmt.Sprint(i))
	}
	for _, tok := range toks {
		tok.Wait()
	}
	for i := range n {
		select {
		case b := <-got:
			if b != fmt.Sprint(i) {
				t.Fatalf("command %s came as number %d", b, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d commands came", i, n)
		}
	}
}

// TestOldSubscriptionAcknowledged: the persistent session still has a subscription from an
// earlier topic prefix. Messages on it are acknowledged and dropped, so that they do not fill
// the broker's in-flight window (mosquitto: 20 messages) and hold back the commands on the
// new prefix.
func TestOldSubscriptionAcknowledged(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := mqttConfig(broker.URL)
	got := make(chan string, 100)
	old := start(t, cfg, publish.Options{Subscriptions: map[string]func([]byte){"old/commands": func(b []byte) { got <- string(b) }}})
	in := testenv.Subscribe(t, broker.URL, "t/none")
	testenv.WaitFor(t, "the old subscription", 10*time.Second, func() bool {
		in.Publish(t, "old/commands", "probe")
		return len(got) > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	old.pub.Close(ctx)
	cancel()
	h := start(t, cfg, publish.Options{Subscriptions: map[string]func([]byte){"t/commands": func(b []byte) { got <- string(b) }}})
	h.waitConnected(t)
	for i := range 30 {
		in.Publish(t, "old/commands", fmt.Sprint("old-", i))
	}
	testenv.WaitFor(t, "a command on the new prefix", 10*time.Second, func() bool {
		in.Publish(t, "t/commands", "new")
		for len(got) > 0 {
			if <-got == "new" {
				return true
			}
		}
		return false
	})
}

// TestSlowCorrectionsHoldNoCommand: at QoS 1, messages waiting for a held-up handler are not
// acknowledged yet, and the broker sends a client at most 20 unacknowledged messages in all
// (mosquitto's max_inflight_messages). 30 corrections behind a stuck one must leave room for
// a command: those beyond publish.InboxSize are refused as busy, and acknowledged.
func TestSlowCorrectionsHoldNoCommand(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	release := make(chan struct{})
	defer close(release)
	commands := make(chan string, 100)
	h := start(t, mqttConfig(broker.URL), publish.Options{
		Subscriptions: map[string]func([]byte){
			"t/feedback": func([]byte) { <-release },
			"t/commands": func(b []byte) { commands <- string(b) },
		},
		Busy: func(string, []byte) {},
	})
	h.waitConnected(t)
	in := testenv.Subscribe(t, broker.URL, "t/none")
	testenv.WaitFor(t, "the subscriptions", 10*time.Second, func() bool {
		in.Publish(t, "t/commands", "probe")
		return len(commands) > 0
	})
	for i := range 30 {
		in.Publish(t, "t/feedback", fmt.Sprint(i))
	}
	in.Publish(t, "t/commands", "snapshot")
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-commands:
			if b == "snapshot" {
				return
			}
		case <-deadline:
			t.Fatal("a command waits behind corrections held up by their handler")
		}
	}
}

// TestCloseWithStuckHandler: a handler stuck for good (a hung disk) does not hold up the
// shutdown: Close waits a moment for it, then goes on.
func TestCloseWithStuckHandler(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	stuck, entered := make(chan struct{}), make(chan struct{}, 10)
	defer close(stuck)
	h := start(t, mqttConfig(broker.URL), publish.Options{Subscriptions: map[string]func([]byte){"t/feedback": func([]byte) { entered <- struct{}{}; <-stuck }}})
	h.waitConnected(t)
	in := testenv.Subscribe(t, broker.URL, "t/none")
	testenv.WaitFor(t, "the handler", 10*time.Second, func() bool {
		in.Publish(t, "t/feedback", "x")
		return len(entered) > 0
	})
	closed := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.pub.Close(ctx)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("Close still waits for a stuck handler after 15 s")
	}
	if !strings.Contains(h.logs.String(), "still being handled") {
		t.Errorf("the stuck handler is not logged:\n%s", h.logs)
	}
}

// TestStopHandlingLeavesCommandsForNextRun: once the agent begins to stop, a command that
// comes is neither handled nor acknowledged: the broker hands it over on the next run.
func TestStopHandlingLeavesCommandsForNextRun(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := mqttConfig(broker.URL)
	got, probes := make(chan string, 100), make(chan string, 100)
	opts := publish.Options{Subscriptions: map[string]func([]byte){"t/commands": func(b []byte) {
		if string(b) == "probe" {
			probes <- string(b)
			return
		}
		got <- string(b)
	}}}
	first := start(t, cfg, opts)
	first.waitConnected(t)
	in := testenv.Subscribe(t, broker.URL, "t/none")
	testenv.WaitFor(t, "the subscription", 10*time.Second, func() bool {
		in.Publish(t, "t/commands", "probe")
		return len(probes) > 0
	})
	first.pub.StopHandling()
	in.Publish(t, "t/commands", "during the shutdown")
	time.Sleep(300 * time.Millisecond)
	if len(got) > 0 {
		t.Fatalf("handled after StopHandling: %q", <-got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	first.pub.Close(ctx)
	cancel()
	start(t, cfg, opts)
	select {
	case b := <-got:
		if b != "during the shutdown" {
			t.Fatalf("the next run got %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command sent during the shutdown did not come on the next run")
	}
}
