package camera

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// rtspTransports are the values of rtsp.transport, each a path of its own: auto, tcp and udp
// through GStreamer's rtspsrc (auto with rtspsrc's own choice, UDP first), ffmpeg through
// OpenCV's FFmpeg backend.
var rtspTransports = []string{configs.RTSPAuto, configs.RTSPTCP, configs.RTSPUDP, configs.RTSPFFmpeg}

const rtspPassword = "CamPa55word"

// requireRTSP skips (or under CI=true fails) a test whose transport cannot run here: all but
// ffmpeg need GStreamer's rtspsrc and an H.264 decoder (auto would fall back to FFmpeg
// without them, and test that path twice). The server's own needs are checked by
// testenv.StartRTSP.
func requireRTSP(t testing.TB, transport string) {
	t.Helper()
	testenv.EndToEnd(t)
	if OpenCVVersion() == "" {
		testenv.Missing(t, "OpenCV")
	}
	if transport == configs.RTSPFFmpeg {
		return
	}
	if err := checkPipeline("rtspsrc ! decodebin ! videoconvert ! appsink"); err != nil || gstWhy != "" {
		testenv.Missing(t, "GStreamer's rtspsrc (apt-get install gstreamer1.0-plugins-good): %v %s", err, gstWhy)
	}
	if checkPipeline("h264parse ! avdec_h264 ! appsink") != nil && checkPipeline("h264parse ! openh264dec ! appsink") != nil {
		testenv.Missing(t, "a GStreamer H.264 decoder (apt-get install gstreamer1.0-libav)")
	}
}

// statusLog records every status a camera reports.
type statusLog struct {
	mu   sync.Mutex
	list []Status
}

func (s *statusLog) add(st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, st)
}

func (s *statusLog) all() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.list...)
}

// openLog records when each open of a camera's source started, and whether it failed.
type openLog struct {
	mu     sync.Mutex
	starts []time.Time
	failed []bool
}

func (o *openLog) wrap(open func() (grabber, error)) func() (grabber, error) {
	return func() (grabber, error) {
		o.mu.Lock()
		i := len(o.starts)
		o.starts, o.failed = append(o.starts, time.Now()), append(o.failed, false)
		o.mu.Unlock()
		g, err := open()
		o.mu.Lock()
		o.failed[i] = err != nil
		o.mu.Unlock()
		return g, err
	}
}

// failedSince returns the start times of the failed opens from the n-th on.
func (o *openLog) failedSince(n int) []time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []time.Time
	for i := n; i < len(o.starts); i++ {
		if o.failed[i] {
			out = append(out, o.starts[i])
		}
	}
	return out
}

func (o *openLog) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.starts)
}

// rtspCamera starts a camera on url with the transport, logging into logs; seen and opens,
// when set, record its statuses and its opens. Its backoff runs from 50ms to 400ms.
func rtspCamera(t testing.TB, url, transport string, logs *syncBuffer, seen *statusLog, opens ...*openLog) *Camera {
	t.Helper()
	cam, err := New(configs.Camera{Name: "dock", Source: url, RTSP: configs.RTSP{Transport: transport, Latency: 50 * time.Millisecond}},
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	cam.MinBackoff, cam.MaxBackoff = 50*time.Millisecond, 400*time.Millisecond
	if seen != nil {
		cam.OnStatus(seen.add)
	}
	for _, o := range opens {
		cam.open = o.wrap(cam.open)
	}
	cam.Start(context.Background())
	return cam
}

// nextAfter waits for a frame captured at or after from; a minute without one fails the
// test (a guard against a hang, not a measure of speed).
func nextAfter(t testing.TB, cam *Camera, from time.Time) *Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := cam.NextAfter(ctx, from)
	if err != nil {
		t.Fatalf("no frame: %v; status %+v", err, cam.Status())
	}
	return f
}

