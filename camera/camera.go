// Package camera turns frame sources (USB/V4L2, RTSP/HTTP streams, GStreamer pipelines,
// video files, image folders) into Frames, with gocv.
//
// Each Camera owns one reader goroutine that keeps only the latest frame, so a slow
// pipeline drops stale frames (and counts them) instead of falling behind. A source that
// fails is reopened with capped exponential backoff. The package knows nothing of models or
// MQTT.
package camera

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/configs"
	"gocv.io/x/gocv"
)

// Frame is one captured image. It owns a gocv Mat: Close it when done.
type Frame struct {
	Camera string
	// Seq numbers the frames a camera delivered, from 1, never repeating while it runs.
	Seq uint64
	// Captured is when the frame was read from the source.
	Captured time.Time
	// Pos is the frame's index in a file or folder (from 0); -1 for a live source.
	Pos int64
	mat gocv.Mat
	// jpeg, for a frame from a JPEG source, holds the source's bytes; mat is decoded from
	// them on first use (see jpeg.go).
	jpeg *jpegFrame
}

// Mat returns the frame's pixels (BGR) at full resolution. It stays valid until Close. A
// frame from a JPEG source is decoded on the first call.
func (f *Frame) Mat() gocv.Mat {
	j := f.jpeg
	if j == nil {
		return f.mat
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if f.mat.Ptr() == nil {
		f.mat = j.decode(1)
	}
	return f.mat
}

// Bounds is the frame's rectangle in pixels.
func (f *Frame) Bounds() image.Rectangle {
	if f.jpeg != nil {
		return image.Rectangle{Max: f.jpeg.size}
	}
	return image.Rect(0, 0, f.mat.Cols(), f.mat.Rows())
}

// Image copies the frame's pixels into a Go image: for fake models and tests, which read
// pixels without gocv. It costs a copy of the frame.
func (f *Frame) Image() (image.Image, error) {
	m := f.Mat()
	return m.ToImage()
}

// Clone returns a copy of the frame with pixels of its own, for keeping past the frame's
// steps; Close it when done. A frame from a JPEG source copies its JPEG, not its decoded
// pixels.
func (f *Frame) Clone() *Frame {
	c := f.meta()
	if f.jpeg != nil {
		c.jpeg = f.jpeg.clone()
		return c
	}
	c.mat = f.mat.Clone()
	return c
}

// meta is a Frame with f's numbers and times, and no pixels.
func (f *Frame) meta() *Frame {
	return &Frame{Camera: f.Camera, Seq: f.Seq, Captured: f.Captured, Pos: f.Pos}
}

// CloneRegion returns a copy of region r of the frame (clamped to it; the whole frame when
// nothing of r is in it), with pixels of its own: a crop kept past the frame's steps costs
// only its own pixels. Close it when done.
func (f *Frame) CloneRegion(r image.Rectangle) *Frame {
	r = r.Intersect(f.Bounds())
	if r.Empty() || r == f.Bounds() {
		return f.Clone()
	}
	c := f.meta()
	m := f.Mat()
	roi := m.Region(r)
	c.mat = roi.Clone()
	roi.Close()
	return c
}

// Closed reports whether the pixels were freed.
func (f *Frame) Closed() bool {
	if j := f.jpeg; j != nil {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.data.Ptr() == nil
	}
	return f.mat.Ptr() == nil
}

// Close frees the pixels. It is safe to call twice.
func (f *Frame) Close() {
	if f == nil {
		return
	}
	if j := f.jpeg; j != nil {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.close()
	}
	if f.mat.Ptr() != nil {
		f.mat.Close()
	}
}

// State is a camera's condition, as published in the agent status.
type State string

// Camera states.
const (
	StateStarting     State = "starting"
	StateOnline       State = "online"
	StateReconnecting State = "reconnecting"
	StateEnded        State = "ended"   // a file or folder reached its end (no loop)
	StateStopped      State = "stopped" // closed
)

// Status is a snapshot of a camera's state and counters.
type Status struct {
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Read counts frames read. Of the frames the pipeline never got:
	//   - Dropped were replaced by a newer one while the pipeline was busy (a continuous
	//     camera without max_fps: the pipeline is slower than the camera);
	//   - Skipped were replaced while the agent waited by design (trigger interval or mqtt,
	//     or max_fps);
	//   - Overflow came from a hardware-triggered camera while trigger_queue frames already
	//     waited: each is a part not inspected.
	Read     uint64 `json:"read"`
	Dropped  uint64 `json:"dropped"`
	Skipped  uint64 `json:"skipped"`
	Overflow uint64 `json:"overflow"`
}

// grabber reads frames from one opened source.
type grabber interface {
	// read fills m with the next frame; io.EOF at the end of a file or folder.
	read(m *gocv.Mat) error
	// fps is the source's frame rate, 0 when unknown.
	fps() float64
	close()
}

// Camera delivers frames from one source.
type Camera struct {
	name string
	cfg  configs.Camera
	src  Source
	log  *slog.Logger
	open func() (grabber, error)

	out      chan *Frame
	cancel   context.CancelFunc
	done     chan struct{}
	seq      uint64
	read     atomic.Uint64
	dropped  atomic.Uint64
	skipped  atomic.Uint64
	overflow atomic.Uint64

	mu     sync.Mutex
	state  State
	reason string
	notify func(Status)

	// MinBackoff is the first wait before reopening a failed source; it doubles up to
	// MaxBackoff. NoFrame is how long a source may go without a frame before it is marked
	// stalled and reopened (0: no watch). They start from the camera's reconnect config.
	MinBackoff, MaxBackoff, NoFrame time.Duration

	// Key names the camera in the config, for errors about its settings: cameras[2]. Set it
	// before Start; "" gives cameras[].
	Key string

	lastFrame atomic.Int64 // unix nanoseconds of the last frame read
	stalled   atomic.Bool  // the watchdog saw no frame for NoFrame: reopen after this read
	jpegOff   atomic.Bool  // the source's frames turned out not to be JPEG: read them decoded
	badJPEG   atomic.Uint64
	// flawedOnce: a frame that did not decode clean has been logged (flawedJPEG)
	flawedOnce atomic.Bool
	undecoded  atomic.Bool // maxUndecodable JPEG frames could not be decoded: reopen decoded
	badMu      sync.Mutex
	badAt      [maxUndecodable]time.Time // when the last bad JPEG frames came, a ring
	badNext    int                       // the ring's next slot: its oldest
	resume     int64                     // the frame a file reopened decoded goes on from (run's goroutine)
	shape      shaper
	// opening counts the opens of the source still inside the capture library, including
	// one the camera stopped waiting for when it closed (see openAbandonable).
	opening atomic.Int32
}

// New checks the camera's source and returns a Camera that is not reading yet.
func New(cfg configs.Camera, log *slog.Logger) (*Camera, error) {
	src, err := sourceOf(cfg)
	if err != nil {
		return nil, configs.RedactError(fmt.Errorf("camera %q: %w", cfg.Name, err))
	}
	c := &Camera{name: cfg.Name, cfg: cfg, src: src, log: log.With("camera", cfg.Name), state: StateStarting,
		MinBackoff: cfg.Reconnect.MinBackoff, MaxBackoff: cfg.Reconnect.MaxBackoff, NoFrame: cfg.Reconnect.NoFrameTimeout,
		shape: newShaper(cfg.Rotate, cfg.ROI)}
	if c.MinBackoff <= 0 {
		c.MinBackoff, c.MaxBackoff = time.Second, 30*time.Second
	}
	c.open = func() (grabber, error) { return openSource(src, cfg, c.log) }
	return c, nil
}

// key is Key, or cameras[] when it is not set.
func (c *Camera) key() string {
	if c.Key == "" {
		return "cameras[]"
	}
	return c.Key
}

// Name is the camera's configured name.
func (c *Camera) Name() string { return c.name }

// Source is the parsed source.
func (c *Camera) Source() Source { return c.src }

// OnStatus registers fn to be called (from the reader goroutine) when the state changes.
// Call it before Start.
func (c *Camera) OnStatus(fn func(Status)) { c.notify = fn }

// Status returns the current state and counters.
func (c *Camera) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{State: c.state, Reason: c.reason, Read: c.read.Load(), Dropped: c.dropped.Load(), Skipped: c.skipped.Load(), Overflow: c.overflow.Load()}
}

