// Package bench is `cvedge bench`: it measures, in one run on one machine, the models alone,
// the pipeline, the pipeline publishing to a broker, the tracking steps on the
// pipeline's detections, and a whole agent running several realtime cameras. It uses the
// public API of the pipeline, the steps and the daemon only, and reports figures; it asserts
// none.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	neturl "net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/broker"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// Options say what `cvedge bench` measures.
type Options struct {
	Detector, Classifier string // export paths; either may be empty
	Source               string // a video file or folder
	Frames               int    // frames through the pipeline (the source loops as needed)
	// Cameras, FPS and Seconds run that many realtime cameras on the source at FPS for
	// Seconds, to check for backlog; 0 cameras skips it.
	Cameras int
	FPS     float64
	Seconds float64
	Runtime configs.ONNXRuntime
	Log     *slog.Logger
	// Progress, when set, is told how far each phase has gone: n of total, reaching total
	// once per phase. The phases, in order: PhasePipeline, PhaseModels, PhaseEndToEnd,
	// PhaseModelsAgain and, with Cameras, PhaseCameras. It is called on the goroutine doing
	// the work, between frames: it should return quickly. nil is silent.
	Progress func(phase string, n, total int)
	// Motion turns each camera's motion gate on (cameras[].motion at its defaults) for the
	// multi-camera run: what an idle line costs, against every frame through the models.
	Motion bool
	// Broker is a running MQTT broker (tcp://HOST:PORT, no credentials) that the end-to-end
	// run and the cameras publish to, under cvedge/bench/: the figures are then the agent's
	// alone, as in a plant whose broker runs in a process of its own. "": a broker embedded in
	// the process, on a free loopback port, whose work counts in the figures.
	Broker string
}

// The phases of a run, as Options.Progress names them.
const (
	PhasePipeline    = "pipeline frames"     // frames through the pipeline (warm-up included)
	PhaseModels      = "models alone"        // each model and batch size timed alone
	PhaseEndToEnd    = "end to end"          // frames through the pipeline and the broker
	PhaseModelsAgain = "models alone, again" // the models timed alone once more, after the end-to-end run
	PhaseCameras     = "cameras"             // seconds of the realtime cameras
)

// progress tells o.Progress, if any, how far phase has gone.
func (o Options) progress(phase string, n, total int) {
	if o.Progress != nil {
		o.Progress(phase, n, total)
	}
}

// Percentiles are a latency's median and 99th percentile, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// RawTiming is onnxruntime's own time per call, in a tight loop, for one model and batch.
type RawTiming struct {
	Model string `json:"model"`
	// Provider is the execution provider the model's session ran on: cpu, or the configured
	// one when the onnxruntime library has it (see onnxruntime.execution_provider).
	Provider string      `json:"provider"`
	Batch    int         `json:"batch"`
	Calls    int         `json:"calls"`
	MeanMs   float64     `json:"meanMs"`
	Ms       Percentiles `json:"ms"`
}

// CameraBench is one realtime camera of the multi-camera run.
type CameraBench struct {
	Name    string      `json:"name"`
	FPS     float64     `json:"fps"`
	Dropped uint64      `json:"dropped"`
	QueueMs Percentiles `json:"queueMs"`
	// Unchanged counts the frames the motion gate kept from the models (--motion).
	Unchanged uint64 `json:"unchanged"`
}

// Report is what `cvedge bench` measured, in one run on one machine.
type Report struct {
	Machine  map[string]string `json:"machine"`
	Frames   int               `json:"frames"`
	Raw      []RawTiming       `json:"raw"`
	Pipeline struct {
		FPS                float64                `json:"fps"`
		StageMs            map[string]Percentiles `json:"stageMs"`
		DetectionsPerFrame float64                `json:"detectionsPerFrame"`
		CropsPerFrame      float64                `json:"cropsPerFrame"`
		AllocsPerFrame     float64                `json:"allocsPerFrame"`
		BytesPerFrame      float64                `json:"bytesPerFrame"`
		// CPUMsPerFrame is the process's CPU time (user and system, every thread: capture,
		// decoding, preprocessing, the models, JSON) per frame of the pipeline run.
		CPUMsPerFrame float64 `json:"cpuMsPerFrame"`
	} `json:"pipeline"`
	EndToEnd struct {
		FPS       float64     `json:"fps"`
		PublishMs Percentiles `json:"publishMs"`
	} `json:"endToEnd"`
	// ModelBoundFPS is the throughput the raw model times allow for the same work (the
	// detector per frame plus the classifier on that frame's crops); Efficiency is the
	// end-to-end throughput divided by it.
	ModelBoundFPS float64 `json:"modelBoundFps"`
	Efficiency    float64 `json:"efficiency"`
	// ModelCPUMsPerFrame is onnxruntime's CPU time for the same work, from the models alone
	// (the CPU time of their tight loops per call, weighted as the pipeline calls them);
	// CPUOverhead is the rest of the pipeline's CPU time over it: (pipeline − model) / model.
	ModelCPUMsPerFrame float64 `json:"modelCpuMsPerFrame"`
	CPUOverhead        float64 `json:"cpuOverhead"`
	// PeakRSSMB is the process's peak resident memory with one pipeline, its models and the
	// embedded broker, unless Broker is set (measured before the multi-camera run).
	PeakRSSMB float64 `json:"peakRssMB"`
	// AnonRSSMB and FileRSSMB split the resident memory at that point into private memory
	// and file-backed pages (code and data of cvedge and its shared libraries).
	AnonRSSMB float64       `json:"anonRssMB"`
	FileRSSMB float64       `json:"fileRssMB"`
	Cameras   []CameraBench `json:"cameras,omitempty"`
	// Broker is the outside broker the end-to-end run and the cameras published to
	// (Options.Broker); absent, a broker embedded in the process, whose work the figures count.
	Broker string `json:"broker,omitempty"`
	// AgentAllocsPerFrame is the Go heap allocations of the whole agent during the
	// multi-camera run, per frame processed: the pipelines, the ring, samples, stats, the
	// JSON, the MQTT client and the embedded broker (unless Broker is set).
	AgentAllocsPerFrame float64 `json:"agentAllocsPerFrame,omitempty"`
	// CamerasCPUPercent is the process's CPU time during the multi-camera run over its wall
	// time, as top shows it: 100 is one core busy.
	CamerasCPUPercent float64 `json:"camerasCpuPercent,omitempty"`
	// CamerasMemory is the process's memory during the multi-camera run.
	CamerasMemory *MemoryBench `json:"camerasMemory,omitempty"`
	// Decisions are the parts the cameras decided at a line across the middle of the frame
	// (or otherwise), with the latency a reject gate sees (cameras with a detector).
	Decisions []DecisionBench `json:"decisions,omitempty"`
	// Tracking is what following the parts costs (with a detector only).
	Tracking *TrackingBench `json:"tracking,omitempty"`
}

