package augment

import (
	"strings"
	"testing"
)

func TestParseOps(t *testing.T) {
	def, err := ParseOps("")
	if err != nil {
		t.Fatal(err)
	}
	if def.Rotate != 15 || !def.FlipH || def.FlipV || def.Blur != 5 || def.Background != 0.5 || def.String() != DefaultOps {
		t.Fatalf("defaults %+v, written back %q", def, def.String())
	}
	o, err := ParseOps(" Flip=vh , rotate=30,noise=0 ")
	if err != nil || !o.FlipH || !o.FlipV || o.Rotate != 30 || o.Noise != 0 || o.String() != "rotate=30,flip=hv" {
		t.Fatalf("%+v %v -> %q", o, err, o.String())
	}
	if o, err := ParseOps("none"); err != nil || o != (Ops{}) || o.String() != "none" {
		t.Fatalf("none: %+v %v", o, err)
	}
	for in, want := range map[string]string{
		"rotate":             `"rotate" is not NAME=VALUE`,
		"rotate=15,rotate=5": "rotate is given twice",
		"spin=3":             `unknown op "spin"; the ops are flip, rotate, scale`,
		"rotate=200":         "rotate=200: give the largest angle in degrees, 0 to 180",
		"scale=NaN":          "scale=NaN: give the largest zoom",
		"noise=Inf":          "noise=Inf",
		"brightness=-0.1":    "brightness=-0.1: give",
		"blur=4":             "blur=4: give the largest blur kernel, an odd number",
		"blur=1":             "blur=1",
		"flip=x":             "flip=x: give h (left to right), v (top to bottom), hv (either) or none",
		"rotate=5,,flip=h":   `"" is not NAME=VALUE`,
	} {
		if _, err := ParseOps(in); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "--ops: ") {
			t.Errorf("ParseOps(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

// FuzzParseOps: whatever --ops holds, ParseOps does not panic, and what it accepts it writes
// back in a form it reads as the same ops.
func FuzzParseOps(f *testing.F) {
	for _, s := range []string{DefaultOps, "", "none", "flip=hv", "rotate=180,blur=31", "blur=4", "rotate=1e309", "scale=-0", "=", ",,,", "flip=h,flip=v", "background=1,cutout=0.9", "ROTATE=5", "noise=0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOps(s)
		if err != nil {
			return
		}
		again, err := ParseOps(o.String())
		if o.String() == "none" && o != (Ops{}) {
			t.Fatalf("%q: %+v written as none", s, o)
		}
		if err != nil || again != o {
			t.Fatalf("%q: %+v written as %q, read back as %+v (%v)", s, o, o.String(), again, err)
		}
	})
}