func (c *Camera) setState(s State, reason string) {
	reason = Redact(reason) // errors from OpenCV and GStreamer repeat the source
	c.mu.Lock()
	changed := c.state != s || c.reason != reason
	c.state, c.reason = s, reason
	c.mu.Unlock()
	if changed {
		c.log.Info("camera state", "state", s, "reason", reason)
		if c.notify != nil {
			c.notify(c.Status())
		}
	}
}

// Start begins reading in the camera's own goroutine. Close stops it.
func (c *Camera) Start(ctx context.Context) {
	ctx, c.cancel = context.WithCancel(ctx)
	c.out = make(chan *Frame, 1)
	if c.cfg.Trigger == "hardware" {
		c.out = make(chan *Frame, max(1, c.cfg.TriggerQueue))
	}
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		defer close(c.out)
		if c.NoFrame > 0 && c.src.Live() && !c.waitsForLine() {
			watchDone := make(chan struct{})
			defer func() { <-watchDone }()
			wctx, stopWatch := context.WithCancel(ctx)
			defer stopWatch()
			go func() {
				defer close(watchDone)
				c.watch(wctx)
			}()
		}
		c.run(ctx)
	}()
}

// waitsForLine reports whether the camera waits for its trigger line without a time limit: a
// GenICam camera with trigger hardware, whose stream checks that the camera still answers
// while the line is idle (arvstream.go), so no frame for NoFrame is not a stall.
func (c *Camera) waitsForLine() bool {
	return c.src.Kind == KindGenICam && c.cfg.Trigger == "hardware"
}