// TestRTSPReconnects runs each transport against a real RTSP server that asks for a password:
// frames arrive; the server is killed and the camera reports reconnecting, with the reason
// and the URL's password masked; the server comes back on the same port and the camera is
// online again with fresh frames. The server's log of SETUP requests shows the transport the
// camera asked for, and the password never shows in the statuses or the camera's log.
func TestRTSPReconnects(t *testing.T) {
	for _, transport := range rtspTransports {
		t.Run(transport, func(t *testing.T) {
			requireRTSP(t, transport)
			srv := testenv.StartRTSP(t, "viewer", rtspPassword)
			var logs syncBuffer
			var seen statusLog
			var opens openLog
			cam := rtspCamera(t, srv.URL, transport, &logs, &seen, &opens)
			defer closeWithin(t, cam, 20*time.Second)

			f := nextAfter(t, cam, time.Time{})
			if b := f.Bounds(); b.Dx() != 320 || b.Dy() != 240 {
				t.Fatalf("frame %v, want 320x240", b)
			}
			f.Close()

			before := opens.count()
			srv.Kill()
			lost := waitReason(t, cam, "")
			// the server stays down until the camera has failed to open it four times
			failed := waitReason(t, cam, "cannot open stream rtsp://viewer:***@127.0.0.1")
			for deadline := time.Now().Add(time.Minute); len(opens.failedSince(before)) < 4; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the camera did not try to reopen the stream 4 times in a minute: %+v", cam.Status())
				}
			}
			// backoff 50ms after the lost stream, then 100ms, 200ms, 400ms between failed opens:
			// each wait lasts at least that long, however slow the machine
			fails := opens.failedSince(before)
			for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
				if gap := fails[i+1].Sub(fails[i]); gap < want {
					t.Errorf("failed open %d came %s after the one before, want a backoff of at least %s", i+2, gap, want)
				}
			}
			srv.Start(t)
			back := time.Now()
			f = nextAfter(t, cam, back)
			f.Close()
			if st := cam.Status(); st.State != StateOnline {
				t.Fatalf("a fresh frame arrived after the server came back, yet the camera is %+v", st)
			}
			closeWithin(t, cam, 20*time.Second)
			t.Logf("lost: %s", lost)
			t.Logf("while down: %s", failed)

			var states []State
			for _, st := range seen.all() {
				if len(states) == 0 || states[len(states)-1] != st.State {
					states = append(states, st.State)
				}
				if strings.Contains(st.Reason, rtspPassword) {
					t.Errorf("the password shows in a status: %+v", st)
				}
			}
			want := []State{StateOnline, StateReconnecting, StateOnline, StateStopped}
			if i := slices.Index(states, StateOnline); i < 0 || !slices.Equal(states[i:], want) {
				t.Errorf("states %v, want %v after the first frame", states, want)
			}
			if strings.Contains(logs.String(), rtspPassword) || !strings.Contains(logs.String(), "viewer:***@") {
				t.Errorf("the log shows the password or not the masked URL:\n%s", logs.String())
			}

			setups := srv.Setups()
			if len(setups) < 2 {
				t.Fatalf("the server saw %d SETUP requests, want one before and one after its restart: %q", len(setups), setups)
			}
			for i, s := range setups {
				tcp := strings.HasPrefix(s, "RTP/AVP/TCP")
				// auto asks for UDP first; it may go on over TCP when no UDP packet came in
				// time (a loaded machine, a server that just restarted), as it is meant to
				if (transport == configs.RTSPTCP && !tcp) || (transport == configs.RTSPUDP && tcp) || (transport == configs.RTSPAuto && i == 0 && tcp) {
					t.Errorf("rtsp.transport %s, yet the camera asked for %q (SETUP %d)", transport, s, i+1)
				}
			}
			t.Logf("SETUP transports: %q", setups)
		})
	}
}

