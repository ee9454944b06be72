//go:build matprofile

package augment

import (
	"os"
	"testing"

	"github.com/cvedge/cvedge/preprocess"
)

// TestMain fails the run when a gocv Mat is left unfreed (build tag matprofile).
func TestMain(m *testing.M) { os.Exit(preprocess.CheckMats(m.Run())) }