// watch marks the camera stalled when an online source delivers no frame for NoFrame. A
// read blocked inside the capture library cannot be interrupted; the state says so at once,
// and the source is reopened when the read returns.
func (c *Camera) watch(ctx context.Context) {
	t := time.NewTicker(max(c.NoFrame/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			last := time.Unix(0, c.lastFrame.Load())
			if c.Status().State == StateOnline && time.Since(last) > c.NoFrame {
				c.stalled.Store(true)
				c.setState(StateReconnecting, fmt.Sprintf("no frame for %s", c.NoFrame))
			}
		}
	}
}

// NextAfter waits for the first frame captured at or after t, closing older ones.
func (c *Camera) NextAfter(ctx context.Context, t time.Time) (*Frame, error) {
	for {
		f, err := c.Next(ctx)
		if err != nil || !f.Captured.Before(t) {
			return f, err
		}
		f.Close()
		c.skipped.Add(1) // older than asked for: not wanted, by design
	}
}

// Next waits for the next frame. It returns io.EOF when a file or folder without loop has
// ended or the camera was closed, and ctx.Err() when ctx ends first.
func (c *Camera) Next(ctx context.Context) (*Frame, error) {
	select {
	case f, ok := <-c.out:
		if !ok {
			return nil, io.EOF
		}
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the reader goroutine, waits for it and frees any frame not taken.
func (c *Camera) Close() error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	<-c.done
	for f := range c.out {
		f.Close()
	}
	if n := c.opening.Load(); n > 0 {
		c.log.Warn("the camera stopped while opening its source was still blocked in the capture library; that open is left behind and freed if it ever returns",
			"component", "camera", "opens_blocked", n)
	}
	c.setState(StateStopped, "")
	return nil
}

// run opens the source, reads until it fails or ends, and reopens with backoff. A setting
// that does not fit the frames (SettingsError) ends the camera instead.
func (c *Camera) run(ctx context.Context) {
	backoff := c.MinBackoff
	for ctx.Err() == nil {
		g, err := c.openAbandonable(ctx)
		if ctx.Err() != nil {
			if g != nil {
				g.close()
			}
			return
		}
		if err != nil {
			c.setState(StateReconnecting, err.Error())
			if !Sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, c.MaxBackoff)
			continue
		}
		if cg, ok := g.(*capture); ok && (cg.sniff || c.shape.identity() && !c.jpegOff.Load()) {
			if !cg.sniff {
				cg.passJPEG(c.src)
			}
			cg.undecodable, cg.dropped, cg.flawed = c.undecodableJPEG, c.droppedJPEG, c.flawedJPEG
		} else if ok && c.resume > 0 {
			cg.vc.Set(gocv.VideoCapturePosFrames, float64(c.resume))
		}
		c.lastFrame.Store(time.Now().UnixNano())
		c.stalled.Store(false)
		c.setState(StateOnline, "")
		before := c.read.Load()
		err = c.readAll(ctx, g)
		g.close()
		delivered := c.read.Load() > before
		if delivered {
			backoff = c.MinBackoff // it delivered: the next failure starts the backoff again
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, io.EOF) && c.cfg.Loop && !delivered:
			// a folder or file with nothing readable would be reopened at once, for ever
			err = fmt.Errorf("the %s ended without one frame the agent could read: check that it holds pictures or video OpenCV decodes", c.src.Kind)
		case errors.Is(err, io.EOF) && c.cfg.Loop:
			continue
		case errors.Is(err, io.EOF):
			c.setState(StateEnded, "end of "+string(c.src.Kind))
			return
		case errors.As(err, new(*SettingsError)):
			// the next open delivers the same frames: say it once and end, not reconnect forever
			c.log.Error("camera ended: its settings do not fit the frames its source delivers; fix the config and reload", "component", "camera", "err", err)
			c.setState(StateEnded, err.Error())
			return
		}
		c.setState(StateReconnecting, err.Error())
		if !Sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, c.MaxBackoff)
	}
}

