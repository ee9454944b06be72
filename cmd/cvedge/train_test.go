package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/models/store"
)

// TestTrain runs cvedge train against a fake Training API: the iteration lands in the store
// as the shadow candidate (models list marks it, models shadow names it), not active; the
// training key and the export's SAS signature appear nowhere in stdout or stderr.
func TestTrain(t *testing.T) {
	needRuntime(t)
	const candidate = "1dd807c3-97bc-57c6-b821-d8500c86bc5b"
	api := testenv.StartFakeTraining(t, "p1", candidate)
	api.TrainingPolls, api.ExportPolls = 1, 2
	api.Download = testenv.ExportZip(t, testenv.Path("testdata", "models", "classifier-rgb01"))
	t.Setenv(collect.EnvKey, testenv.FakeTrainingKey)
	t.Setenv(collect.EnvEndpoint, "")
	t.Setenv(collect.EnvProject, "")
	dir := t.TempDir()
	if code, _, errs := cvedge(t, "models", "--store", dir, "add", "--model", "colour", testenv.Path("testdata", "demo", "classifier")); code != 0 {
		t.Fatalf("add: %s", errs)
	}
	code, out, errs := cvedge(t, "train", "--store", dir, "--model", "colour", "--training-endpoint", api.URL, "--project", "p1",
		"--ca-file", api.CAFile(t), "--poll", "1ms")
	if code != 0 || !strings.Contains(out, "colour: iteration "+candidate+" (Iteration 7) is in the store as the shadow candidate, not active") {
		t.Fatalf("train: %d\n%s%s", code, out, errs)
	}
	for _, s := range []string{testenv.FakeTrainingKey, testenv.FakeSASSecret} {
		if strings.Contains(out+errs, s) {
			t.Fatalf("output shows %s:\n%s%s", s, out, errs)
		}
	}
	_, out, _ = cvedge(t, "models", "--store", dir, "list")
	if !strings.Contains(out, candidate+"  shadow") {
		t.Fatalf("list:\n%s", out)
	}
	// again, for an iteration trained before: its export is there, and --json says what came of it
	code, out, errs = cvedge(t, "train", "--store", dir, "--model", "colour", "--training-endpoint", api.URL, "--project", "p1",
		"--ca-file", api.CAFile(t), "--poll", "1ms", "--iteration", candidate, "--json")
	var res struct {
		Iteration      string
		Shadow, Active bool
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Iteration != candidate || !res.Shadow || res.Active {
		t.Fatalf("train --iteration --json: %d %v\n%s%s", code, err, out, errs)
	}
	if _, out, _ = cvedge(t, "models", "--store", dir, "shadow", "colour"); !strings.Contains(out, "shadow candidate "+candidate+" (active ad92cb91") {
		t.Fatalf("shadow: %s", out)
	}
	if code, _, errs := cvedge(t, "models", "--store", dir, "shadow-summary", "colour"); code != 1 || !strings.Contains(errs, "no shadow summary yet: set models.colour.shadow.summary_after") {
		t.Fatalf("shadow-summary before any: %d %s", code, errs)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := `{"model":"colour","agent":"line3","active":"ad92cb91","time":"2026-11-29T12:00:00Z","summaryAfter":40,"iteration":"` + candidate +
		`","compared":40,"agreed":38,"agreement":0.95,"byTag":{"blue":{"compared":12,"agreed":12},"red":{"compared":28,"agreed":26}},"reviewed":2,"candidateRight":2}`
	if err := st.WriteShadowSummary("colour", []byte(sum)); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cvedge(t, "models", "--store", dir, "shadow-summary", "colour")
	if code != 0 || !strings.Contains(out, "agreement 0.9500 (38 of 40)") || !strings.Contains(out, "red: 26 of 28 agreed") || !strings.Contains(out, "candidate right 2") {
		t.Fatalf("shadow-summary: %d\n%s%s", code, out, errs)
	}
	// --wait-summary: waits for a summary of this candidate newer than its start, prints it
	ship := []string{"train", "--store", dir, "--model", "colour", "--training-endpoint", api.URL, "--project", "p1",
		"--ca-file", api.CAFile(t), "--poll", "1ms", "--iteration", candidate, "--wait-summary"}
	if code, _, errs := cvedge(t, append(ship, "--summary-timeout", "50ms")...); code != 1 || !strings.Contains(errs, "no shadow summary of "+candidate+" after 50ms") {
		t.Fatalf("--wait-summary with an old summary only: %d %s", code, errs)
	}
	done := make(chan struct{})
	written := make(chan struct{})
	go func() { // the agent, writing its summary now and then
		defer close(written)
		for {
			fresh := strings.Replace(sum, "2026-11-29T12:00:00Z", time.Now().UTC().Add(time.Second).Format(time.RFC3339Nano), 1)
			if err := st.WriteShadowSummary("colour", []byte(fresh)); err != nil {
				t.Error(err)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	code, out, errs = cvedge(t, append(ship, "--summary-timeout", "30s")...)
	close(done)
	<-written
	if code != 0 || !strings.Contains(out, "agreement 0.9500 (38 of 40)") {
		t.Fatalf("--wait-summary: %d\n%s%s", code, out, errs)
	}
	if _, out, _ = cvedge(t, "models", "--store", dir, "shadow", "colour", "--clear"); !strings.Contains(out, "no shadow candidate") {
		t.Fatalf("shadow --clear: %s", out)
	}
}

// TestTrainUsage: a missing model, a bad training type and a missing key are usage errors
// or say what to set.
func TestTrainUsage(t *testing.T) {
	t.Setenv(collect.EnvKey, "")
	t.Setenv(collect.EnvEndpoint, "")
	t.Setenv(collect.EnvProject, "")
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train", "--store", dir}, 2, "--model"},
		{[]string{"train", "--store", dir, "--model", "colour", "--training-type", "Fast"}, 2, "give Regular or Advanced"},
		{[]string{"train", "--store", dir, "--model", "colour", "--iteration", "../x"}, 2, "--iteration"},
		{[]string{"train", "--store", dir, "--model", "colour", "--project", "p1"}, 1, collect.EnvEndpoint + ", " + collect.EnvKey},
	} {
		code, _, errs := cvedge(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %s", c.args, code, errs)
		}
	}
}