// MemoryBench is the process's memory during the multi-camera run, read from /proc/self/status
// each second of it: the whole agent with its cameras, models, ring and the embedded broker
// (unless Report.Broker is set).
type MemoryBench struct {
	// PrivateMB is the private resident memory (RssAnon: heaps, frames, the models' buffers)
	// and RSSMB all of it (with the shared libraries' pages): at the first second of the run,
	// at its end, and the least and most read.
	PrivateMB Span `json:"privateMB"`
	RSSMB     Span `json:"rssMB"`
	// Growth is how much the private memory grew from the first second to the end, as a share
	// of the first (0.05: 5 %). The first second is the agent starting, not a level it holds:
	// the settled figures below measure flatness.
	Growth float64 `json:"growth"`
	// PrivateTenthsMB are the means of the private memory's reads over each tenth of the run,
	// in order (one per read for a run under 10 s). The first tenth holds the start, the
	// rings filling (10 s at 10 fps) and the heaps growing to their working size.
	PrivateTenthsMB []float64 `json:"privateTenthsMB,omitempty"`
	// SettledGrowth is the last tenth's mean over the second's, less 1: how much the private
	// memory grew after the first tenth. SettledSpread is the largest of the tenths from the
	// second on over the smallest, less 1: how flat it stayed (a one-hour run: 6-minute
	// means after the first 6 minutes). Both are 0 for a run of fewer than 3 reads. They
	// measure flatness in runs of a few minutes or more: in a shorter run the tenths after
	// the first still hold the rings filling.
	SettledGrowth float64 `json:"settledGrowth"`
	SettledSpread float64 `json:"settledSpread"`
	reads         int     // the reads the tenths are of
	// PeakRSSMB is the process's peak resident memory at the end (VmHWM, since it started).
	PeakRSSMB float64 `json:"peakRssMB"`
	// GoHeapMB is the Go heap in use at the end (the rest of the private memory is C's:
	// OpenCV's frames, onnxruntime, FFmpeg).
	GoHeapMB float64 `json:"goHeapMB"`
}

