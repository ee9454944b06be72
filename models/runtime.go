package models

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/cvedge/cvedge/configs"
)

// LibraryEnv names the environment variable that points at libonnxruntime.so. It is also the
// environment override of the config key onnxruntime.library.
const LibraryEnv = "CVEDGE_ONNXRUNTIME_LIBRARY"

// libraryNames are the file names tried in each folder, newest first.
var libraryNames = []string{"libonnxruntime.so.1.24.1", "libonnxruntime.so.1", "libonnxruntime.so"}

// FindLibrary returns the onnxruntime shared library to load. It looks, in order, at the
// configured path, the CVEDGE_ONNXRUNTIME_LIBRARY and ONNXRUNTIME_SHARED_LIBRARY_PATH
// environment variables, lib/ beside the binary (and one folder up, for bin/cvedge), lib/
// in the working directory and the source tree around it, then the system library folders.
// When nothing is found the error lists every place it looked and how to fix it.
func FindLibrary(configured string) (string, error) {
	var tried []string
	check := func(p, why string) bool {
		tried = append(tried, fmt.Sprintf("%s (%s)", p, why))
		st, err := os.Stat(p)
		return err == nil && !st.IsDir()
	}
	if configured != "" {
		if check(configured, "config onnxruntime.library") {
			return configured, nil
		}
		return "", fmt.Errorf("onnxruntime library %s (config onnxruntime.library) does not exist: fix the path or remove the key to search the usual places", configured)
	}
	for _, env := range []string{LibraryEnv, "ONNXRUNTIME_SHARED_LIBRARY_PATH"} {
		if p := os.Getenv(env); p != "" {
			if check(p, "$"+env) {
				return p, nil
			}
			return "", fmt.Errorf("onnxruntime library %s ($%s) does not exist: fix the variable or unset it", p, env)
		}
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			d := filepath.Dir(exe)
			dirs = append(dirs, filepath.Join(d, "lib"), filepath.Join(d, "..", "lib"), filepath.Join(d, "..", "lib", "cvedge"))
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, "lib"))
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil || filepath.Dir(d) == d {
				break
			}
		}
	}
	dirs = append(dirs, systemLibDirs()...)
	seen := map[string]bool{}
	for _, d := range dirs {
		d = filepath.Clean(d)
		if seen[d] {
			continue
		}
		seen[d] = true
		for _, n := range libraryNames {
			if check(filepath.Join(d, n), "search") {
				return filepath.Join(d, n), nil
			}
		}
	}
	return "", fmt.Errorf("onnxruntime library not found; looked at:\n  %s\nfix: run scripts/setup.sh (or make setup) to fetch onnxruntime 1.24.1 into lib/, or set onnxruntime.library in the config or %s to your libonnxruntime.so",
		strings.Join(tried, "\n  "), LibraryEnv)
}

func systemLibDirs() []string {
	multiarch := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "arm": "arm-linux-gnueabihf"}[runtime.GOARCH]
	dirs := []string{"/usr/local/lib/cvedge", "/usr/lib/cvedge", "/usr/local/lib", "/usr/lib"}
	if multiarch != "" {
		dirs = append(dirs, "/usr/local/lib/"+multiarch, "/usr/lib/"+multiarch)
	}
	return append(dirs, "/opt/onnxruntime/lib")
}

// Runtime is the loaded onnxruntime library and the session settings shared by all models.
// onnxruntime has one environment per process: the first Runtime opens it, the last user
// releases it. Every open Runtime and every open Model is a user: releasing the environment
// unloads the library, and a session, tensor or binding freed after that would call into
// unmapped code and crash the process.
type Runtime struct {
	Library string
	opts    Options
	closed  bool
}

var env struct {
	sync.Mutex
	users   int
	library string
}

// Options are the session settings of a Runtime.
type Options struct {
	// Library is the configured path; empty searches (see FindLibrary).
	Library        string
	IntraOpThreads int
	InterOpThreads int
	// GraphOptimization is all (default), extended, basic or disabled.
	GraphOptimization string
	// NoMemoryArena turns onnxruntime's CPU memory arena off.
	NoMemoryArena bool
	// NoSpinning stops onnxruntime's idle pool threads from busy-waiting for the next
	// call, which leaves the CPU to capture, preprocessing and the other models.
	NoSpinning bool
	// ExecutionProvider is cpu (default), cuda, tensorrt or openvino; DeviceID picks the GPU.
	ExecutionProvider string
	DeviceID          int
	// Log hears that a provider is not available and the model runs on the CPU.
	Log *slog.Logger
}

// RuntimeOptions turns the config's onnxruntime section into a Runtime's options.
func RuntimeOptions(c configs.ONNXRuntime, log *slog.Logger) Options {
	return Options{Library: c.Library, IntraOpThreads: c.IntraOpThreads, InterOpThreads: c.InterOpThreads,
		GraphOptimization: c.GraphOptimization, NoMemoryArena: !c.MemoryArena, NoSpinning: !c.Spinning,
		ExecutionProvider: c.ExecutionProvider, DeviceID: c.DeviceID, Log: log}
}

