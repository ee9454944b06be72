//go:build !matprofile

package agent_test

// matProfile: see matprofile_test.go.
const matProfile = false
