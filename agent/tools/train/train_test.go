package train_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/agent/tools/iterations"
	"github.com/cvedge/cvedge/agent/tools/train"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

const (
	project   = "5a3f9e2c-7d41-4b8e-a0c6-1f2e3d4c5b6a"
	candidate = "1dd807c3-97bc-57c6-b821-d8500c86bc5b" // testdata/models/classifier-rgb01
)

func needRuntime(t *testing.T) {
	t.Helper()
	if _, err := models.FindLibrary(""); err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
}

// setup returns a shipper to the fake API, into a store whose colour model serves the demo
// classifier from the config's path, and the log it writes.
func setup(t *testing.T, api *testenv.FakeTraining) (*train.Shipper, train.Options, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mc := configs.DefaultModel()
	mc.Path = testenv.Path("testdata", "demo", "classifier")
	pool := x509.NewCertPool()
	pool.AddCert(api.Certificate())
	tr := &collect.Training{Endpoint: api.URL, Key: testenv.FakeTrainingKey, Project: project, Client: store.Client(pool, 5*time.Second),
		Backoff: time.Hour, Log: log} // a retry that ignored Retry-After: 0 would wait an hour
	sh := &train.Shipper{T: tr, M: &iterations.Manager{Store: st, Settings: map[string]configs.Model{"colour": mc}}, Log: log}
	o := train.Options{Model: "colour", Poll: time.Millisecond, Client: store.Client(pool, 5*time.Second),
		Limits: store.Limits{MaxDownload: 16 << 20, MaxUnpacked: 64 << 20, Timeout: 5 * time.Second}}
	return sh, o, &logs
}

func ship(t *testing.T, sh *train.Shipper, o train.Options) (train.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return sh.Ship(ctx, o)
}

// noSecrets fails when the training key or the SAS signature is in out.
func noSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{testenv.FakeTrainingKey, testenv.FakeSASSecret} {
		if strings.Contains(out, s) {
			t.Errorf("%s shows a secret (%s):\n%s", what, s, out)
		}
	}
}

// TestShip trains, waits through several looks at a training and a long export (with a 429
// answered Retry-After: 0 on the way), downloads the export and keeps it in the store as the
// shadow candidate, not active. Neither the key nor the SAS signature reaches the log.
func TestShip(t *testing.T) {
	needRuntime(t)
	api := testenv.StartFakeTraining(t, project, candidate)
	api.TrainingPolls, api.ExportPolls, api.Throttle = 3, 4, 1
	api.Download = testenv.ExportZip(t, testenv.Path("testdata", "models", "classifier-rgb01"))
	sh, o, logs := setup(t, api)
	o.Train = collect.TrainOptions{Type: "Advanced", ReservedHours: 2, Force: true}
	res, err := ship(t, sh, o)
	if err != nil {
		t.Fatalf("ship: %v\n%s", err, logs)
	}
	calls := api.Calls()
	want := "POST /customvision/v3.3/training/projects/" + project + "/train?forceTrain=true&reservedBudgetInHours=2&trainingType=Advanced"
	if calls[1] != want { // calls[0] was throttled
		t.Errorf("first call %q, want %q", calls[1], want)
	}
	if !strings.Contains(strings.Join(calls, "\n"), "/iterations/"+candidate+"/export?platform=ONNX") {
		t.Errorf("no export asked:\n%s", strings.Join(calls, "\n"))
	}
	if res.Added.ID != candidate || api.Downloads() != 1 {
		t.Fatalf("added %+v after %d downloads", res.Added, api.Downloads())
	}
	state, err := sh.M.Store.State("colour")
	if err != nil {
		t.Fatal(err)
	}
	if state.Shadow != candidate || state.Active != "" || len(state.Iterations) != 1 {
		t.Fatalf("store state %+v: want the candidate as shadow, nothing active", state)
	}
	if !strings.HasPrefix(state.Iterations[0].Source, "customvision:"+project) {
		t.Errorf("source %q", state.Iterations[0].Source)
	}
	noSecrets(t, "the log", logs.String())
	if !strings.Contains(logs.String(), "Custom Vision busy") {
		t.Errorf("the 429 was not met:\n%s", logs)
	}
}