// TestRTSPTransportPerCamera: two cameras of one process on one server, one over tcp and one
// over udp, each get their own transport (FFmpeg's one environment variable could not do
// this), and both deliver frames.
func TestRTSPTransportPerCamera(t *testing.T) {
	requireRTSP(t, configs.RTSPTCP)
	srv := testenv.StartRTSP(t, "viewer", rtspPassword)
	var logs syncBuffer
	tcp := rtspCamera(t, srv.URL, configs.RTSPTCP, &logs, nil)
	defer closeWithin(t, tcp, 20*time.Second)
	nextAfter(t, tcp, time.Time{}).Close()
	udp := rtspCamera(t, srv.URL, configs.RTSPUDP, &logs, nil)
	defer closeWithin(t, udp, 20*time.Second)
	nextAfter(t, udp, time.Time{}).Close()
	nextAfter(t, tcp, time.Now()).Close()
	setups := srv.Setups()
	if len(setups) != 2 || !strings.HasPrefix(setups[0], "RTP/AVP/TCP") || strings.HasPrefix(setups[1], "RTP/AVP/TCP") {
		t.Fatalf("SETUP transports %q, want one over TCP, then one over UDP", setups)
	}
}

// TestRTSPWrongPassword: a server that refuses the camera's password puts it in reconnecting
// with a reason that names the stream, the password masked, and never shows it in the log.
func TestRTSPWrongPassword(t *testing.T) {
	for _, transport := range rtspTransports {
		t.Run(transport, func(t *testing.T) {
			requireRTSP(t, transport)
			srv := testenv.StartRTSP(t, "viewer", "right-one")
			url := strings.Replace(srv.URL, ":right-one@", ":"+rtspPassword+"@", 1)
			var logs syncBuffer
			cam := rtspCamera(t, url, transport, &logs, nil)
			reason := waitReason(t, cam, "cannot open stream rtsp://viewer:***@127.0.0.1")
			closeWithin(t, cam, 20*time.Second)
			t.Logf("reason: %s", reason)
			if strings.Contains(reason, rtspPassword) || strings.Contains(logs.String(), rtspPassword) {
				t.Fatalf("the password shows:\nreason %s\nlog %s", reason, logs.String())
			}
		})
	}
}

// TestRTSPCloseWhileConnecting: a server that accepts the connection and never answers (a
// hung camera) keeps the open waiting inside the capture library for its 5 s timeout; Close
// returns at once all the same, leaving that open behind to be freed when it returns.
func TestRTSPCloseWhileConnecting(t *testing.T) {
	for _, transport := range rtspTransports {
		t.Run(transport, func(t *testing.T) {
			requireRTSP(t, transport)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			accepted := make(chan net.Conn, 4)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					accepted <- c // held open, never answered
				}
			}()
			var logs syncBuffer
			cam := rtspCamera(t, fmt.Sprintf("rtsp://viewer:%s@%s/stream1", rtspPassword, l.Addr()), transport, &logs, nil)
			var conn net.Conn
			select {
			case conn = <-accepted:
			case <-time.After(time.Minute):
				t.Fatal("the camera never connected")
			}
			defer conn.Close()
			closeWithin(t, cam, 20*time.Second)
			if n := cam.opening.Load(); n != 1 {
				t.Fatalf("%d opens still blocked after Close, want the one the hung server holds: Close waited for it", n)
			}
			if strings.Contains(logs.String(), rtspPassword) {
				t.Fatalf("the password shows in the log:\n%s", logs.String())
			}
			// the abandoned open gives up after its timeout and is freed
			for deadline := time.Now().Add(time.Minute); cam.opening.Load() != 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the abandoned open never returned")
				}
			}
		})
	}
}

