//go:build matprofile

package agent_test

import (
	"fmt"
	"os"
	"testing"

	"gocv.io/x/gocv"
)

// matProfile: gocv records each Mat with allocations of its own, so allocation counts
// are not the pipeline's.
const matProfile = true

// TestMain fails the run when a gocv Mat is left unfreed (build tag matprofile): every frame
// the agent reads must be closed by the pipeline or the camera.
func TestMain(m *testing.M) {
	code := m.Run()
	if n := gocv.MatProfile.Count(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d gocv Mats leaked:\n", n)
		gocv.MatProfile.WriteTo(os.Stderr, 1)
		code = 1
	}
	os.Exit(code)
}
