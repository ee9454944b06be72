package sparkplug

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	spb "github.com/cvedge/cvedge/agent/sparkplug/sparkplugpb"
)

// maxCommand bounds an NCMD or DCMD payload: a rebirth request is a few dozen bytes, and a
// larger one is not decoded at all.
const maxCommand = 64 << 10

// command is what an NCMD or DCMD asked.
type command struct {
	// Rebirth is true when the command holds Node Control/Rebirth with the value true.
	Rebirth bool
	// Ignored names the other metrics it held (by name, or #alias), which this edge node
	// does not act on.
	Ignored []string
}

// parseCommand reads an NCMD or DCMD payload. Anything that is not a Sparkplug B payload is
// an error saying so; it never panics.
func parseCommand(body []byte) (command, error) {
	var c command
	if len(body) > maxCommand {
		return c, fmt.Errorf("the command is %d bytes, more than the %d a Sparkplug command takes: ignored", len(body), maxCommand)
	}
	var p spb.Payload
	if err := proto.Unmarshal(body, &p); err != nil {
		return c, fmt.Errorf("the command is not a Sparkplug B payload (protobuf): %w", err)
	}
	for _, m := range p.GetMetrics() {
		if m.GetName() == metricRebirth {
			if b, ok := m.GetValue().(*spb.Payload_Metric_BooleanValue); ok && b.BooleanValue {
				c.Rebirth = true
			}
			continue
		}
		if len(c.Ignored) >= 16 {
			continue
		}
		if m.Name != nil {
			c.Ignored = append(c.Ignored, m.GetName())
		} else {
			c.Ignored = append(c.Ignored, fmt.Sprintf("#%d", m.GetAlias()))
		}
	}
	return c, nil
}