// openAbandonable opens the source in a goroutine of its own and waits for it until ctx ends.
// An open may block in the capture library for good (OpenCV's GStreamer backend waits
// forever on some pipelines, a network source may hang), and the camera must still stop:
// when ctx ends first, the open is abandoned, counted in c.opening, and its goroutine closes
// what it opened if it ever returns. An open that takes longer than NoFrame marks the camera
// reconnecting with the reason, and is waited for (a second open is not started beside it).
func (c *Camera) openAbandonable(ctx context.Context) (grabber, error) {
	type result struct {
		g   grabber
		err error
	}
	res := make(chan result) // unbuffered: a result nobody takes goes to the abandon case
	abandon := make(chan struct{})
	c.opening.Add(1)
	go func() {
		defer c.opening.Add(-1)
		g, err := c.open()
		select {
		case res <- result{g, err}:
		case <-abandon:
			if g != nil {
				g.close()
			}
		}
	}()
	var slow <-chan time.Time
	if c.NoFrame > 0 {
		t := time.NewTimer(c.NoFrame)
		defer t.Stop()
		slow = t.C
	}
	for {
		select {
		case r := <-res:
			return r.g, r.err
		case <-slow:
			slow = nil
			c.setState(StateReconnecting, fmt.Sprintf("opening the source has not finished after %s (reconnect.no_frame_timeout): the capture library is still waiting for it; check that the source answers", c.NoFrame))
		case <-ctx.Done():
			close(abandon)
			return nil, ctx.Err()
		}
	}
}

// readAll reads frames from g until an error or the end, handing each to the pipeline.
func (c *Camera) readAll(ctx context.Context, g grabber) error {
	paced := !c.src.Live() && c.cfg.Realtime
	var interval time.Duration
	if paced {
		fps := c.cfg.FPS
		if fps <= 0 {
			fps = g.fps()
		}
		if fps <= 0 || math.IsNaN(fps) {
			fps = 10
		}
		interval = time.Duration(float64(time.Second) / fps)
	}
	next := time.Now()
	pace := time.NewTimer(time.Hour) // one timer for the run, not one per frame
	defer pace.Stop()
	pos := c.resume // a file reopened to read it decoded goes on where it was
	c.resume = 0
	for ctx.Err() == nil {
		f := &Frame{Camera: c.name, Pos: -1} // read into f: one allocation a frame (two for a JPEG frame)
		if err := readFrame(g, f); err != nil {
			f.Close()
			if errors.Is(err, errNotJPEG) {
				c.decodeFrom(pos, err)
			}
			if errors.Is(err, errNoFrameYet) && !c.stalled.Load() {
				continue // a bounded wait passed without a frame: look at ctx, wait again
			}
			if errors.Is(err, errNoFrameYet) {
				return fmt.Errorf("no frame for %s", c.NoFrame)
			}
			return err
		}
		c.lastFrame.Store(time.Now().UnixNano())
		// JPEG frames libjpeg could not decode: read them decoded. Only while the capture hands
		// them on: the flag may be set late by a frame of the read before, decoded after the
		// switch was made
		if cg, ok := g.(*capture); ok && cg.jpeg && c.undecoded.Swap(false) {
			f.Close()
			err := fmt.Errorf("%w: %d frames from the source could not be decoded", errNotJPEG, c.badJPEG.Load())
			c.decodeFrom(pos, err)
			return err
		}
		if c.stalled.Load() {
			f.Close()
			return fmt.Errorf("no frame for %s", c.NoFrame)
		}
		if err := c.shape.apply(f, c.key()); err != nil {
			f.Close()
			return err
		}
		c.seq++
		c.read.Add(1)
		f.Seq, f.Captured = c.seq, time.Now()
		if !c.src.Live() {
			f.Pos = pos
			pos++
		}
		if !c.hand(ctx, f, c.src.Live() || c.cfg.Realtime) {
			return ctx.Err()
		}
		if paced {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				pace.Reset(d)
				select {
				case <-pace.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			} else if d < -time.Second {
				next = time.Now() // fell far behind (a stall): do not burst to catch up
			}
		}
	}
	return ctx.Err()
}

