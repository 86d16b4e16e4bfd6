package route

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest topic name or filter MQTT can carry, in bytes.
const MaxLen = 65535

// ValidFilter reports whether f is a valid MQTT topic filter: non-empty, at
// most MaxLen bytes, valid UTF-8 without NUL, "+" only as a whole level, and
// "#" only as the whole last level.
func ValidFilter(f string) error {
	if err := validString(f); err != nil {
		return err
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '+' && c != '#' {
			continue
		}
		if i > 0 && f[i-1] != '/' {
			return fmt.Errorf("%w: %q must be a whole level in %q", ErrWildcard, c, f)
		}
		if i+1 < len(f) && f[i+1] != '/' {
			return fmt.Errorf("%w: %q must be a whole level in %q", ErrWildcard, c, f)
		}
		if c == '#' && i+1 != len(f) {
			return fmt.Errorf("%w: %q must be the last level in %q", ErrWildcard, c, f)
		}
	}
	return nil
}

// ValidTopic reports whether t is a valid MQTT topic name to publish to:
// non-empty, at most MaxLen bytes, valid UTF-8 without NUL, and no wildcards.
func ValidTopic(t string) error {
	if err := validString(t); err != nil {
		return err
	}
	if strings.ContainsAny(t, "+#") {
		return fmt.Errorf("%w: topic name %q contains a wildcard", ErrWildcard, t)
	}
	return nil
}

func validString(s string) error {
	switch {
	case s == "":
		return ErrEmpty
	case len(s) > MaxLen:
		return ErrTooLong
	case strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s):
		return ErrBadChar
	}
	return nil
}

// Match reports whether topic matches filter. Both should be valid (see
// ValidFilter and ValidTopic); for invalid input the answer is unspecified,
// but Match never panics. It does not allocate.
func Match(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			// "a/#" matches "a": # includes the parent level.
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}