// TestRTSPFrozenServer: a server that stops answering without closing anything (SIGSTOP: the
// connection stays open, no packet comes, no end of stream) makes the read give up after its
// timeout (with reconnect.no_frame_timeout off): the camera reports reconnecting, and Close
// returns. OpenCV's GStreamer backend,
// which waited for the next frame without a limit, kept the camera online and Close blocked
// for good on udp.
func TestRTSPFrozenServer(t *testing.T) {
	for _, transport := range rtspTransports {
		t.Run(transport, func(t *testing.T) {
			requireRTSP(t, transport)
			srv := testenv.StartRTSP(t, "viewer", rtspPassword)
			var logs syncBuffer
			cam := rtspCamera(t, srv.URL, transport, &logs, nil)
			nextAfter(t, cam, time.Time{}).Close()
			srv.Freeze(t)
			frozen := time.Now()
			// FFmpeg's read gives up after OpenCV's own 30 s read timeout, rtspsrc's after 5 s:
			// the guard against a hang is longer than both
			for st := cam.Status(); st.State != StateReconnecting; st = cam.Status() {
				if time.Since(frozen) > 2*time.Minute {
					t.Fatalf("2 minutes after the server froze, the camera is %+v", st)
				}
				time.Sleep(20 * time.Millisecond)
			}
			noticed := time.Since(frozen)
			reason := cam.Status().Reason
			closeWithin(t, cam, 20*time.Second)
			t.Logf("reconnecting %s after the server froze: %s", noticed.Round(100*time.Millisecond), reason)
			if strings.Contains(reason, rtspPassword) || strings.Contains(logs.String(), rtspPassword) {
				t.Fatalf("the password shows:\nreason %s\nlog %s", reason, logs.String())
			}
		})
	}
}

func TestRTSPPipeline(t *testing.T) {
	got := rtspPipeline(`rtsp://viewer:se"c\ret@10.0.0.5:554/stream1`, configs.RTSP{Transport: "udp", Latency: 150 * time.Millisecond})
	want := `rtspsrc location="rtsp://viewer:se\"c\\ret@10.0.0.5:554/stream1" protocols=udp latency=150 tcp-timeout=5000000 timeout=5000000 ! decodebin`
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "! appsink name=cvedgesink drop=true max-buffers=1 sync=false") {
		t.Fatalf("pipeline\n%s\nwant it to start with\n%s", got, want)
	}
	// auto leaves the order to rtspsrc: UDP, then TCP after timeout
	got = rtspPipeline("rtsp://h/x", configs.RTSP{Transport: "auto", Latency: 100 * time.Millisecond})
	if want := `rtspsrc location="rtsp://h/x" latency=100 tcp-timeout=5000000 timeout=5000000 ! decodebin`; !strings.HasPrefix(got, want) {
		t.Fatalf("auto pipeline\n%s\nwant it to start with\n%s", got, want)
	}
	for _, c := range []struct {
		source, transport string
		want              bool
	}{
		{"rtsp://h/x", "tcp", true},
		{"RTSPS://h/x", "udp", true},
		{"rtsp://h/x", "auto", true},
		{"rtsp://h/x", "ffmpeg", false},
		{"http://h/x", "tcp", false},
		{"http://h/x", "auto", false},
	} {
		src, err := ParseSource(c.source, "auto")
		if err != nil {
			t.Fatal(err)
		}
		if got := rtspViaGStreamer(src, configs.Camera{RTSP: configs.RTSP{Transport: c.transport}}); got != c.want {
			t.Errorf("%s over %s through GStreamer: %v, want %v", c.source, c.transport, got, c.want)
		}
	}
}

// rtspStamp reads the time stamp rtspserver.py draws on the first row of each frame.
func rtspStamp(f *Frame) uint32 {
	m := f.Mat()
	var v uint32
	for bit := 0; bit < testenv.RTSPStampBits; bit++ {
		v <<= 1
		if m.GetUCharAt(testenv.RTSPStampBlock/2, (bit*testenv.RTSPStampBlock+testenv.RTSPStampBlock/2)*3) > 128 {
			v |= 1
		}
	}
	return v
}