// hand passes f to the pipeline. A frame of a live (or realtime) source does not wait for it:
// with trigger hardware it joins the queue, or, when the queue is full, is an overflow
// (closed, counted and logged); otherwise it replaces a frame not yet taken (counted dropped,
// or skipped when the agent waits by design). Other frames wait. It reports false when ctx
// ended.
func (c *Camera) hand(ctx context.Context, f *Frame, live bool) bool {
	if !live {
		select {
		case c.out <- f:
			return true
		case <-ctx.Done():
			f.Close()
			return false
		}
	}
	if c.cfg.Trigger == "hardware" {
		select {
		case c.out <- f:
		default:
			f.Close()
			if n := c.overflow.Add(1); n == 1 || n%100 == 0 {
				c.log.Error("triggered frame not inspected: the pipeline is behind the trigger and trigger_queue is full; slow the line, raise trigger_queue, or use a faster model",
					"component", "camera", "trigger_queue", cap(c.out), "overflow_total", n)
			}
		}
		return true
	}
	replaced := &c.dropped
	if c.cfg.Trigger == "interval" || c.cfg.Trigger == "mqtt" || c.cfg.MaxFPS > 0 {
		replaced = &c.skipped
	}
	for {
		select {
		case c.out <- f:
			return true
		default:
		}
		select {
		case old := <-c.out:
			old.Close()
			replaced.Add(1)
		default:
		}
	}
}

// Sleep waits d, or until ctx ends; it reports whether the whole wait passed (ctx still
// running). A d of zero or less waits nothing. It paces reconnects here, and frames in the
// agent's interval and max_fps triggers.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// openSource opens src with gocv; a USB camera gets its device settings.
func openSource(src Source, cfg configs.Camera, log *slog.Logger) (grabber, error) {
	switch src.Kind {
	case KindFolder:
		return openFolder(src.Target)
	case KindGenICam:
		return openGenICam(src, cfg, log)
	}
	var (
		vc  *gocv.VideoCapture
		err error
	)
	switch src.Kind {
	case KindUSB:
		if src.Index >= 0 {
			vc, err = gocv.VideoCaptureDeviceWithAPI(src.Index, gocv.VideoCaptureV4L2)
		} else {
			target := src.Target
			if resolved, rerr := filepath.EvalSymlinks(target); rerr == nil {
				target = resolved // /dev/v4l/by-id/... -> /dev/videoN
			}
			vc, err = gocv.VideoCaptureFileWithAPI(target, gocv.VideoCaptureV4L2)
		}
	case KindGStreamer:
		if err := checkPipeline(src.Target); err != nil {
			return nil, err
		}
		vc, err = gocv.VideoCaptureFileWithAPI(src.Target, gocv.VideoCaptureGstreamer)
	case KindStream:
		if rtspViaGStreamer(src, cfg) { // rtsp://: through rtspsrc, per camera (rtsp.go)
			if cfg.RTSP.Transport == configs.RTSPAuto {
				return openRTSPAuto(src, cfg, log, func() (grabber, error) {
					return openSource(src, cfg, log) // now through FFmpeg
				})
			}
			return openRTSP(src, cfg)
		}
		ffmpegTimeouts()
		vc, err = gocv.VideoCaptureFileWithAPI(src.Target, gocv.VideoCaptureFFmpeg)
	default:
		if _, serr := os.Stat(src.Target); serr != nil {
			return nil, serr
		}
		vc, err = gocv.VideoCaptureFile(src.Target)
	}
	if err != nil {
		if vc != nil {
			vc.Close()
		}
		// gocv's error repeats the source: mask its secrets in the text, not only ours
		return nil, configs.RedactError(fmt.Errorf("cannot open %s %s: %w", src.Kind, src.Target, err))
	}
	if !vc.IsOpened() {
		vc.Close()
		return nil, fmt.Errorf("cannot open %s %s", src.Kind, Redact(src.Target))
	}
	if src.Kind == KindUSB {
		if ignored := applyDevice(vc, cfg.Device); len(ignored) > 0 {
			log.Warn("the camera ignored settings", "ignored", strings.Join(ignored, "; "))
		}
	}
	c := &capture{vc: vc, file: src.Kind == KindFile}
	if src.Kind == KindGStreamer {
		// the caps' size: an image/jpeg sample's pictures must have it
		c.sniff, c.size = true, image.Pt(int(vc.Get(gocv.VideoCaptureFrameWidth)), int(vc.Get(gocv.VideoCaptureFrameHeight)))
	}
	return c, nil
}

