//go:build matprofile

package preprocess

import (
	"os"
	"testing"
)

// TestMain fails the run when a gocv Mat is left unfreed (build tag matprofile).
func TestMain(m *testing.M) { os.Exit(CheckMats(m.Run())) }
