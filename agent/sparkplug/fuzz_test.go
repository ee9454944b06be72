package sparkplug

import (
	"testing"

	"google.golang.org/protobuf/proto"

	spb "github.com/cvedge/cvedge/agent/sparkplug/sparkplugpb"
)

// FuzzParseCommand: whatever arrives on the NCMD and DCMD topics (any host, any client of
// the broker may publish there), the parser answers or errs; it never panics, and it asks
// for a rebirth only for Node Control/Rebirth = true.
func FuzzParseCommand(f *testing.F) {
	rebirth := &spb.Payload{Timestamp: proto.Uint64(1), Metrics: []*spb.Payload_Metric{
		{Name: proto.String("Node Control/Rebirth"), Datatype: proto.Uint32(11), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: true}}}}
	other := &spb.Payload{Metrics: []*spb.Payload_Metric{
		{Alias: proto.Uint64(12), Value: &spb.Payload_Metric_LongValue{LongValue: 5}},
		{Name: proto.String("Device Control/Reboot"), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: true}},
		{Name: proto.String("x"), Value: &spb.Payload_Metric_DatasetValue{DatasetValue: &spb.Payload_DataSet{NumOfColumns: proto.Uint64(1 << 40), Columns: []string{"a"}}}},
		{Name: proto.String("t"), Value: &spb.Payload_Metric_TemplateValue{TemplateValue: &spb.Payload_Template{Metrics: []*spb.Payload_Metric{{Name: proto.String("Node Control/Rebirth")}}}}},
	}}
	for _, p := range []*spb.Payload{rebirth, other, {}} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte(`{"metrics":[{"name":"Node Control/Rebirth","value":true}]}`))
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f})             // a metric claiming 4 GiB
	f.Add([]byte{0x12, 0x05, 0x8a, 0x01, 0x02, 0x12, 0x00})       // nested, truncated
	f.Add([]byte{0x12, 0x04, 0x70, 0x01, 0x0a, 0x00, 0x08, 0x80}) // a varint cut short
	f.Fuzz(func(t *testing.T, body []byte) {
		cmd, err := parseCommand(body)
		if err != nil {
			if cmd.Rebirth || len(cmd.Ignored) > 0 {
				t.Fatalf("an error with a command: %+v", cmd)
			}
			return
		}
		if len(cmd.Ignored) > 16 {
			t.Fatalf("%d ignored metrics kept", len(cmd.Ignored))
		}
		if cmd.Rebirth {
			var p spb.Payload
			if proto.Unmarshal(body, &p) != nil {
				t.Fatal("rebirth from what does not decode")
			}
			found := false
			for _, m := range p.GetMetrics() {
				found = found || (m.GetName() == "Node Control/Rebirth" && m.GetBooleanValue())
			}
			if !found {
				t.Fatalf("rebirth without Node Control/Rebirth = true in %x", body)
			}
		}
	})
}
