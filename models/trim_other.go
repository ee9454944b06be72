//go:build !linux

package models

// ReleaseMemory does nothing outside Linux (see trim_linux.go).
func ReleaseMemory() {}
