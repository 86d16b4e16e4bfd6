package route

import "errors"

// Errors that ValidFilter, ValidTopic and ParseTemplate wrap with the
// offending detail; test for them with errors.Is.
var (
	// ErrEmpty means the topic or filter is the empty string.
	ErrEmpty = errors.New("empty topic or filter")
	// ErrTooLong means the topic or filter is longer than MaxLen bytes.
	ErrTooLong = errors.New("longer than 65535 bytes")
	// ErrBadChar means the topic or filter holds a NUL or is not valid UTF-8.
	ErrBadChar = errors.New("contains NUL or invalid UTF-8")
	// ErrWildcard means a wildcard is misplaced in a filter, or present in a
	// topic name.
	ErrWildcard = errors.New("misplaced wildcard")
	// ErrTemplate means a template does not parse.
	ErrTemplate = errors.New("bad template")
)