// videoCapture is the part of gocv.VideoCapture a capture uses (a fake stands in the tests
// for a V4L2 camera, which this machine lacks).
type videoCapture interface {
	propDevice
	Read(m *gocv.Mat) bool
	CodecString() string
	Close() error
}

// capture reads from a gocv VideoCapture.
type capture struct {
	vc    videoCapture
	file  bool
	fails int
	// jpeg: the capture hands on its source's JPEG packets undecoded (see passJPEG).
	jpeg bool
	// sniff: the capture's frames may be JPEG packets (a GStreamer pipeline whose appsink
	// takes image/jpeg): each frame that is one is handed on as JPEG (see readFrame).
	sniff bool
	// kind is the source's, once passJPEG switched the capture to hand on JPEG.
	kind Kind
	// undecodable is told of a handed-on frame that libjpeg could not decode.
	undecodable func()
	// dropped is told of a frame dropped because it is not a JPEG picture of the stream's size.
	dropped func(error)
	// flawed is told of a handed-on frame that did not decode clean (turbojpeg.go).
	flawed func(error)
	// size is the stream's frame size, as the capture library read it from the stream or
	// the pipeline's caps (0 x 0: unknown).
	size image.Point
	// droppedInRow counts the frames dropped in a row (see dropped).
	droppedInRow int
}

// OpenCV's capture backends and the FFmpeg backend's raw mode (CAP_PROP_FORMAT = -1: read
// returns each packet as it is in the stream).
const (
	backendV4L2   = 200
	backendFFmpeg = 1900
	formatRaw     = -1
)

// passJPEG switches c, before its first read, to hand on the frames of an MJPEG source as
// their JPEG packets, so that each stage decodes only what it needs (jpeg.go):
//   - a file or stream read through FFmpeg whose codec is Motion JPEG, in FFmpeg's raw mode;
//   - a USB camera that delivers MJPEG (device.fourcc: MJPG),
//     with OpenCV's V4L2 backend told not to convert (CAP_PROP_CONVERT_RGB = 0): a read
//     then returns the driver's buffer, one row of bytes.
//
// It leaves any other source decoding as before. A GStreamer pipeline needs no switch: its
// JPEG frames are found as they come (readFrame).
func (c *capture) passJPEG(src Source) {
	var (
		raw gocv.VideoCaptureProperties // the property that hands on the packets
		on  float64                     // its value that does
	)
	switch src.Kind {
	case KindFile, KindStream:
		if c.vc.Get(gocv.VideoCaptureBackend) != backendFFmpeg || !mjpeg(c.vc.CodecString()) {
			return
		}
		raw, on = gocv.VideoCaptureFormat, formatRaw
	case KindUSB:
		if c.vc.Get(gocv.VideoCaptureBackend) != backendV4L2 || !mjpeg(fourccString(c.vc.Get(gocv.VideoCaptureFOURCC))) {
			return
		}
		raw, on = gocv.VideoCaptureConvertRGB, 0
	default:
		return
	}
	c.size = image.Pt(int(c.vc.Get(gocv.VideoCaptureFrameWidth)), int(c.vc.Get(gocv.VideoCaptureFrameHeight)))
	c.vc.Set(raw, on)
	c.jpeg, c.kind = c.vc.Get(raw) == on, src.Kind
}

// undecodableJPEG counts and logs a frame handed on as JPEG that libjpeg could not decode:
// its pixels are black, and the frame goes on (see badJPEGFrame).
func (c *Camera) undecodableJPEG() { c.badJPEGFrame(nil) }

