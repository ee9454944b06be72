// Package plc serves the agent's state to a PLC without MQTT: a Modbus TCP server with a
// read-only register map, one block of BlockSize registers per camera in the order of the
// config (docs/integrations.md, PLC interface; the addresses are in regmap.go).
//
// The agent tells the Server what it knows, in its own payload types: Status (the agent's and
// the cameras' states), Stats (frame rates), Counts (parts per tag and verdict) and Decision
// (the last part decided); Tags gives a camera's tag list, whose order the tag index and the
// per-tag counts follow. These calls only record the values under a lock and never wait for
// the network. The registers are kept rendered, so that a read copies them under the same
// lock: a 32-bit value never tears between its two registers within one request.
//
// Start listens and starts the heartbeat (one more every second); Close stops both. Modbus
// has no authentication: the default address is loopback only.
package plc

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
)

// camera is what the server knows of one camera.
type camera struct {
	name  string
	state string
	fps   float64
	tags  []string // sorted, without unknown

	decided  bool
	verdict  string
	tag      string
	prob     float32
	seq      uint32
	decision int64 // Unix seconds

	counts *payload.Counts
}

// Server is the Modbus TCP server. Its methods are safe for concurrent use.
type Server struct {
	cfg configs.PLCModbus
	log *slog.Logger
	// interval is the heartbeat's period (a second; shorter in tests).
	interval time.Duration

	mu        sync.Mutex
	agent     string
	heartbeat uint16
	cams      []*camera
	regs      []uint16

	srv    *modbus.ModbusServer
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a server for cfg serving the cameras named, in that order (the config's).
func New(cfg configs.PLCModbus, cameras []string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "plc")
	s := &Server{cfg: cfg, log: log, interval: time.Second}
	s.setCameras(cameras)
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{
		URL:        "tcp://" + cfg.Listen,
		MaxClients: uint(max(cfg.MaxClients, 1)),
		Logger:     libLogger(log),
	}, handler{s})
	if err != nil {
		return nil, fmt.Errorf("plc.modbus.listen %q: %w: give host:port, e.g. 127.0.0.1:5020", cfg.Listen, err)
	}
	s.srv = srv
	return s, nil
}

// Start listens on plc.modbus.listen and starts the heartbeat, until Close (or ctx ends the
// heartbeat: the registers then stay, and a PLC sees the heartbeat stop).
func (s *Server) Start(ctx context.Context) error {
	if s.done != nil {
		return errors.New("plc: the modbus server is started already")
	}
	if err := s.srv.Start(); err != nil {
		return fmt.Errorf("plc.modbus.listen %s: %w: free the port or choose another", s.cfg.Listen, err)
	}
	if !loopback(s.cfg.Listen) {
		s.log.Warn("the Modbus server is reachable by the plant network, without authentication: keep it on a separate PLC network behind a firewall, or listen on 127.0.0.1", "listen", s.cfg.Listen)
	} else {
		s.log.Info("Modbus server listening", "listen", s.cfg.Listen)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.beat(ctx)
	return nil
}

// Close stops the heartbeat and the server: the port is free and the clients are
// disconnected when it returns.
func (s *Server) Close() error {
	if s.done != nil {
		s.cancel()
		<-s.done
	}
	return s.srv.Stop()
}

func (s *Server) beat(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			s.heartbeat++
			s.putEverywhere(RegHeartbeat, s.heartbeat)
			s.mu.Unlock()
		}
	}
}

// putEverywhere writes v at offset off of every block (the heartbeat and the agent state).
func (s *Server) putEverywhere(off int, v uint16) {
	for b := 0; b < len(s.regs); b += BlockSize {
		s.regs[b+off] = v
	}
}

// SetCameras lays the blocks out for the cameras named, in that order, after a reload that
// added or removed cameras; what is known of a camera kept stays.
func (s *Server) SetCameras(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setCameras(names)
}

func (s *Server) setCameras(names []string) {
	old := map[string]*camera{}
	for _, c := range s.cams {
		old[c.name] = c
	}
	s.cams = make([]*camera, len(names))
	for i, n := range names {
		if c := old[n]; c != nil {
			s.cams[i] = c
		} else {
			s.cams[i] = &camera{name: n}
		}
	}
	s.regs = make([]uint16, BlockSize*(1+len(names)))
	s.regs[RegMapVersion] = MapVersion
	s.regs[RegCameras] = uint16(len(names))
	s.regs[RegBlockSize] = BlockSize
	for i := range s.cams {
		s.render(i)
	}
	s.putEverywhere(RegHeartbeat, s.heartbeat)
	s.putEverywhere(RegAgentState, agentState(s.agent))
}

func (s *Server) find(name string) int {
	for i, c := range s.cams {
		if c.name == name {
			return i
		}
	}
	return -1
}

