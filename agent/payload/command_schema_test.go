package payload_test

import (
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// TestCommandSchemaAgrees: docs/schemas/command.schema.json accepts the commands
// ParseCommand accepts and refuses those it refuses ("annotate" on a snapshot only, and a
// boolean), so a plant can check a command before sending it.
func TestCommandSchemaAgrees(t *testing.T) {
	schemas := testenv.LoadSchemas(t)
	for _, raw := range []string{
		`{"id":"a","command":"snapshot","camera":"c"}`,
		`{"id":"a","command":"snapshot","camera":"c","annotate":true}`,
		`{"id":"a","command":"snapshot","camera":"c","annotate":false}`,
		`{"id":"a","command":"snapshot","camera":"c","annotate":"yes"}`,
		`{"id":"a","command":"trigger","camera":"c","annotate":true}`,
		`{"id":"a","command":"reload","annotate":true}`,
		`{"id":"a","command":"trigger","camera":"c"}`,
	} {
		_, perr := payload.ParseCommand([]byte(raw))
		serr := schemas.Validate("command", []byte(raw))
		if (perr == nil) != (serr == nil) {
			t.Errorf("%s: ParseCommand says %v, the schema %v", raw, perr, serr)
		}
	}
}