// droppedJPEG counts and logs a frame dropped because it is not a JPEG picture of the
// stream's size (see badJPEGFrame).
func (c *Camera) droppedJPEG(why error) { c.badJPEGFrame(why) }

// undecodableWindow: maxUndecodable bad JPEG frames within it make the camera read its source
// decoded; as many spread over a long run (a glitch now and then) do not.
const undecodableWindow = time.Minute

// badJPEGFrame counts a JPEG frame that went on black (dropped nil) or was dropped, and logs
// it (the first three and every hundredth). At the third of either within undecodableWindow
// (wall-clock time: for a file read faster than real time, more frames apart), the
// camera reopens its source to read it decoded by the capture library (see decodeFrom); a
// GStreamer pipeline's frames go on as they are, as only the agent decodes its JPEG.
func (c *Camera) badJPEGFrame(dropped error) {
	n := c.badJPEG.Add(1)
	if n <= maxUndecodable || n%100 == 0 {
		if dropped != nil {
			c.log.Warn("a frame from the source was dropped: it is not a JPEG picture of the stream's size: check the camera's stream",
				"component", "camera", "err", dropped, "bad_jpeg_total", n)
		} else {
			c.log.Warn("a frame from the source is a JPEG that cannot be decoded; it went on as a black frame: check the camera's stream",
				"component", "camera", "bad_jpeg_total", n)
		}
	}
	if c.jpegOff.Load() || c.src.Kind == KindGStreamer { // not for a frame read before the switch
		return
	}
	c.badMu.Lock()
	defer c.badMu.Unlock()
	now := time.Now()
	c.badAt[c.badNext] = now
	c.badNext = (c.badNext + 1) % maxUndecodable
	if oldest := c.badAt[c.badNext]; !oldest.IsZero() && now.Sub(oldest) <= undecodableWindow {
		c.undecoded.Store(true)
	}
}

// flawedJPEG logs, once per camera, a frame that did not decode clean: libjpeg repaired it
// (corrupt or cut-short data, stray bytes between markers), or TurboJPEG could not decode it
// and OpenCV's imdecode got it. One such frame is a glitch; a camera whose every frame is so
// has a cable, a setting or firmware to look at.
func (c *Camera) flawedJPEG(err error) {
	if c.flawedOnce.Swap(true) {
		return
	}
	c.log.Warn("a frame from the source is a flawed JPEG (decoded as far as libjpeg could, or by OpenCV); said once: if it goes on, check the camera's cable, JPEG settings and firmware",
		"component", "camera", "err", err)
}

// maxUndecodable JPEG frames from a source make the camera read it decoded.
const maxUndecodable = 3

// decodeFrom makes the camera's next open read its source decoded, not as JPEG (a file from
// frame pos on, where it was), and says so once.
func (c *Camera) decodeFrom(pos int64, why error) {
	if c.jpegOff.Swap(true) {
		return
	}
	if c.src.Kind == KindFile {
		c.resume = pos
	}
	c.log.Warn("the source's frames cannot be handed on as JPEG; reading it decoded from now on", "component", "camera", "err", why)
}

// mjpeg reports whether FFmpeg's codec, as OpenCV names it, is Motion JPEG: the stream's
// tag (MJPG in an AVI) or, without one, the first four letters of the codec's name ("mjpe"
// for an HTTP multipart stream).
func mjpeg(codec string) bool {
	switch strings.ToLower(codec) {
	case "mjpg", "mjpe", "jpeg":
		return true
	}
	return false
}

