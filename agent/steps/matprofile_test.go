//go:build matprofile

package steps_test

import (
	"os"
	"testing"

	"github.com/cvedge/cvedge/preprocess"
)

// TestMain fails the run when a gocv Mat is left unfreed (build tag matprofile): every frame
// the agent reads must be closed by the pipeline or the camera.
func TestMain(m *testing.M) { os.Exit(preprocess.CheckMats(m.Run())) }
