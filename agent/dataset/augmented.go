package dataset

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// AugmentManifest is the manifest `cvedge collect augment` writes at the top of its output:
// a data set holding it holds augmented copies, fit for training and never for evaluation.
const AugmentManifest = "augment.jsonl"

// MaskSuffix ends the name of an image's mask, beside the image: red/a.jpg has red/a.mask.png
// (white = the part, black = the background; the image's size). Masks are not images of the
// data set.
const MaskSuffix = ".mask.png"

// augmentedName is the name of an augmented copy: <source name>.aug-<n>.jpg.
var augmentedName = regexp.MustCompile(`\.aug-[0-9]+\.jpg$`)

// AugmentedName is the file name of copy n (1, 2, ...) of the image named source.
func AugmentedName(source string, n int) string {
	return strings.TrimSuffix(source, filepath.Ext(source)) + ".aug-" + strconv.Itoa(n) + ".jpg"
}

// IsAugmented reports whether a file name is that of an augmented copy.
func IsAugmented(name string) bool {
	return augmentedName.MatchString(strings.ToLower(filepath.Base(name)))
}

// IsMask reports whether a file name is that of a mask.
func IsMask(name string) bool { return strings.HasSuffix(strings.ToLower(name), MaskSuffix) }