// Span is a figure read over a run: the first and last read, the least and the most.
type Span struct {
	First float64 `json:"first"`
	Last  float64 `json:"last"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	n     int     // reads so far
}

// add notes one more read v.
func (s *Span) add(v float64) {
	if s.n == 0 {
		s.First, s.Min, s.Max = v, v, v
	}
	s.n++
	s.Last, s.Min, s.Max = v, min(s.Min, v), max(s.Max, v)
}

// TrackingBench is the time and the Go heap allocations per frame of the track step
// (cameras[].tracking at its defaults) and of the parts step after it (start and end events,
// each part's decision, its JSON; sent nowhere), on the detections of the pipeline's frames,
// beside the detector's own time per frame.
type TrackingBench struct {
	// Passes is how many times the steps went over the pipeline's frames, each time from the
	// start with new steps.
	Passes int `json:"passes"`
	// TrackMs and PartsMs are each step's mean time per frame, in milliseconds.
	TrackMs float64 `json:"trackMs"`
	PartsMs float64 `json:"partsMs"`
	// TrackOfDetector and PartsOfDetector are those times divided by the detector's mean time
	// per call alone (onnxruntime, batch 1).
	TrackOfDetector     float64 `json:"trackOfDetector"`
	PartsOfDetector     float64 `json:"partsOfDetector"`
	TrackAllocsPerFrame float64 `json:"trackAllocsPerFrame"`
	PartsAllocsPerFrame float64 `json:"partsAllocsPerFrame"`
}

// Run measures the models alone, the pipeline, and the pipeline publishing to a broker
// (embedded in the process unless Options.Broker), in one run.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Detector == "" && o.Classifier == "" {
		return nil, errors.New("give a detector, a classifier, or both")
	}
	if err := checkBroker(o.Broker); err != nil {
		return nil, err
	}
	if o.Frames <= 0 {
		o.Frames = 200
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// TuneMemory's collector setting ends with the bench (tests run it in their process)
	gc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	defer debug.SetGCPercent(gc)
	frameMemory := agent.TuneMemory() // as cvedge run does
	rt, err := models.NewRuntime(models.RuntimeOptions(o.Runtime, o.Log))
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	rep := &Report{Machine: machine(rt), Frames: o.Frames, Broker: o.Broker}
	rep.Machine["broker"] = rep.brokerWords()
	rep.Machine["malloc"] = fmt.Sprintf("%s; the cameras run trims the C heap every %s, as cvedge run does", frameMemory, agent.ReleaseMemoryEvery)
	rt0 := o.Runtime
	rep.Machine["onnxruntime session"] = fmt.Sprintf("provider %s (configured; each model's own in the raw timings), intra_op_threads %d, inter_op_threads %d, graph_optimization %s, memory_arena %v, spinning %v",
		rt0.ExecutionProvider, rt0.IntraOpThreads, rt0.InterOpThreads, rt0.GraphOptimization, rt0.MemoryArena, rt0.Spinning)
	det, err := load(rt, "detector", o.Detector)
	if err != nil {
		return nil, err
	}
	defer det.Close()
	cls, err := load(rt, "classifier", o.Classifier)
	if err != nil {
		return nil, err
	}
	defer cls.Close()
	if err := measure(ctx, o, det, cls, rep); err != nil {
		return nil, err
	}
	rep.PeakRSSMB, rep.AnonRSSMB, rep.FileRSSMB = memoryMB() // one pipeline, its models and the embedded broker (unless o.Broker); before the cameras run
	// 4. several realtime cameras sharing the models
	if o.Cameras > 0 {
		if err := benchCameras(ctx, o, rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// stage is a model under test; nil when the command line gave none.
type stage struct{ *pipeline.ModelStage }

// load loads the export at path with the default settings; a nil stage when path is "".
func load(rt *models.Runtime, name, path string) (*stage, error) {
	if path == "" {
		return nil, nil
	}
	mc := configs.DefaultModel()
	mc.Path = path
	st, err := pipeline.LoadStage(rt, name, mc)
	if err != nil {
		return nil, err
	}
	return &stage{st}, nil
}

// Close frees the model, if any.
func (s *stage) Close() {
	if s != nil {
		s.ModelStage.Close()
	}
}

// pipelineStage is s as the pipeline's Stage: a nil interface when there is no model.
func (s *stage) pipelineStage() pipeline.Stage {
	if s == nil {
		return nil
	}
	return s.ModelStage
}

// rawJob is one model and batch size timed alone, weighted by how often the pipeline's work
// calls it.
type rawJob struct {
	m      *models.Model
	batch  int
	weight int // calls of this batch size in the pipeline's work
	calls  []time.Duration
	cpu    time.Duration // the process's CPU time over calls
}

// measure runs the pipeline (1), the models alone on the same work (2), and the pipeline
// publishing to a broker (3). The models alone are timed before and after the end-to-end run,
// so that a machine that slows down or speeds up between runs shows in both sides of the
// efficiency.
func measure(ctx context.Context, o Options, det, cls *stage, rep *Report) error {
	crops, msgs, err := benchPipeline(ctx, o, det.pipelineStage(), cls.pipelineStage(), rep)
	if err != nil {
		return err
	}
	jobs := rawJobs(det, cls, crops, rep.Frames)
	if err := timeAll(jobs, func(n int) { o.progress(PhaseModels, n, len(jobs)) }); err != nil {
		return err
	}
	if err := benchEndToEnd(ctx, o, det.pipelineStage(), cls.pipelineStage(), rep); err != nil {
		return err
	}
	if err := timeAll(jobs, func(n int) { o.progress(PhaseModelsAgain, n, len(jobs)) }); err != nil {
		return err
	}
	var modelTime, modelCPU time.Duration
	for k, j := range jobs {
		modelCPU += time.Duration(float64(j.weight) * float64(j.cpu) / float64(max(1, len(j.calls))))
		t := rawTiming(j.m.Info.Name, j.batch, j.calls)
		t.Provider = j.m.Provider()
		rep.Raw = append(rep.Raw, t)
		modelTime += time.Duration(float64(j.weight) * t.MeanMs * float64(time.Millisecond))
		if k == 0 && det != nil { // the detector, at batch 1
			rep.Tracking = benchTracking(o, msgs, t.MeanMs)
		}
	}
	if modelTime > 0 {
		rep.ModelBoundFPS = payload.Round(float64(rep.Frames)/modelTime.Seconds(), 2)
	}
	if rep.ModelBoundFPS > 0 {
		rep.Efficiency = payload.Round(rep.EndToEnd.FPS/rep.ModelBoundFPS, 3)
	}
	if modelCPU > 0 {
		m := float64(modelCPU.Microseconds()) / 1000 / float64(rep.Frames)
		rep.ModelCPUMsPerFrame = payload.Round(m, 3)
		rep.CPUOverhead = payload.Round((rep.Pipeline.CPUMsPerFrame-rep.ModelCPUMsPerFrame)/rep.ModelCPUMsPerFrame, 3)
	}
	return nil
}

// cpuTime is the CPU time the process has used, user and system, every thread together.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawJobs is the pipeline's work as calls of the models alone: the detector once per frame,
// the classifier on each frame's crops in batches of its chunk and the rest.
func rawJobs(det, cls *stage, crops []int, frames int) []*rawJob {
	var jobs []*rawJob
	if det != nil {
		jobs = append(jobs, &rawJob{m: det.Model(), batch: 1, weight: frames})
	}
	if cls == nil {
		return jobs
	}
	counts := map[int]int{} // batch size: calls
	chunk := cls.Model().Chunk()
	for _, k := range crops {
		if det == nil {
			k = 1
		}
		if k >= chunk {
			counts[chunk] += k / chunk
		}
		if k%chunk > 0 {
			counts[k%chunk]++
		}
	}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		jobs = append(jobs, &rawJob{m: cls.Model(), batch: k, weight: counts[k]})
	}
	return jobs
}

// timeAll times each job's model alone: a warm-up, then 50 calls; done is told how many
// jobs are done after each.
func timeAll(jobs []*rawJob, done func(n int)) error {
	for k, j := range jobs {
		if _, err := j.m.Time(j.batch, 5); err != nil { // warm-up
			return err
		}
		c0 := cpuTime()
		d, err := j.m.Time(j.batch, 50)
		if err != nil {
			return err
		}
		j.cpu += cpuTime() - c0
		j.calls = append(j.calls, d...)
		done(k + 1)
	}
	return nil
}

// benchSource opens the source as a camera that hands over every frame.
func benchSource(o Options, name string) (*camera.Camera, error) {
	cc := configs.DefaultCamera()
	cc.Name, cc.Source, cc.Loop, cc.Realtime = name, o.Source, true, false
	return camera.New(cc, o.Log)
}

// benchPipeline runs Frames frames through the pipeline and the JSON encoding; it returns
// the crops per frame and the messages of the frames (after the warm-up).
func benchPipeline(ctx context.Context, o Options, det, cls pipeline.Stage, rep *Report) ([]int, []*payload.Prediction, error) {
	cam, err := benchSource(o, "bench")
	if err != nil {
		return nil, nil, err
	}
	cam.Start(ctx)
	defer cam.Close()
	pl := pipeline.New(pipeline.Options{Agent: "bench", Boot: "bench", Camera: "bench", Detector: det, Classifier: cls, Padding: 0.1})
	defer pl.Close()
	// allocated up front, so that the bookkeeping does not count in the allocations per frame
	names := []string{"queue", "preprocess", "detect", "classify", "total"}
	stages := make([][]float64, len(names))
	for k := range stages {
		stages[k] = make([]float64, 0, o.Frames)
	}
	crops := make([]int, 0, o.Frames)
	// kept for the tracking steps: a message's parts are never reused by the pipeline
	msgs := make([]*payload.Prediction, 0, o.Frames)
	var detections int
	const warm = 10
	var ms0, ms1 runtime.MemStats
	var start time.Time
	var cpu0 time.Duration
	err = benchStream(ctx, o, pl, cam, o.Frames+warm, func(i int, msg *payload.Prediction, _ []byte) {
		o.progress(PhasePipeline, i, o.Frames+warm)
		if i == warm {
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			start, cpu0 = time.Now(), cpuTime()
		}
		if i <= warm {
			return
		}
		l := msg.LatencyMs
		for k, v := range [...]float64{l.Queue, l.Preprocess, l.Detect, l.Classify, l.Total} {
			stages[k] = append(stages[k], v)
		}
		n := 0
		for _, p := range msg.Predictions {
			if p.Classification != nil {
				n++
			}
		}
		if det == nil && cls != nil {
			n = 1
		}
		crops = append(crops, n)
		msgs = append(msgs, msg)
		if det != nil {
			detections += len(msg.Predictions)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	wall, cpu := time.Since(start), cpuTime()-cpu0
	runtime.ReadMemStats(&ms1)
	p := &rep.Pipeline
	p.CPUMsPerFrame = payload.Round(float64(cpu.Microseconds())/1000/float64(o.Frames), 3)
	p.FPS = payload.Round(float64(o.Frames)/wall.Seconds(), 2)
	p.StageMs = map[string]Percentiles{}
	for k, v := range stages {
		p.StageMs[names[k]] = percentiles(v)
	}
	total := 0
	for _, c := range crops {
		total += c
	}
	p.CropsPerFrame = payload.Round(float64(total)/float64(o.Frames), 2)
	p.DetectionsPerFrame = payload.Round(float64(detections)/float64(o.Frames), 2)
	p.AllocsPerFrame = payload.Round(float64(ms1.Mallocs-ms0.Mallocs)/float64(o.Frames), 1)
	p.BytesPerFrame = payload.Round(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(o.Frames), 0)
	return crops, msgs, nil
}

// trackingFrames is about how many frames the tracking steps are timed on: the pipeline's
// frames, gone over as many times as it takes.
const trackingFrames = 3000

// benchTracking times the track step and the parts step on the messages of the pipeline's
// frames, in order, as a camera runs them: each pass with new steps and no trackIds set.
// detectorMs is the detector's own time per frame.
func benchTracking(o Options, msgs []*payload.Prediction, detectorMs float64) *TrackingBench {
	if len(msgs) == 0 {
		return nil
	}
	cc := configs.DefaultCamera()
	cc.Name, cc.Pipeline.Detector = "bench", "detector"
	env := &steps.Env{Agent: "bench", Boot: "bench", Prefix: "cvedge/bench", Pub: discard{}, Log: o.Log}
	passes := max(1, trackingFrames/len(msgs))
	var trackTime, partsTime time.Duration
	var trackAllocs, partsAllocs uint64
	var ms0, ms1, ms2 runtime.MemStats
	f := &pipeline.Frame{}
	ctx := context.Background()
	for range passes {
		for _, m := range msgs {
			for k := range m.Predictions {
				m.Predictions[k].TrackID = 0
			}
		}
		track, parts := steps.NewTrack(cc.Tracking, true, new(atomic.Uint64)), steps.NewParts(env, cc, nil, nil, nil)
		runtime.ReadMemStats(&ms0)
		t0 := time.Now()
		for _, m := range msgs {
			track.Handle(ctx, f, m)
		}
		t1 := time.Now()
		runtime.ReadMemStats(&ms1)
		t2 := time.Now()
		for _, m := range msgs {
			parts.Handle(ctx, f, m)
		}
		t3 := time.Now()
		runtime.ReadMemStats(&ms2)
		trackTime += t1.Sub(t0)
		partsTime += t3.Sub(t2)
		trackAllocs += ms1.Mallocs - ms0.Mallocs
		partsAllocs += ms2.Mallocs - ms1.Mallocs
	}
	frames := float64(passes * len(msgs))
	trackMs, partsMs := float64(trackTime)/float64(time.Millisecond)/frames, float64(partsTime)/float64(time.Millisecond)/frames
	tb := &TrackingBench{Passes: passes, TrackMs: payload.Round(trackMs, 6), PartsMs: payload.Round(partsMs, 6),
		TrackAllocsPerFrame: payload.Round(float64(trackAllocs)/frames, 2),
		PartsAllocsPerFrame: payload.Round(float64(partsAllocs)/frames, 2)}
	if detectorMs > 0 {
		tb.TrackOfDetector, tb.PartsOfDetector = significant(trackMs/detectorMs), significant(partsMs/detectorMs)
	}
	return tb
}

// significant rounds v to three significant digits.
func significant(v float64) float64 {
	if v == 0 {
		return 0
	}
	return payload.Round(v, 2-int(math.Floor(math.Log10(math.Abs(v)))))
}

// discard takes the parts' events and sends them nowhere.
type discard struct{}

func (discard) Send(publish.Message) {}

// benchStream runs n frames of cam through pl as the agent does (Stream) and gives each
// message, with its JSON, to use. It stops at the first error.
func benchStream(ctx context.Context, o Options, pl *pipeline.Pipeline, cam *camera.Camera, n int, use func(i int, msg *payload.Prediction, body []byte)) error {
	var stop atomic.Bool // read by Stream's grabbing goroutine
	var failed error
	i := 0
	_, err := pipeline.Stream(ctx, pl, func(ctx context.Context) (*camera.Frame, int, error) {
		if i == n || stop.Load() {
			return nil, i, io.EOF
		}
		f, err := cam.Next(ctx)
		i++
		return f, i, err
	}, func(f *camera.Frame, i int, msg *payload.Prediction, err error) {
		f.Close()
		var body []byte
		if err == nil {
			body, err = json.Marshal(msg)
		}
		if err != nil {
			if failed == nil {
				failed = err
			}
			stop.Store(true)
			return
		}
		use(i, msg, body)
	})
	if failed != nil {
		return failed
	}
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading %s: %w", o.Source, err)
	}
	return nil
}

// benchEndToEnd runs the frames again, publishing each prediction at QoS 1 to the broker
// (embedded on loopback, or Options.Broker), and waits until it acknowledged every one.
func benchEndToEnd(ctx context.Context, o Options, det, cls pipeline.Stage, rep *Report) error {
	url, stop, err := o.startBroker()
	if err != nil {
		return err
	}
	defer stop()
	mc := configs.Default().MQTT
	mc.Broker, mc.ClientID, mc.QueueSize = url, clientID("pipeline"), 4096
	var publishMs []float64
	var acked atomic.Int64
	pub, err := publish.Connect(mc, publish.Options{Observe: func(_ publish.Message, d time.Duration) {
		publishMs = append(publishMs, float64(d.Microseconds())/1000) // one live goroutine calls this
		acked.Add(1)
	}}, o.Log)
	if err != nil {
		return err
	}
	defer pub.Close(context.Background())
	for deadline := time.Now().Add(10 * time.Second); !pub.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the broker at %s did not accept the connection within 10 s: is it running, and open without credentials?", url)
		}
	}
	cam, err := benchSource(o, "bench")
	if err != nil {
		return err
	}
	cam.Start(ctx)
	defer cam.Close()
	pl := pipeline.New(pipeline.Options{Agent: "bench", Boot: "bench", Camera: "bench", Detector: det, Classifier: cls, Padding: 0.1})
	defer pl.Close()
	start := time.Now()
	err = benchStream(ctx, o, pl, cam, o.Frames, func(i int, _ *payload.Prediction, body []byte) {
		o.progress(PhaseEndToEnd, i, o.Frames)
		pub.Send(publish.Message{Topic: "cvedge/bench/cameras/bench/predictions", QoS: 1, Payload: body, Class: "", Camera: "bench"})
	})
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); acked.Load() < int64(o.Frames); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the broker acknowledged %d of %d messages", acked.Load(), o.Frames)
		}
	}
	rep.EndToEnd.FPS = payload.Round(float64(o.Frames)/time.Since(start).Seconds(), 2)
	rep.EndToEnd.PublishMs = percentiles(publishMs)
	return nil
}

// benchCameras runs realtime cameras on the source through one agent, with the models
// shared, and reports each camera's rate, drops and queue latency.
func benchCameras(ctx context.Context, o Options, rep *Report) error {
	dir, err := os.MkdirTemp("", "cvedge-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg, err := camerasConfig(o, dir)
	if err != nil {
		return err
	}
	url := cfg.MQTT.Broker
	a, err := agent.New(&cfg, o.Log)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	time.Sleep(time.Second) // cameras open, the first frames pass
	gate, err := watchDecisions(url, cfg.MQTT.TopicPrefix)
	if err != nil {
		cancel()
		<-done
		return err
	}
	before := map[string]agent.CameraStats{}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for _, c := range a.Stats() {
		before[c.Name] = c
	}
	measured, start, seconds := time.Duration(o.Seconds*float64(time.Second)), time.Now(), max(1, int(math.Ceil(o.Seconds)))
	cpu0 := cpuTime()
	mem := &MemoryBench{}
	reads := make([]float64, 0, seconds)
	for k := 1; k <= seconds; k++ {
		time.Sleep(time.Until(start.Add(min(time.Duration(k)*time.Second, measured))))
		o.progress(PhaseCameras, k, seconds)
		_, anon, file := memoryMB()
		mem.PrivateMB.add(anon)
		if anon > 0 { // 0: /proc could not be read (no file descriptor left)
			reads = append(reads, anon)
		}
		mem.RSSMB.add(payload.Round(anon+file, 1))
	}
	rep.CamerasCPUPercent = payload.Round(100*float64(cpuTime()-cpu0)/float64(time.Since(start)), 1)
	runtime.ReadMemStats(&ms1)
	mem.PeakRSSMB, _, _ = memoryMB()
	mem.GoHeapMB = payload.Round(float64(ms1.HeapInuse)/(1<<20), 1)
	if mem.PrivateMB.First > 0 {
		mem.Growth = payload.Round(mem.PrivateMB.Last/mem.PrivateMB.First-1, 3)
		mem.settle(reads)
		rep.CamerasMemory = mem
	}
	var processed uint64
	for _, c := range a.Stats() {
		b := before[c.Name]
		n := c.Processed - b.Processed
		processed += n
		rep.Cameras = append(rep.Cameras, CameraBench{Name: c.Name, FPS: payload.Round(float64(n)/o.Seconds, 2), Dropped: c.Dropped - b.Dropped, QueueMs: percentiles(c.QueueMs),
			Unchanged: c.Unchanged - b.Unchanged})
	}
	if processed > 0 {
		rep.AgentAllocsPerFrame = payload.Round(float64(ms1.Mallocs-ms0.Mallocs)/float64(processed), 1)
	}
	rep.Decisions = gate.stop()
	cancel()
	return <-done
}

// camerasConfig is the agent's config for the cameras run, its spool and model store in dir:
// o.Cameras realtime cameras on the source, sharing the models, publishing to o.Broker or to
// a broker the agent embeds on a free loopback port.
func camerasConfig(o Options, dir string) (configs.Config, error) {
	cfg := configs.Default()
	cfg.Agent.ID, cfg.ONNXRuntime = "bench", o.Runtime
	cfg.MQTT.ClientID, cfg.MQTT.TopicPrefix, cfg.MQTT.StatsInterval = clientID("cams"), "cvedge/bench", 0
	cfg.MQTT.Broker = o.Broker
	if o.Broker == "" {
		addr, err := freeAddr()
		if err != nil {
			return cfg, err
		}
		cfg.MQTT.Broker, cfg.MQTT.Embedded = "tcp://"+addr, configs.Embedded{Enabled: true, Listen: addr}
	}
	cfg.Spool.Dir, cfg.Store.Dir, cfg.HTTP.Listen = dir+"/spool", dir+"/models", ""
	cfg.Samples.Enabled = false
	cfg.Models = map[string]configs.Model{}
	pipe := configs.Pipeline{CropPadding: 0.1, Vote: configs.Vote{IoU: 0.3}}
	if o.Detector != "" {
		m := configs.DefaultModel()
		m.Path = o.Detector
		cfg.Models["detector"], pipe.Detector = m, "detector"
	}
	if o.Classifier != "" {
		m := configs.DefaultModel()
		m.Path = o.Classifier
		cfg.Models["classifier"], pipe.Classifier = m, "classifier"
	}
	for i := 0; i < o.Cameras; i++ {
		c := configs.DefaultCamera()
		c.Name, c.Source, c.Loop, c.Realtime, c.FPS, c.Pipeline = fmt.Sprintf("cam%d", i+1), o.Source, true, true, o.FPS, pipe
		c.Motion.Enabled = o.Motion
		if c.Tracks() {
			c.Lines, c.Decision.Line = []configs.Line{benchLine}, benchLine.Name
		}
		cfg.Cameras = append(cfg.Cameras, c)
	}
	return cfg, cfg.Validate()
}

// clientID is bench's MQTT client id for role: cvedge-bench-<role>-<host>, so that benches on
// two machines sharing one broker do not take each other's sessions.
func clientID(role string) string {
	host, _ := os.Hostname()
	id := "cvedge-bench-" + role
	if host != "" {
		id += "-" + host
	}
	return id
}

// shortRun is the run, in seconds of reads, under which the settled figures still hold the
// start: the rings fill in 10 s at 10 fps, the first tenth of a 100 s run.
const shortRun = 100

// settle fills in the means of the tenths of reads (one read each where there are fewer than
// ten) and the settled growth and spread over the tenths after the first.
func (m *MemoryBench) settle(reads []float64) {
	n := len(reads)
	m.reads = n
	k := min(10, n)
	means := make([]float64, 0, k)
	for i := range k {
		w := reads[i*n/k : (i+1)*n/k]
		var sum float64
		for _, v := range w {
			sum += v
		}
		means = append(means, sum/float64(len(w)))
	}
	m.PrivateTenthsMB = make([]float64, len(means))
	for i, v := range means {
		m.PrivateTenthsMB[i] = payload.Round(v, 1)
	}
	after := means[1:]
	if k < 3 || slices.Min(after) <= 0 {
		return
	}
	m.SettledGrowth = payload.Round(means[k-1]/means[1]-1, 3)
	m.SettledSpread = payload.Round(slices.Max(after)/slices.Min(after)-1, 3)
}

// joinMB writes figures of megabytes as a list.
func joinMB(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(s, ", ")
}

// rawTiming summarises the durations of one model's calls on batches of batch images.
func rawTiming(model string, batch int, calls []time.Duration) RawTiming {
	var ms []float64
	var sum float64
	for _, x := range calls {
		v := float64(x.Microseconds()) / 1000
		ms = append(ms, v)
		sum += v
	}
	return RawTiming{Model: model, Batch: batch, Calls: len(calls), MeanMs: payload.Round(sum/float64(max(1, len(ms))), 3), Ms: percentiles(ms)}
}

func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	at := func(q float64) float64 { return payload.Round(s[min(len(s)-1, int(q*float64(len(s))))], 3) }
	return Percentiles{P50: at(0.5), P99: at(0.99)}
}

// startBroker returns the URL of the broker to publish to: o.Broker, or a broker embedded in
// the process on a free loopback port, which stop closes.
func (o Options) startBroker() (url string, stop func(), err error) {
	if o.Broker != "" {
		return o.Broker, func() {}, nil
	}
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	b, err := broker.Start(addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return "", nil, err
	}
	return "tcp://" + addr, func() { b.Close() }, nil
}

// checkBroker checks Options.Broker before the run: empty, or tcp://HOST:PORT of something
// that takes a TCP connection.
func checkBroker(s string) error {
	if s == "" {
		return nil
	}
	u, err := neturl.Parse(s)
	if err != nil || u.Scheme != "tcp" || u.Hostname() == "" || u.Port() == "" || u.User != nil || u.Opaque != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("bench: broker %q: give tcp://HOST:PORT of a running MQTT broker that takes connections without credentials or TLS (e.g. a mosquitto on this machine: tcp://127.0.0.1:1883), or none for one embedded in the process", withoutUser(s))
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return fmt.Errorf("bench: broker tcp://%s: %w: start it, or give none for one embedded in the process", u.Host, err)
	}
	return c.Close()
}

// withoutUser is broker URL s with all before its last "@" (a user and password) left out,
// for messages.
func withoutUser(s string) string {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		return "…@" + s[i+1:]
	}
	return s
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// memoryMB reads the process's memory figures from /proc/self/status, in MB: peak resident
// (VmHWM), and the resident memory now split into private (RssAnon) and file-backed
// (RssFile: the code of cvedge and of the libraries it loads, shared with other processes).
func memoryMB() (peak, anon, file float64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	// read each second of the cameras run, whose allocations per frame count the whole
	// process: into one buffer, parsed without a string per line
	var buf [8192]byte
	n, _ := io.ReadFull(f, buf[:]) // the file is shorter: ErrUnexpectedEOF, with all of it read
	for line := range bytes.SplitSeq(buf[:n], []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		kb, ok := kilobytes(v)
		if !ok {
			continue
		}
		switch string(k) {
		case "VmHWM":
			peak = payload.Round(kb/1024, 1)
		case "RssAnon":
			anon = payload.Round(kb/1024, 1)
		case "RssFile":
			file = payload.Round(kb/1024, 1)
		}
	}
	return peak, anon, file
}

// kilobytes reads a figure of /proc/self/status such as "\t  1234 kB".
func kilobytes(v []byte) (float64, bool) {
	v, ok := bytes.CutSuffix(bytes.TrimSpace(v), []byte(" kB"))
	if !ok || len(v) == 0 {
		return 0, false
	}
	var kb float64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		kb = 10*kb + float64(c-'0')
	}
	return kb, true
}

// machine names what the figures were measured on.
func machine(rt *models.Runtime) map[string]string {
	m := map[string]string{"os": runtime.GOOS + "/" + runtime.GOARCH, "cores": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(),
		"onnxruntime": rt.Version(), "opencv": camera.OpenCVVersion(), "cvedge": agent.Version + " (" + agent.Commit + ")"}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (strings.TrimSpace(k) == "model name" || strings.TrimSpace(k) == "Model") {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	m["malloc arenas"] = "glibc default (8 per core)"
	if v := os.Getenv("MALLOC_ARENA_MAX"); v != "" {
		m["malloc arenas"] = "MALLOC_ARENA_MAX=" + v
	}
	return m
}

// brokerWords names the broker the report's messages went to.
func (r *Report) brokerWords() string {
	if r.Broker != "" {
		return "the broker at " + r.Broker + ", outside the process"
	}
	return "a broker embedded in the process"
}

// ifEmbedded is s when the broker ran in the process, and "" when it ran outside.
func (r *Report) ifEmbedded(s string) string {
	if r.Broker != "" {
		return ""
	}
	return s
}

// Markdown renders the report as the table of docs/benchmarks.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("| machine | |\n|---|---|\n")
	keys := make([]string, 0, len(r.Machine))
	for k := range r.Machine {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %s |\n", k, r.Machine[k])
	}
	fmt.Fprintf(&b, "\n%d frames.\n\n| onnxruntime alone (tight loop) | provider | batch | mean ms | p50 ms | p99 ms |\n|---|---|---|---|---|---|\n", r.Frames)
	for _, t := range r.Raw {
		fmt.Fprintf(&b, "| %s | %s | %d | %.3f | %.3f | %.3f |\n", t.Model, t.Provider, t.Batch, t.MeanMs, t.Ms.P50, t.Ms.P99)
	}
	p := r.Pipeline
	b.WriteString("\n| pipeline stage | p50 ms | p99 ms |\n|---|---|---|\n")
	for _, k := range []string{"queue", "preprocess", "detect", "classify", "total"} {
		fmt.Fprintf(&b, "| %s | %.3f | %.3f |\n", k, p.StageMs[k].P50, p.StageMs[k].P99)
	}
	fmt.Fprintf(&b, "| publish (to the broker's acknowledgement) | %.3f | %.3f |\n", r.EndToEnd.PublishMs.P50, r.EndToEnd.PublishMs.P99)
	fmt.Fprintf(&b, "\n| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| throughput allowed by the raw model times (same work) | %.2f frames/s |\n", r.ModelBoundFPS)
	fmt.Fprintf(&b, "| pipeline throughput (capture, preprocess, models, JSON) | %.2f frames/s |\n", p.FPS)
	fmt.Fprintf(&b, "| end-to-end throughput (and MQTT QoS 1 to %s) | %.2f frames/s |\n", r.brokerWords(), r.EndToEnd.FPS)
	fmt.Fprintf(&b, "| **efficiency** (end-to-end / model-bound) | **%.3f** |\n", r.Efficiency)
	fmt.Fprintf(&b, "| CPU per frame: the pipeline (every thread), onnxruntime alone on the same work | %.2f ms, %.2f ms |\n", r.Pipeline.CPUMsPerFrame, r.ModelCPUMsPerFrame)
	fmt.Fprintf(&b, "| **CPU outside the model**, of the model's CPU ((pipeline − model) / model) | **%.1f %%** |\n", 100*r.CPUOverhead)
	fmt.Fprintf(&b, "| detections per frame, crops per frame | %.2f, %.2f |\n", p.DetectionsPerFrame, p.CropsPerFrame)
	fmt.Fprintf(&b, "| Go heap allocations per frame (pipeline and JSON) | %.1f (%.0f bytes) |\n", p.AllocsPerFrame, p.BytesPerFrame)
	fmt.Fprintf(&b, "| peak RSS (one pipeline, its models%s) | %.1f MB |\n", r.ifEmbedded(", the broker"), r.PeakRSSMB)
	fmt.Fprintf(&b, "| of the resident memory then: private, file-backed (shared libraries) | %.1f MB, %.1f MB |\n", r.AnonRSSMB, r.FileRSSMB)
	if t := r.Tracking; t != nil {
		fmt.Fprintf(&b, "| tracking (track step) per frame, and of the detector's time | %.2f µs, %.2g %% |\n", t.TrackMs*1000, t.TrackOfDetector*100)
		fmt.Fprintf(&b, "| parts (decisions, events) per frame, and of the detector's time | %.2f µs, %.2g %% |\n", t.PartsMs*1000, t.PartsOfDetector*100)
		fmt.Fprintf(&b, "| Go heap allocations per frame: track step, parts step | %.2f, %.2f |\n", t.TrackAllocsPerFrame, t.PartsAllocsPerFrame)
	}
	if len(r.Cameras) > 0 {
		b.WriteString("\n| realtime camera | processed fps | dropped | queue p50 ms | queue p99 ms |\n|---|---|---|---|---|\n")
		for _, c := range r.Cameras {
			fmt.Fprintf(&b, "| %s | %.2f | %d | %.3f | %.3f |\n", c.Name, c.FPS, c.Dropped, c.QueueMs.P50, c.QueueMs.P99)
		}
		for _, c := range r.Cameras {
			if c.Unchanged > 0 {
				fmt.Fprintf(&b, "\nMotion gate: %s kept %d unchanged frames from the models.\n", c.Name, c.Unchanged)
			}
		}
		fmt.Fprintf(&b, "\nThe whole agent in this run (pipelines, ring, stats, JSON, the MQTT client%s): %.1f Go heap allocations per frame processed, %.0f %% CPU (100 %% is one core busy).\n", r.ifEmbedded(" and the embedded broker"), r.AgentAllocsPerFrame, r.CamerasCPUPercent)
		if m := r.CamerasMemory; m != nil {
			fmt.Fprintf(&b, "Its memory: private %.1f MB at the first second, %.1f MB at the end (%+.1f %%; least %.1f, most %.1f), of it %.1f MB Go heap; resident %.1f MB at the end, peak %.1f MB.\n",
				m.PrivateMB.First, m.PrivateMB.Last, 100*m.Growth, m.PrivateMB.Min, m.PrivateMB.Max, m.GoHeapMB, m.RSSMB.Last, m.PeakRSSMB)
			if len(m.PrivateTenthsMB) >= 3 {
				fmt.Fprintf(&b, "Private memory by tenth of the run (means, MB): %s; after the first tenth it grew %+.1f %% and stayed within %.1f %%",
					joinMB(m.PrivateTenthsMB), 100*m.SettledGrowth, 100*m.SettledSpread)
				if m.reads < shortRun {
					fmt.Fprintf(&b, " (a run under %d s: the tenths after the first still hold the rings filling, so these two are no measure of flatness)", shortRun)
				}
				b.WriteString(".\n")
			}
		}
		if len(r.Decisions) > 0 {
			b.WriteString("\n| parts decided by (line across the middle of the frame) | parts | latency p50 ms | p99 ms |\n|---|---|---|---|\n")
			for _, d := range r.Decisions {
				fmt.Fprintf(&b, "| %s | %d | %.3f | %.3f |\n", d.By, d.Parts, d.Ms.P50, d.Ms.P99)
			}
			b.WriteString("\nDecision latency: from the capture of the last frame that saw the part to the decision's arrival at a subscriber of the broker.\n")
		}
	}
	return b.String()
}