// render writes camera i's block from what is known of it.
func (s *Server) render(i int) {
	c := s.cams[i]
	b := s.regs[BlockSize*(i+1) : BlockSize*(i+2)]
	clear(b)
	b[OffHeartbeat] = s.heartbeat
	b[OffAgentState] = agentState(s.agent)
	b[OffCameraState] = cameraState(c.state)
	b[OffIndex] = uint16(i)
	b[OffFPS] = scaled(c.fps, 100, 0xFFFF)
	b[OffTagCount] = uint16(min(len(c.tags), 0xFFFF))
	if c.decided {
		b[OffVerdict] = verdictCode(c.verdict, c.tag)
		b[OffTagIndex] = tagIndex(c.tags, c.tag)
		b[OffProbability] = scaled(float64(c.prob), 10000, 10000)
		put32(b[OffDecidedAt:], unix32(c.decision))
	}
	put32(b[OffSequence:], uint64(c.seq))
	if n := c.counts; n != nil {
		put32(b[OffParts:], n.Parts)
		put32(b[OffOK:], n.Verdicts["ok"])
		put32(b[OffNOK:], n.Verdicts["nok"])
		put32(b[OffUnknown:], n.Tags[unknownTag])
		put32(b[OffCountsSince:], unix32(n.Since.Unix()))
		for j := 0; j < len(c.tags) && j < MaxTagCounts; j++ {
			put32(b[OffTagCounts+2*j:], n.Tags[c.tags[j]])
		}
	}
	putName(b[OffName:OffName+NameRegs], c.name)
}

// Status records the agent's state and its cameras' states.
func (s *Server) Status(st payload.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agent = st.State
	s.putEverywhere(RegAgentState, agentState(s.agent))
	for _, cs := range st.Cameras {
		if i := s.find(cs.Name); i >= 0 {
			s.cams[i].state = cs.State
			s.render(i)
		}
	}
}

// Stats records the cameras' states and frame rates.
func (s *Server) Stats(st payload.Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cs := range st.Cameras {
		if i := s.find(cs.Name); i >= 0 {
			s.cams[i].state, s.cams[i].fps = cs.State, cs.FPS
			s.render(i)
		}
	}
}

// Counts records a camera's counts. The maps are copied: the caller may reuse them.
func (s *Server) Counts(c payload.Counts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(c.Camera)
	if i < 0 {
		return
	}
	cp := payload.Counts{Parts: c.Parts, Since: c.Since, Tags: map[string]uint64{}, Verdicts: map[string]uint64{}}
	for k, v := range c.Tags {
		cp.Tags[k] = v
	}
	for k, v := range c.Verdicts {
		cp.Verdicts[k] = v
	}
	s.cams[i].counts = &cp
	s.render(i)
}

// Decision records a camera's last decision, one more in its sequence number.
func (s *Server) Decision(d payload.Decision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(d.Camera)
	if i < 0 {
		return
	}
	c := s.cams[i]
	c.decided, c.verdict, c.tag, c.prob = true, d.Verdict, d.TagName, d.Probability
	c.decision = d.Created.Unix()
	if d.Created.IsZero() {
		c.decision = 0
	}
	c.seq++
	if c.seq == 0 { // after 2^32 decisions: 0 stays "none since the start"
		c.seq = 1
	}
	s.render(i)
}

// Tags sets a camera's tag list, the labels of the model that decides its parts: the tag
// index and the per-tag counts follow its sorted order (unknown is left out: it has its own
// index and count).
func (s *Server) Tags(cameraName string, tags []string) {
	list := tagList(tags)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.find(cameraName); i >= 0 {
		s.cams[i].tags = list
		s.render(i)
	}
}

// read copies registers [addr, addr+n), or fails with an illegal data address.
func (s *Server) read(addr, n uint16) ([]uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(addr)+int(n) > len(s.regs) {
		return nil, modbus.ErrIllegalDataAddress
	}
	return append([]uint16(nil), s.regs[addr:int(addr)+int(n)]...), nil
}

// handler answers the Modbus requests: registers are read-only, coils and discrete inputs
// are not served.
type handler struct{ s *Server }

func (h handler) HandleCoils(*modbus.CoilsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (h handler) HandleDiscreteInputs(*modbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (h handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		return nil, modbus.ErrIllegalFunction
	}
	return h.s.read(req.Addr, req.Quantity)
}

func (h handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	return h.s.read(req.Addr, req.Quantity)
}

// loopback reports whether listen (host:port) is reachable from this machine only.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// libLogger passes the Modbus library's lines to log: its warnings and errors (a client
// refused past max_clients, a failed accept) at Warn, the rest at Debug.
func libLogger(l *slog.Logger) *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		msg := strings.TrimSpace(string(p))
		if strings.Contains(msg, "[warn") || strings.Contains(msg, "[error]") {
			l.Warn(msg)
		} else {
			l.Debug(msg)
		}
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
