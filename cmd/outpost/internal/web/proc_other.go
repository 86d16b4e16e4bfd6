//go:build !linux

package web

// readProc has no /proc to read outside Linux.
func readProc() (procStats, bool) { return procStats{}, false }