// NewRuntime loads the onnxruntime library. Close it when no more models are to be loaded:
// the models loaded from it keep the library loaded until they are closed too.
func NewRuntime(o Options) (*Runtime, error) {
	lib, err := FindLibrary(o.Library)
	if err != nil {
		return nil, err
	}
	env.Lock()
	defer env.Unlock()
	if env.users == 0 {
		ort.SetSharedLibraryPath(lib)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("loading onnxruntime from %s: %w (it must be onnxruntime 1.24.x for this build; run scripts/setup.sh)", lib, err)
		}
		env.library = lib
	} else if env.library != lib {
		return nil, fmt.Errorf("onnxruntime is already loaded from %s; one process can load one library, not also %s", env.library, lib)
	}
	env.users++
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Runtime{Library: lib, opts: o}, nil
}

// Version is the onnxruntime version string.
func (r *Runtime) Version() string { return ort.GetVersion() }

// Close releases this user of the onnxruntime environment. Models loaded from r stay usable
// until they are closed; the library is unloaded when the last of them is.
func (r *Runtime) Close() error {
	env.Lock()
	defer env.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return releaseEnv()
}

// acquire makes a model loaded from r a user of the environment; release it with
// releaseModel.
func (r *Runtime) acquire() error {
	env.Lock()
	defer env.Unlock()
	if r.closed {
		return errors.New("the onnxruntime runtime is closed: load models before closing it")
	}
	env.users++
	return nil
}

// releaseModel releases the environment held by a model (see acquire).
func releaseModel() error {
	env.Lock()
	defer env.Unlock()
	return releaseEnv()
}

// releaseEnv drops one user, and unloads the library after the last; env is locked.
func releaseEnv() error {
	env.users--
	if env.users == 0 {
		return ort.DestroyEnvironment()
	}
	return nil
}

// sessionOptions builds the options of one session, and says which execution provider it
// runs on: "cpu", or the configured provider. A provider this onnxruntime build cannot use
// is logged and left out: the session runs on the CPU.
func (r *Runtime) sessionOptions(model string) (o *ort.SessionOptions, provider string, err error) {
	o, err = ort.NewSessionOptions()
	if err != nil {
		return nil, "", err
	}
	var errs []error
	if r.opts.IntraOpThreads > 0 {
		errs = append(errs, o.SetIntraOpNumThreads(r.opts.IntraOpThreads))
	}
	if r.opts.InterOpThreads > 0 {
		errs = append(errs, o.SetInterOpNumThreads(r.opts.InterOpThreads))
	}
	level := map[string]ort.GraphOptimizationLevel{"": ort.GraphOptimizationLevelEnableAll, "all": ort.GraphOptimizationLevelEnableAll,
		"extended": ort.GraphOptimizationLevelEnableExtended, "basic": ort.GraphOptimizationLevelEnableBasic, "disabled": ort.GraphOptimizationLevelDisableAll}[r.opts.GraphOptimization]
	errs = append(errs, o.SetGraphOptimizationLevel(level))
	if r.opts.NoMemoryArena {
		errs = append(errs, o.SetCpuMemArena(false))
	}
	if r.opts.NoSpinning {
		errs = append(errs, o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"),
			o.AddSessionConfigEntry("session.inter_op.allow_spinning", "0"))
	}
	if err := errors.Join(errs...); err != nil {
		o.Destroy()
		return nil, "", err
	}
	provider = "cpu"
	if ep := r.opts.ExecutionProvider; ep != "" && ep != "cpu" {
		if err := r.appendProvider(o, ep); err != nil {
			r.opts.Log.Warn("execution provider not available in this onnxruntime; running on the CPU", "model", model, "provider", ep, "err", err)
		} else {
			r.opts.Log.Info("execution provider", "model", model, "provider", ep, "device", r.opts.DeviceID)
			provider = ep
		}
	}
	return o, provider, nil
}

func (r *Runtime) appendProvider(o *ort.SessionOptions, ep string) error {
	device := fmt.Sprint(r.opts.DeviceID)
	switch ep {
	case "cuda":
		c, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return err
		}
		defer c.Destroy()
		if err := c.Update(map[string]string{"device_id": device}); err != nil {
			return err
		}
		return o.AppendExecutionProviderCUDA(c)
	case "tensorrt":
		t, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return err
		}
		defer t.Destroy()
		if err := t.Update(map[string]string{"device_id": device, "trt_fp16_enable": "1"}); err != nil {
			return err
		}
		return o.AppendExecutionProviderTensorRT(t)
	case "openvino":
		return o.AppendExecutionProviderOpenVINO(map[string]string{"device_type": "CPU"})
	}
	return fmt.Errorf("unknown execution provider %q", ep)
}
