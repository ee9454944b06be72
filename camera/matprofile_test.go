//go:build matprofile

package camera

import (
	"os"
	"testing"

	"github.com/cvedge/cvedge/preprocess"
)

// TestMain fails the run when a gocv Mat is left unfreed (build tag matprofile).
func TestMain(m *testing.M) { os.Exit(preprocess.CheckMats(m.Run())) }

// matProfile: gocv allocates on the Go heap to record each Mat, so allocations are counted
// only in a run without the tag (make test has one).
const matProfile = true
