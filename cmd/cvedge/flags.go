package main

import (
	"errors"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// modelFlags are the model settings a command line may change; the rest are the defaults.
type modelFlags struct {
	format    string
	threshold float64
	resize    string
	inputSize int
	library   string
}

func (f *modelFlags) register(cmd *cobra.Command) {
	d := configs.DefaultModel()
	cmd.Flags().StringVar(&f.format, "format", d.Format, "export format: "+strings.Join(configs.ModelFormats, ", "))
	cmd.Flags().Float64Var(&f.threshold, "threshold", d.Threshold, "detectors: drop boxes at or below this probability")
	cmd.Flags().StringVar(&f.resize, "resize", d.Resize, "fit regions to the input: stretch or center_crop")
	cmd.Flags().IntVar(&f.inputSize, "input-size", d.InputSize, "input size for YOLO exports with symbolic height and width")
	cmd.Flags().StringVar(&f.library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search, see docs/operations.md)")
}

// model returns the settings of a model at path, validated like a config entry; each
// problem names its flag (models.m.input_size is --input-size).
func (f *modelFlags) model(path string) (configs.Model, error) {
	m := configs.DefaultModel()
	m.Path, m.Format, m.Threshold, m.Resize, m.InputSize = path, f.format, f.threshold, f.resize, f.inputSize
	cfg := configs.Config{Models: map[string]configs.Model{"m": m}}
	var bad []string
	for _, p := range configs.ProblemsUnder(cfg.Validate(), "models.m.") {
		flag := strings.ReplaceAll(strings.TrimPrefix(p.Key, "models.m."), "_", "-")
		bad = append(bad, "--"+flag+": "+p.Err.Error())
	}
	if len(bad) > 0 {
		return m, usageError{errors.New(strings.Join(bad, "\n"))}
	}
	return m, nil
}

func (f *modelFlags) runtime() (*models.Runtime, error) {
	return models.NewRuntime(models.Options{Library: f.library})
}

// stageSet holds the models a command loads with its command line's settings.
type stageSet struct {
	flags  *modelFlags
	rt     *models.Runtime
	stages []*pipeline.ModelStage // in the order loaded
}

// openStages opens onnxruntime for the command's models; the set's close frees them and it.
func (f *modelFlags) openStages() (*stageSet, error) {
	rt, err := f.runtime()
	if err != nil {
		return nil, err
	}
	return &stageSet{flags: f, rt: rt}, nil
}

// load loads the export at path, named after its file or folder.
func (s *stageSet) load(path string) (*pipeline.ModelStage, error) {
	mc, err := s.flags.model(path)
	if err != nil {
		return nil, err
	}
	st, err := pipeline.LoadStage(s.rt, filepath.Base(filepath.Clean(path)), mc)
	if err != nil {
		return nil, err
	}
	s.stages = append(s.stages, st)
	return st, nil
}

func (s *stageSet) close() {
	for _, st := range s.stages {
		st.Close()
	}
	s.rt.Close()
}

// brokerFlags adds the flags of a desk tool's broker connection (cvedge collect, cvedge
// review) into m; who names the tool in the client id's help.
func brokerFlags(f *pflag.FlagSet, m *configs.MQTT, who string) {
	f.StringVar(&m.Broker, "broker", m.Broker, "broker URL")
	f.StringVar(&m.ClientID, "client-id", m.ClientID, "stable client id: the broker keeps samples for it while the "+who+" is away")
	f.StringVar(&m.Username, "username", "", "broker user name")
	f.StringVar(&m.PasswordFile, "password-file", "", "file holding the broker password (or set CVEDGE_MQTT_PASSWORD)")
	f.StringVar(&m.TLS.CAFile, "ca-file", "", "CA bundle of the broker's certificate")
	f.StringVar(&m.TLS.CertFile, "cert-file", "", "client certificate, for mutual TLS")
	f.StringVar(&m.TLS.KeyFile, "key-file", "", "client key, for mutual TLS")
}