// BenchmarkRTSPLatency measures the delay from a frame's making in the RTSP server to its
// capture by the camera (encoding, RTP, the jitter buffer, decoding and the read) per
// transport, from the time stamp the server draws on each frame: median, p95 and max in ms
// once streaming, and the largest delay of the first 50 frames (the start-up).
// Run: go test -run '^$' -bench RTSPLatency -benchtime 200x ./camera/
func BenchmarkRTSPLatency(b *testing.B) {
	for _, c := range []struct {
		transport string
		latency   time.Duration
	}{
		{configs.RTSPFFmpeg, 0},
		{configs.RTSPAuto, 100 * time.Millisecond},
		{configs.RTSPTCP, 100 * time.Millisecond},
		{configs.RTSPUDP, 100 * time.Millisecond},
		{configs.RTSPTCP, 0},
		{configs.RTSPUDP, 0},
	} {
		name := c.transport
		if c.transport != configs.RTSPFFmpeg {
			name = fmt.Sprintf("%s/latency=%s", c.transport, c.latency)
		}
		b.Run(name, func(b *testing.B) {
			requireRTSP(b, c.transport)
			srv := testenv.StartRTSP(b, "", "")
			cam, err := New(configs.Camera{Name: "bench", Source: srv.URL, RTSP: configs.RTSP{Transport: c.transport, Latency: c.latency}}, quietLog)
			if err != nil {
				b.Fatal(err)
			}
			cam.Start(context.Background())
			defer cam.Close()
			var last uint32
			delay := func(i int) float64 {
				f := nextAfter(b, cam, time.Time{})
				stamp := rtspStamp(f)
				d := uint32(f.Captured.UnixMilli()) - stamp
				f.Close()
				if d > 60_000 || (i > 0 && stamp-last > 60_000) {
					b.Fatalf("frame %d: stamp %d unreadable (the delay would be %d ms)", i, stamp, d)
				}
				last = stamp
				return float64(d)
			}
			// the first 2 s of frames (50 at 25 fps) are the start-up: FFmpeg hands out what it
			// buffered while it probed the stream
			var startup float64
			for i := 0; i < 50; i++ {
				startup = max(startup, delay(i))
			}
			delays := make([]float64, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				delays = append(delays, delay(50+i))
			}
			b.StopTimer()
			b.ReportMetric(startup, "ms-startup-max")
			slices.Sort(delays)
			b.ReportMetric(delays[len(delays)/2], "ms-median")
			b.ReportMetric(delays[len(delays)*95/100], "ms-p95")
			b.ReportMetric(delays[len(delays)-1], "ms-max")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// locationOf reads back the quoted location of an rtspsrc pipeline as gst_parse_launch does
// (a backslash escapes the next character), and returns it and what follows the value.
func locationOf(pipeline string) (value, rest string, ok bool) {
	s, found := strings.CutPrefix(pipeline, `rtspsrc location="`)
	if !found {
		return "", "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false
}

// FuzzRTSPPipeline: whatever the camera's URL holds (quotes, backslashes, '!'), it stays the
// location of rtspsrc and cannot add elements or properties to the pipeline.
func FuzzRTSPPipeline(f *testing.F) {
	f.Add(`rtsp://viewer:secret@10.0.0.5:554/stream1`)
	f.Add(`rtsp://h/x" ! filesink location="/tmp/x`)
	f.Add(`rtsp://h/x\" ! fakesink \`)
	f.Add(`rtsp://u:p\@h/"`)
	want := rtspPipeline("X", configs.RTSP{Transport: "tcp", Latency: 100 * time.Millisecond})
	_, wantRest, _ := locationOf(want)
	f.Fuzz(func(t *testing.T, url string) {
		got, rest, ok := locationOf(rtspPipeline(url, configs.RTSP{Transport: "tcp", Latency: 100 * time.Millisecond}))
		if !ok || got != url || rest != wantRest {
			t.Fatalf("url %q: location %q (ok %v), then %q", url, got, ok, rest)
		}
	})
}

// TestRTSPPipelineQuotesTheURL: GStreamer's own parser takes a URL that holds a quote and
// '! fakesink' as one location (the pipeline still has one sink: it parses).
func TestRTSPPipelineQuotesTheURL(t *testing.T) {
	requireRTSP(t, configs.RTSPTCP)
	for _, url := range []string{`rtsp://h/x" ! fakesink name=x location="y`, `rtsp://h/x\" ! fakesink \`} {
		if err := checkPipeline(rtspPipeline(url, configs.RTSP{Transport: "tcp"})); err != nil {
			t.Errorf("%q: %v", url, err)
		}
	}
}

// TestRTSPAutoFallsBackToFFmpeg: an auto camera on a machine where GStreamer cannot play the
// stream (its H.264 decoders ranked out of decodebin's reach; no plugins at all, so no
// rtspsrc) opens through FFmpeg instead: frames arrive, one warning says why and what to
// install, and the next open goes to FFmpeg without trying GStreamer again. GStreamer reads
// its plugin settings once per process, so each case runs this test again in a child
// process with them set.
func TestRTSPAutoFallsBackToFFmpeg(t *testing.T) {
	if url := os.Getenv("CVEDGE_TEST_RTSP_URL"); url != "" {
		autoFallback(t, url, os.Getenv("CVEDGE_TEST_RTSP_WHY"))
		return
	}
	requireRTSP(t, configs.RTSPAuto)
	srv := testenv.StartRTSP(t, "viewer", rtspPassword)
	for _, c := range []struct {
		name, why string
		env       []string
	}{
		{"no H.264 decoder", "missing a plug-in", []string{"GST_PLUGIN_FEATURE_RANK=avdec_h264:NONE,openh264dec:NONE"}},
		{"no rtspsrc", `\"rtspsrc\" is not installed`, []string{
			"GST_REGISTRY_1_0=" + filepath.Join(t.TempDir(), "registry.bin"), "GST_PLUGIN_SYSTEM_PATH_1_0=" + t.TempDir(), "GST_PLUGIN_PATH_1_0="}},
	} {
		t.Run(c.name, func(t *testing.T) {
			child := exec.Command(os.Args[0], "-test.run=^TestRTSPAutoFallsBackToFFmpeg$", "-test.count=1", "-test.v")
			child.Env = append(append(os.Environ(), "CVEDGE_TEST_RTSP_URL="+srv.URL, "CVEDGE_TEST_RTSP_WHY="+c.why), c.env...)
			out, err := child.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestRTSPAutoFallsBackToFFmpeg") {
				t.Fatalf("the child test (%v): %v\n%s", c.env, err, out)
			}
			if strings.Contains(string(out), rtspPassword) {
				t.Fatalf("the password shows in the child's output:\n%s", out)
			}
		})
	}
}

// autoFallback is the child's half of TestRTSPAutoFallsBackToFFmpeg.
func autoFallback(t *testing.T, url, why string) {
	var logs syncBuffer
	cam := rtspCamera(t, url, configs.RTSPAuto, &logs, nil)
	nextAfter(t, cam, time.Time{}).Close()
	closeWithin(t, cam, 20*time.Second)
	warning := "rtsp.transport auto: GStreamer cannot play this stream here, so it opens through FFmpeg"
	if n := strings.Count(logs.String(), warning); n != 1 || !strings.Contains(logs.String(), why) {
		t.Fatalf("want one fallback warning that says %q, got %d:\n%s", why, n, logs.String())
	}
	src, err := ParseSource(url, "auto")
	if err != nil {
		t.Fatal(err)
	}
	cfg := configs.Camera{Name: "dock", Source: url, RTSP: configs.RTSP{Transport: configs.RTSPAuto}}
	g, err := openSource(src, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if _, ok := g.(*capture); !ok || strings.Count(logs.String(), warning) != 1 {
		t.Fatalf("the next open is a %T and the warning shows %d times: want FFmpeg at once, no new warning", g, strings.Count(logs.String(), warning))
	}
	t.Logf("%s", logs.String())
}
