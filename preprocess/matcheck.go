//go:build matprofile

package preprocess

import (
	"fmt"
	"os"

	"gocv.io/x/gocv"
)

// CheckMats is for the TestMain of a package whose tests make gocv Mats, built with the tag
// matprofile (which makes gocv count them): given the exit code of m.Run, it returns a
// failing one when a Mat was left unfreed, and lists where each was made.
func CheckMats(code int) int {
	if n := gocv.MatProfile.Count(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d gocv Mats leaked:\n", n)
		gocv.MatProfile.WriteTo(os.Stderr, 1)
		return 1
	}
	return code
}

// LiveMats is the number of gocv Mats made and not yet freed (build tag matprofile): a test
// compares it before and after what must free everything it made.
func LiveMats() int { return gocv.MatProfile.Count() }
