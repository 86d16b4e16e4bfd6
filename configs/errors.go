package configs

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a config file. Line is 1-based; 0 means the
// problem concerns the file as a whole (it is empty, say).
type Error struct {
	File string
	Line int
	Msg  string
}

// Error formats the problem as "file:line: msg", or "file: msg" for a
// file-level problem.
func (e Error) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// ErrorList is every problem found in a config file, sorted by line. Load and
// Parse return it as their error.
type ErrorList []Error

// Error returns one problem per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// sorted returns l sorted by line (file-level problems first) with exact
// duplicates removed.
func (l ErrorList) sorted() ErrorList {
	slices.SortStableFunc(l, func(a, b Error) int { return cmp.Compare(a.Line, b.Line) })
	out := l[:0]
	seen := make(map[Error]bool, len(l))
	for _, e := range l {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}
