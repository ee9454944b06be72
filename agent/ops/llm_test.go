package ops

import (
	"testing"
)

// TestLLMTokenMetrics: the LLM's tokens of the snapshot are counted by kind, and their cost
// only when a price makes one.
func TestLLMTokenMetrics(t *testing.T) {
	snap := Snapshot{LLM: map[string]uint64{"answered": 3}, LLMTokens: map[string]uint64{"prompt": 1000, "completion": 20}, LLMCost: 0.0027}
	m := NewMetrics(func() Snapshot { return snap })
	got := map[string]float64{}
	gather := func() {
		clear(got)
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, mt := range f.GetMetric() {
				name := f.GetName()
				for _, l := range mt.GetLabel() {
					name += "," + l.GetName() + "=" + l.GetValue()
				}
				got[name] = mt.GetCounter().GetValue()
			}
		}
	}
	gather()
	for name, want := range map[string]float64{"cvedge_llm_tokens_total,kind=prompt": 1000, "cvedge_llm_tokens_total,kind=completion": 20,
		"cvedge_llm_cost_total": 0.0027, "cvedge_llm_calls_total,outcome=answered": 3} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", name, v, ok, want)
		}
	}
	snap.LLMCost = 0
	gather()
	if _, ok := got["cvedge_llm_cost_total"]; ok {
		t.Error("a cost without a price")
	}
}
