package web

import (
	"bytes"
	"os"
	"strconv"
)

// readProc reads the process's memory sizes from /proc/self/statm (in
// pages: size, resident, ...) and counts /proc/self/fd.
func readProc() (procStats, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return procStats{}, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return procStats{}, false
	}
	size, err1 := strconv.ParseInt(string(f[0]), 10, 64)
	res, err2 := strconv.ParseInt(string(f[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return procStats{}, false
	}
	page := int64(os.Getpagesize())
	p := procStats{resident: res * page, virtual: size * page}
	if d, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.fds = len(d) - 1 // the directory ReadDir itself had open
	}
	return p, true
}
