package dataset

import (
	"slices"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
)

// The regions of a whole frame and the reviewer's verdict survive the index, also after a
// restart.
func TestEntryRegionsAndVerdict(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	regions := []Region{{Tag: "red", Box: payload.Box{Left: 0.5, Top: 0.5, Width: 0.2, Height: 0.25}}, {Tag: "blue", Box: payload.Box{Width: 0.1, Height: 0.1}}}
	e, added, err := d.AddJPEG(Entry{SampleID: "s-missed-1", Tag: "red", Verdict: "missed", Regions: regions}, []byte{0xFF, 0xD8, 1}, []byte{0xFF, 0xD8, 2})
	if err != nil || !added || e.FrameFile != "frames/s-missed-1.jpg" {
		t.Fatalf("%+v %v %v", e, added, err)
	}
	d.Close()
	d, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, added, _ := d.AddJPEG(Entry{SampleID: "s-missed-1", Tag: "red"}, []byte{0xFF, 0xD8, 3}, nil); added {
		t.Fatal("added twice after a restart")
	}
	entries, err := ReadIndex(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("%v %v", entries, err)
	}
	if got := entries[0]; got.Verdict != "missed" || !slices.Equal(got.Regions, regions) {
		t.Fatalf("read back %+v", got)
	}
}
