package agent

import (
	"encoding/base64"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
)

// TestBusyAnswered: a command or correction refused because too many wait before it gets a
// result naming its id and command, saying to send it again; one too broken to read gets a
// result too, with no id.
func TestBusyAnswered(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &publish.Recorder{}
	a := &Agent{log: log, env: &steps.Env{Agent: "a", Prefix: "p", Pub: rec, Log: log}}
	signed := `{"body":"` + base64.StdEncoding.EncodeToString([]byte(`{"id":"c-2","command":"reload"}`)) + `","signature":"AA=="}`
	a.onBusy("p/commands", []byte(`{"id":"c-1","command":"snapshot","camera":"line1"}`))
	a.onBusy("p/commands", []byte(signed))
	a.onBusy("p/feedback", []byte(`{"id":"fb-1","sampleId":"s-1","tag":"red"}`))
	a.onBusy("p/feedback", []byte(`{"id":"fb-2","tag":"red","colour":1}`))
	a.onBusy("p/feedback", []byte(`{"id":"fb-3","tag":`))
	got, err := publish.Decode[payload.Result](rec, "/commands/results")
	if err != nil || len(got) != 5 {
		t.Fatalf("%d results, %v", len(got), err)
	}
	for i, want := range []payload.Result{{ID: "c-1", Command: "snapshot"}, {ID: "c-2", Command: "reload"}, {ID: "fb-1", Command: "feedback"}, {ID: "fb-2", Command: "feedback"}, {ID: "", Command: "feedback"}} {
		r := got[i]
		if r.ID != want.ID || r.Command != want.Command || r.OK || !strings.Contains(r.Error, "still waiting to be handled; send this one again") {
			t.Errorf("result %d: %+v, want id %s, command %s, and the busy error", i, r, want.ID, want.Command)
		}
	}
}