// readFrame reads g's next frame into f: its JPEG from a capture that hands it on, or from a
// GStreamer pipeline that delivers JPEG; else its decoded pixels. A JPEG frame that is not a
// picture of the stream's size (a corrupt or hostile header) is dropped and the next read;
// maxUndecodable in a row end the read.
func readFrame(g grabber, f *Frame) error {
	c, _ := g.(*capture)
	if c == nil || !c.jpeg && !c.sniff {
		f.mat = gocv.NewMat()
		return g.read(&f.mat)
	}
	// read into the frame's own Mat (on the heap already), then moved out: a Mat of this
	// function's own that the read points to would be one allocation a frame
	f.mat = gocv.NewMat()
	err := c.read(&f.mat)
	data := f.mat
	f.mat = gocv.Mat{}
	if err != nil {
		data.Close()
		return err
	}
	if c.sniff && !c.encodedSample(data) {
		f.mat = data // pixels: the pipeline decodes its frames itself
		c.droppedInRow = 0
		return nil
	}
	err = f.setJPEG(data)
	switch {
	case err != nil:
		data.Close()
		if !c.sniff && c.kind != KindUSB {
			return err // FFmpeg's packets are not JPEG after all: read the source decoded
		}
	case c.size.X > 0 && c.size.Y > 0 && f.jpeg.size != c.size:
		// a corrupt header, or a hostile one that would make a black frame of its size
		err = fmt.Errorf("%w: it says it is %dx%d in a %dx%d stream", errNotJPEG, f.jpeg.size.X, f.jpeg.size.Y, c.size.X, c.size.Y)
		f.Close()
	}
	if err != nil {
		*f = Frame{Camera: f.Camera, Pos: -1}
		if c.droppedInRow++; c.droppedInRow >= maxUndecodable {
			if c.sniff {
				return fmt.Errorf("%d samples in a row from the pipeline are not JPEG pictures of its %dx%d (the last: %v): check the camera's stream, or decode in the pipeline (jpegdec ! videoconvert ! video/x-raw,format=BGR ! appsink)",
					c.droppedInRow, c.size.X, c.size.Y, err)
			}
			return fmt.Errorf("%w: %d frames in a row are not pictures of the stream's size (the last: %v)", errNotJPEG, c.droppedInRow, err)
		}
		if c.dropped != nil {
			c.dropped(err)
		}
		return readFrame(g, f)
	}
	f.jpeg.onBad, f.jpeg.onFlawed = c.undecodable, c.flawed
	c.droppedInRow = 0
	return nil
}

// encodedSample reports whether m, a frame from a GStreamer pipeline, is encoded bytes (one
// row of 8-bit values, as OpenCV delivers a sample of image/jpeg caps), not a picture one
// pixel high of the caps' size (a line-scan camera's).
func (c *capture) encodedSample(m gocv.Mat) bool {
	return m.Rows() == 1 && m.Type() == gocv.MatTypeCV8U && !(c.size.Y == 1 && c.size.X == m.Cols())
}

func (c *capture) read(m *gocv.Mat) error {
	if c.vc.Read(m) && !m.Empty() {
		c.fails = 0
		return nil
	}
	if c.file {
		return io.EOF
	}
	c.fails++
	if c.fails >= 5 {
		return errors.New("no frame from the source after 5 reads")
	}
	return c.read(m)
}

func (c *capture) fps() float64 { return c.vc.Get(gocv.VideoCaptureFPS) }
func (c *capture) close()       { c.vc.Close() }

// folder reads the images of a folder in name order.
type folder struct {
	files []string
	i     int
}

func openFolder(dir string) (grabber, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && IsImage(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("folder %s holds no images (.jpg, .png, .bmp, .tif, .webp)", dir)
	}
	sort.Strings(files)
	return &folder{files: files}, nil
}

func (f *folder) read(m *gocv.Mat) error {
	for f.i < len(f.files) {
		img := gocv.IMRead(f.files[f.i], gocv.IMReadColor)
		f.i++
		if img.Empty() {
			img.Close()
			continue // not an image after all: skip it
		}
		m.Close()
		*m = img
		return nil
	}
	return io.EOF
}

func (f *folder) fps() float64 { return 0 }
func (f *folder) close()       {}

// FrameOf makes a Frame of a Go image (Seq 1, Pos -1, captured now): pixels drawn by a test,
// or decoded elsewhere. Close it when done.
func FrameOf(img image.Image) (*Frame, error) {
	m, err := gocv.ImageToMatRGB(img)
	if err != nil {
		return nil, fmt.Errorf("image to frame: %w", err)
	}
	return &Frame{Camera: "image", Seq: 1, Captured: time.Now(), Pos: -1, mat: m}, nil
}

// ReadImage reads one image file as a Frame (Seq 1, Pos 0), for offline prediction.
func ReadImage(path string) (*Frame, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	m := gocv.IMRead(path, gocv.IMReadColor)
	if m.Empty() {
		m.Close()
		return nil, fmt.Errorf("%s: not an image OpenCV can read", path)
	}
	return &Frame{Camera: filepath.Base(path), Seq: 1, Captured: time.Now(), Pos: 0, mat: m}, nil
}
