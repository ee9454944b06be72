//go:build !matprofile

package camera

// matProfile: see matprofile_test.go.
const matProfile = false
