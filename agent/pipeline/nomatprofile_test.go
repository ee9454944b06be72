//go:build !matprofile

package pipeline_test

// matProfile: see matprofile_test.go.
const matProfile = false
