package plc

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// freeAddr returns a loopback host:port nobody listens on (the Modbus library cannot tell
// which port it got for port 0).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// start runs a server for the cameras on a free loopback port, closed at the test's end.
func start(t *testing.T, maxClients int, interval time.Duration, cameras ...string) (*Server, string, *testenv.LogBuffer) {
	t.Helper()
	var logs testenv.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	addr := freeAddr(t)
	s, err := New(configs.PLCModbus{Enabled: true, Listen: addr, MaxClients: maxClients}, cameras, log)
	if err != nil {
		t.Fatal(err)
	}
	s.interval = interval
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, addr, &logs
}

func dial(t *testing.T, addr string) *modbus.ModbusClient {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatalf("connecting to the Modbus server at %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func block(i int) uint16 { return uint16(BlockSize * (i + 1)) }

func readBlock(t *testing.T, c *modbus.ModbusClient, i int, rt modbus.RegType) []uint16 {
	t.Helper()
	r, err := c.ReadRegisters(block(i), BlockSize, rt)
	if err != nil {
		t.Fatalf("reading camera block %d: %v", i, err)
	}
	return r
}

func u32(r []uint16, off int) uint32 { return uint32(r[off])<<16 | uint32(r[off+1]) }

func name(r []uint16) string {
	var b []byte
	for _, w := range r[OffName : OffName+NameRegs] {
		for _, c := range []byte{byte(w >> 8), byte(w)} {
			if c != 0 {
				b = append(b, c)
			}
		}
	}
	return string(b)
}

// TestRegisterMap feeds a status, stats, a tag list, counts and a decision, and reads them
// back over Modbus TCP, from the holding and from the input registers.
func TestRegisterMap(t *testing.T) {
	s, addr, _ := start(t, 4, time.Hour, "entry", "exit")
	s.Status(payload.Status{State: "online", Cameras: []payload.CameraStatus{
		{Name: "entry", State: "online"}, {Name: "exit", State: "reconnecting"}, {Name: "gone", State: "online"}}})
	s.Stats(payload.Stats{Cameras: []payload.CameraStats{{Name: "entry", State: "online", FPS: 12.345}}})
	s.Tags("entry", []string{"scratch", "good", "unknown", "dent", "good"})
	since := time.Unix(1_780_000_000, 0)
	s.Counts(payload.Counts{Camera: "entry", Since: since, Parts: 70_000 + 5,
		Tags:     map[string]uint64{"good": 70_000, "dent": 2, "scratch": 1, "unknown": 2},
		Verdicts: map[string]uint64{"ok": 70_000, "nok": 5}})
	created := time.Unix(1_780_000_123, 0)
	s.Decision(payload.Decision{Camera: "entry", TagName: "scratch", Probability: 0.87654, Verdict: "nok", Created: created})

	c := dial(t, addr)
	head, err := c.ReadRegisters(0, 5, modbus.HOLDING_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint16{MapVersion, 0, AgentOnline, 2, BlockSize}; fmt.Sprint(head) != fmt.Sprint(want) {
		t.Errorf("agent block = %v, want %v (version, heartbeat, agent state, cameras, block size)", head, want)
	}
	for _, rt := range []modbus.RegType{modbus.HOLDING_REGISTER, modbus.INPUT_REGISTER} {
		r := readBlock(t, c, 0, rt)
		checks := []struct {
			what      string
			got, want uint32
		}{
			{"agent state", uint32(r[OffAgentState]), AgentOnline},
			{"camera state", uint32(r[OffCameraState]), CameraOnline},
			{"index", uint32(r[OffIndex]), 0},
			{"verdict", uint32(r[OffVerdict]), VerdictNOK},
			{"tag index (dent, good, scratch)", uint32(r[OffTagIndex]), 3},
			{"probability ×10000", uint32(r[OffProbability]), 8765},
			{"fps ×100", uint32(r[OffFPS]), 1235},
			{"tag count", uint32(r[OffTagCount]), 3},
			{"sequence", u32(r, OffSequence), 1},
			{"decision time", u32(r, OffDecidedAt), uint32(created.Unix())},
			{"parts", u32(r, OffParts), 70_005},
			{"ok", u32(r, OffOK), 70_000},
			{"nok", u32(r, OffNOK), 5},
			{"unknown", u32(r, OffUnknown), 2},
			{"counts since", u32(r, OffCountsSince), uint32(since.Unix())},
			{"count of dent", u32(r, OffTagCounts), 2},
			{"count of good", u32(r, OffTagCounts+2), 70_000},
			{"count of scratch", u32(r, OffTagCounts+4), 1},
			{"count after the list", u32(r, OffTagCounts+6), 0},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("%v %s = %d, want %d", rt, ch.what, ch.got, ch.want)
			}
		}
		if n := name(r); n != "entry" {
			t.Errorf("%v name = %q, want entry", rt, n)
		}
	}
	// 32-bit values as the library's client reads them, high word first.
	if v, err := c.ReadUint32(block(0)+OffParts, modbus.HOLDING_REGISTER); err != nil || v != 70_005 {
		t.Errorf("ReadUint32(parts) = %d, %v; want 70005", v, err)
	}
	r := readBlock(t, c, 1, modbus.HOLDING_REGISTER)
	if r[OffCameraState] != CameraReconnecting || r[OffIndex] != 1 || name(r) != "exit" {
		t.Errorf("exit block: state %d index %d name %q, want %d 1 exit", r[OffCameraState], r[OffIndex], name(r), CameraReconnecting)
	}
	if r[OffVerdict] != VerdictNone || r[OffTagIndex] != TagNone || u32(r, OffSequence) != 0 || u32(r, OffDecidedAt) != 0 {
		t.Errorf("exit block without a decision: verdict %d tag %d sequence %d time %d, want all 0", r[OffVerdict], r[OffTagIndex], u32(r, OffSequence), u32(r, OffDecidedAt))
	}
}

// TestDecisionSequence: each decision is one more in the sequence, even when it repeats the
// last one, so that the PLC sees every part.
func TestDecisionSequence(t *testing.T) {
	s, addr, _ := start(t, 4, time.Hour, "line")
	c := dial(t, addr)
	s.Tags("line", []string{"good", "bad"})
	d := payload.Decision{Camera: "line", TagName: "good", Probability: 1, Verdict: "ok", Created: time.Unix(1_780_000_000, 0)}
	for want := uint32(1); want <= 3; want++ {
		s.Decision(d)
		r := readBlock(t, c, 0, modbus.HOLDING_REGISTER)
		if got := u32(r, OffSequence); got != want {
			t.Fatalf("after decision %d the sequence is %d", want, got)
		}
		if r[OffVerdict] != VerdictOK || r[OffTagIndex] != 2 || r[OffProbability] != 10000 {
			t.Fatalf("decision %d: verdict %d tag %d probability %d, want %d 2 10000", want, r[OffVerdict], r[OffTagIndex], r[OffProbability], VerdictOK)
		}
	}
	s.Decision(payload.Decision{Camera: "line", TagName: "unknown", Probability: 0.4})
	r := readBlock(t, c, 0, modbus.HOLDING_REGISTER)
	if u32(r, OffSequence) != 4 || r[OffVerdict] != VerdictUnknown || r[OffTagIndex] != TagUnknown || u32(r, OffDecidedAt) != 0 {
		t.Errorf("unknown part without verdicts: sequence %d verdict %d tag %#x time %d; want 4, %d, %#x, 0", u32(r, OffSequence), r[OffVerdict], r[OffTagIndex], u32(r, OffDecidedAt), VerdictUnknown, TagUnknown)
	}
}

// TestHeartbeat: the heartbeat counts up while the server runs, in the agent block and in
// every camera block, and stops with Close.
func TestHeartbeat(t *testing.T) {
	_, addr, _ := start(t, 4, 5*time.Millisecond, "a", "b")
	c := dial(t, addr)
	first, err := c.ReadRegister(RegHeartbeat, modbus.HOLDING_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the heartbeat to count up by 3", 10*time.Second, func() bool {
		v, err := c.ReadRegister(RegHeartbeat, modbus.INPUT_REGISTER)
		return err == nil && v-first >= 3
	})
	for i := 0; i < 3; i++ { // one request per block: the beat may move between requests
		r, err := c.ReadRegisters(uint16(i*BlockSize+RegHeartbeat), 1, modbus.HOLDING_REGISTER)
		if err != nil || r[0]-first < 3 {
			t.Errorf("block %d heartbeat = %v, %v; want at least %d", i, r, err, first+3)
		}
	}
}

// TestHeartbeatStops: the heartbeat's goroutine ends with the context, and the server goes on
// answering with the last value.
func TestHeartbeatStops(t *testing.T) {
	addr := freeAddr(t)
	s, err := New(configs.PLCModbus{Listen: addr, MaxClients: 2}, []string{"a"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.interval = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := dial(t, addr)
	testenv.WaitFor(t, "a heartbeat", 10*time.Second, func() bool {
		v, err := c.ReadRegister(RegHeartbeat, modbus.HOLDING_REGISTER)
		return err == nil && v > 0
	})
	cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the heartbeat goroutine did not end with its context")
	}
	a, errA := c.ReadRegister(RegHeartbeat, modbus.HOLDING_REGISTER)
	b, errB := c.ReadRegister(RegHeartbeat, modbus.HOLDING_REGISTER)
	if errA != nil || errB != nil || a == 0 || a != b {
		t.Errorf("after the heartbeat stopped: %d (%v) then %d (%v), want the same non-zero value", a, errA, b, errB)
	}
}

// TestWritesRefused: every write is answered with an illegal function exception and changes
// nothing; coils and discrete inputs are not served.
func TestWritesRefused(t *testing.T) {
	s, addr, _ := start(t, 4, time.Hour, "a")
	s.Counts(payload.Counts{Camera: "a", Parts: 7})
	c := dial(t, addr)
	for what, err := range map[string]error{
		"write register":   c.WriteRegister(block(0)+OffParts+1, 99),
		"write registers":  c.WriteRegisters(block(0)+OffParts, []uint16{1, 2}),
		"write coil":       c.WriteCoil(0, true),
		"write outside":    c.WriteRegister(60000, 1),
		"read coils":       func() error { _, err := c.ReadCoils(0, 1); return err }(),
		"read discrete in": func() error { _, err := c.ReadDiscreteInputs(0, 1); return err }(),
	} {
		if err != modbus.ErrIllegalFunction {
			t.Errorf("%s: %v, want %v", what, err, modbus.ErrIllegalFunction)
		}
	}
	if v, err := c.ReadUint32(block(0)+OffParts, modbus.HOLDING_REGISTER); err != nil || v != 7 {
		t.Errorf("parts after the writes = %d, %v; want 7", v, err)
	}
}

// TestReadOutsideMap: a read past the last camera's block is an illegal data address; the
// last register is readable.
func TestReadOutsideMap(t *testing.T) {
	_, addr, _ := start(t, 4, time.Hour, "a", "b")
	c := dial(t, addr)
	end := uint16(3 * BlockSize)
	if _, err := c.ReadRegisters(end-1, 1, modbus.HOLDING_REGISTER); err != nil {
		t.Errorf("the last register %d: %v", end-1, err)
	}
	for _, rd := range []struct{ addr, n uint16 }{{end - 1, 2}, {end, 1}, {65535, 1}, {60000, 125}} {
		for _, rt := range []modbus.RegType{modbus.HOLDING_REGISTER, modbus.INPUT_REGISTER} {
			if _, err := c.ReadRegisters(rd.addr, rd.n, rt); err != modbus.ErrIllegalDataAddress {
				t.Errorf("%v read of %d at %d: %v, want %v", rt, rd.n, rd.addr, err, modbus.ErrIllegalDataAddress)
			}
		}
	}
}

// TestManyClients reads from several clients at once while the counts change: a 32-bit value
// never tears between its two registers within one request.
func TestManyClients(t *testing.T) {
	const clients = 6
	s, addr, _ := start(t, clients, time.Millisecond, "a")
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for k := uint64(0); ; k = (k + 1) & 0xFFFF {
			select {
			case <-stop:
				return
			default:
			}
			// high word = low word: a torn read shows them differ
			s.Counts(payload.Counts{Camera: "a", Parts: k * 0x10001})
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		c := dial(t, addr)
		wg.Go(func() {
			for range 200 {
				r, err := c.ReadRegisters(block(0)+OffParts, 2, modbus.HOLDING_REGISTER)
				if err != nil {
					errs <- err
					return
				}
				if r[0] != r[1] {
					errs <- fmt.Errorf("torn 32-bit value: %#04x %#04x", r[0], r[1])
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-fed
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMaxClients: a client past max_clients is refused, and logged.
func TestMaxClients(t *testing.T) {
	_, addr, logs := start(t, 1, time.Hour, "a")
	c := dial(t, addr)
	if _, err := c.ReadRegister(0, modbus.HOLDING_REGISTER); err != nil {
		t.Fatal(err)
	}
	extra, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := extra.Open(); err == nil {
		defer extra.Close()
		if _, err := extra.ReadRegister(0, modbus.HOLDING_REGISTER); err == nil {
			t.Fatal("a second client was served with max_clients 1")
		}
	}
	testenv.WaitFor(t, "the refusal in the log", 10*time.Second, func() bool {
		return logs.Count("level=WARN") > 0 && logs.Count("max. number of concurrent connections") > 0
	})
}

// TestCloseReleasesPort: after Close the port can be listened on again and clients are cut.
func TestCloseReleasesPort(t *testing.T) {
	addr := freeAddr(t)
	s, err := New(configs.PLCModbus{Listen: addr, MaxClients: 2}, []string{"a"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	if _, err := c.ReadRegister(0, modbus.HOLDING_REGISTER); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port is still held after Close: %v", err)
	}
	l.Close()
	if _, err := c.ReadRegister(0, modbus.HOLDING_REGISTER); err == nil {
		t.Error("a client connected before Close is still served")
	}
	// A second server on the same address starts: nothing is left behind.
	s2, err := New(configs.PLCModbus{Listen: addr, MaxClients: 2}, []string{"a"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(context.Background()); err != nil {
		t.Fatalf("a new server on the released port: %v", err)
	}
	s2.Close()
}

// TestPortTaken: a port in use is an error naming the key.
func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := New(configs.PLCModbus{Listen: l.Addr().String(), MaxClients: 2}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(context.Background())
	if err == nil {
		s.Close()
		t.Fatal("started on a port in use")
	}
	if got := err.Error(); !strings.Contains(got, "plc.modbus.listen") {
		t.Errorf("error %q does not name plc.modbus.listen", got)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after a failed Start: %v", err)
	}
}

// TestGarbage: clients that send garbage (random bytes, a wrong protocol id, a length past
// the frame limit, a request cut short) are dropped, and the server goes on serving.
func TestGarbage(t *testing.T) {
	s, addr, _ := start(t, 8, time.Hour, "a")
	s.Counts(payload.Counts{Camera: "a", Parts: 42})
	rnd := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rnd.UintN(256))
	}
	frames := [][]byte{
		junk,
		{0, 1, 0x12, 0x34, 0, 6, 1, 3, 0, 0, 0, 1},  // protocol id 0x1234
		{0, 1, 0, 0, 0xFF, 0xFF, 1, 3, 0, 0, 0, 1},  // length 65535
		{0, 1, 0, 0, 0, 0},                          // length 0
		{0, 1, 0, 0, 0, 6, 1, 3, 0},                 // cut short
		{0, 1, 0, 0, 0, 2, 1, 0x5A},                 // unknown function
		{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0x7F, 0xFF},  // quantity far past 125
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), // not Modbus at all
	}
	for i, f := range frames {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		conn.Write(f)
		if i%2 == 0 {
			conn.Close() // hang up at once
		} else {
			defer conn.Close() // or stay connected, silent
		}
		c := dial(t, addr)
		if v, err := c.ReadUint32(block(0)+OffParts, modbus.HOLDING_REGISTER); err != nil || v != 42 {
			t.Fatalf("after garbage frame %d: %d, %v; want 42", i, v, err)
		}
		c.Close()
	}
}

// TestSetCameras: a reload's camera list lays the blocks out again; a kept camera keeps what
// is known of it, an unknown camera's input is ignored.
func TestSetCameras(t *testing.T) {
	s, addr, _ := start(t, 4, time.Hour, "a", "b")
	s.Counts(payload.Counts{Camera: "b", Parts: 5})
	s.Counts(payload.Counts{Camera: "nope", Parts: 9})
	s.SetCameras([]string{"b", "c"})
	c := dial(t, addr)
	r := readBlock(t, c, 0, modbus.HOLDING_REGISTER)
	if name(r) != "b" || u32(r, OffParts) != 5 || r[OffIndex] != 0 {
		t.Errorf("block 0 after the reload: name %q parts %d index %d, want b 5 0", name(r), u32(r, OffParts), r[OffIndex])
	}
	if r := readBlock(t, c, 1, modbus.HOLDING_REGISTER); name(r) != "c" || u32(r, OffParts) != 0 {
		t.Errorf("block 1 after the reload: name %q parts %d, want c 0", name(r), u32(r, OffParts))
	}
	if _, err := c.ReadRegisters(block(2), 1, modbus.HOLDING_REGISTER); err != modbus.ErrIllegalDataAddress {
		t.Errorf("block 2 after the reload left two cameras: %v, want %v", err, modbus.ErrIllegalDataAddress)
	}
}

func TestCodes(t *testing.T) {
	for _, tc := range []struct {
		verdict, tag string
		want         uint16
	}{
		{"ok", "good", VerdictOK}, {"nok", "dent", VerdictNOK}, {"nok", "unknown", VerdictNOK},
		{"", "good", VerdictNone}, {"", "unknown", VerdictUnknown}, {"maybe", "good", VerdictUnknown},
	} {
		if got := verdictCode(tc.verdict, tc.tag); got != tc.want {
			t.Errorf("verdictCode(%q, %q) = %d, want %d", tc.verdict, tc.tag, got, tc.want)
		}
	}
	for s, want := range map[string]uint16{"stopped": 0, "": 0, "online": 1, "reconnecting": 2, "starting": 3, "ended": 4, "weird": 5} {
		if got := cameraState(s); got != want {
			t.Errorf("cameraState(%q) = %d, want %d", s, got, want)
		}
	}
	list := tagList([]string{"b", "a", "unknown", "a", ""})
	for tag, want := range map[string]uint16{"a": 1, "b": 2, "c": TagOther, "unknown": TagUnknown} {
		if got := tagIndex(list, tag); got != want {
			t.Errorf("tagIndex(%v, %q) = %#x, want %#x", list, tag, got, want)
		}
	}
	for v, want := range map[float64]uint16{-1: 0, 0.5: 5000, 1: 10000, 2: 10000} {
		if got := scaled(v, 10000, 10000); got != want {
			t.Errorf("scaled(%v) = %d, want %d", v, got, want)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:5020": true, "[::1]:5020": true, "localhost:5020": true,
		"127.3.2.1:502": true, "0.0.0.0:502": false, ":502": false, "10.0.0.5:502": false, "bad": false} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
	r := make([]uint16, 3)
	putName(r, "abcdé-long")
	if r[0] != 'a'<<8|'b' || r[1] != 'c'<<8|'d' || r[2] != '?'<<8|'-' {
		t.Errorf("putName = %#04x", r)
	}
}