// TestShipExisting exports an iteration trained before (--iteration): no training call.
func TestShipExisting(t *testing.T) {
	needRuntime(t)
	api := testenv.StartFakeTraining(t, project, candidate)
	api.Download = testenv.ExportZip(t, testenv.Path("testdata", "models", "classifier-rgb01"))
	sh, o, logs := setup(t, api)
	o.Iteration = candidate
	if _, err := ship(t, sh, o); err != nil {
		t.Fatalf("ship: %v\n%s", err, logs)
	}
	for _, c := range api.Calls() {
		if strings.Contains(c, "/train?") {
			t.Fatalf("trained with --iteration: %s", c)
		}
	}
}

// TestShipRefusals: each way the API or the export refuses ends in an error that says what
// happened and what to do, with nothing added to the store and no secret shown.
func TestShipRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*testenv.FakeTraining, *train.Options)
		want string
	}{
		{"training not needed", func(a *testenv.FakeTraining, _ *train.Options) { a.TrainCode = collect.CodeTrainingNotNeeded }, "nothing to train"},
		{"not enough images", func(a *testenv.FakeTraining, _ *train.Options) { a.TrainCode = collect.CodeNotEnoughImages }, "not enough tagged images"},
		{"training failed", func(a *testenv.FakeTraining, _ *train.Options) { a.TrainingPolls, a.TrainingFails = 2, true }, "training of iteration " + candidate + " (Iteration 7) failed"},
		{"not compact", func(a *testenv.FakeTraining, _ *train.Options) { a.NotExportable = true }, "exportable: false"},
		{"export failed", func(a *testenv.FakeTraining, _ *train.Options) { a.ExportPolls, a.ExportFails = 2, true }, "export of iteration " + candidate + " failed"},
		{"not a zip", func(a *testenv.FakeTraining, _ *train.Options) { a.Download = []byte("<html>not an export</html>") }, "not a readable ZIP"},
		{"training too long", func(a *testenv.FakeTraining, o *train.Options) {
			a.TrainingPolls, o.Poll, o.TrainTimeout = 1<<30, 5*time.Millisecond, 50*time.Millisecond
		}, "wait longer with a larger --train-timeout, or ship it later with --iteration " + candidate},
		{"unknown iteration", func(_ *testenv.FakeTraining, o *train.Options) { o.Iteration = "0000" }, "iteration 0000 of project " + project},
	} {
		t.Run(c.name, func(t *testing.T) {
			api := testenv.StartFakeTraining(t, project, candidate)
			sh, o, logs := setup(t, api)
			c.set(api, &o)
			_, err := ship(t, sh, o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q\n%s", err, c.want, logs)
			}
			noSecrets(t, "the error", err.Error())
			noSecrets(t, "the log", logs.String())
			if state, _ := sh.M.Store.State("colour"); len(state.Iterations) != 0 || state.Shadow != "" {
				t.Fatalf("store changed: %+v", state)
			}
		})
	}
}

// TestShipTagChange: a candidate with other tags than what serves is refused, and taken with
// AllowTagChange.
func TestShipTagChange(t *testing.T) {
	needRuntime(t)
	const v2 = "71fba664-7191-5667-b5c3-0f61936e8c87" // testdata/models/classifier-v2
	api := testenv.StartFakeTraining(t, project, v2)
	api.Download = testenv.ExportZip(t, testenv.Path("testdata", "models", "classifier-v2"))
	sh, o, logs := setup(t, api)
	o.Iteration = v2
	if _, err := ship(t, sh, o); err == nil || !strings.Contains(err.Error(), "the tags change") {
		t.Fatalf("other tags taken: %v\n%s", err, logs)
	}
	o.AllowTagChange = true
	if res, err := ship(t, sh, o); err != nil || res.Added.ID != v2 {
		t.Fatalf("with AllowTagChange: %+v %v", res.Added, err)
	}
}
