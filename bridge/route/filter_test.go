package route

import (
	"errors"
	"strings"
	"testing"
)

func TestValidFilter(t *testing.T) {
	tests := []struct {
		filter  string
		wantErr error
	}{
		{"a", nil},
		{"a/b/c", nil},
		{"#", nil},
		{"+", nil},
		{"+/+", nil},
		{"a/+/c", nil},
		{"a/#", nil},
		{"+/#", nil},
		{"/", nil},
		{"a//b", nil},
		{"a/", nil},
		{"/#", nil},
		{"$SYS/#", nil},
		{"sport/tennis/+/score", nil},
		{"ü/→", nil},
		{"", ErrEmpty},
		{"a\x00b", ErrBadChar},
		{"a/\xff", ErrBadChar},
		{strings.Repeat("a", MaxLen), nil},
		{strings.Repeat("a", MaxLen+1), ErrTooLong},
		{"a#", ErrWildcard},
		{"#a", ErrWildcard},
		{"a/#/b", ErrWildcard},
		{"#/", ErrWildcard},
		{"a/b#", ErrWildcard},
		{"a+", ErrWildcard},
		{"+a", ErrWildcard},
		{"a/+b/c", ErrWildcard},
		{"a/++", ErrWildcard},
		{"##", ErrWildcard},
	}
	for _, tt := range tests {
		err := ValidFilter(tt.filter)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("ValidFilter(%.40q) = %v, want %v", tt.filter, err, tt.wantErr)
		}
	}
}

func TestValidTopic(t *testing.T) {
	tests := []struct {
		topic   string
		wantErr error
	}{
		{"a", nil},
		{"a/b", nil},
		{"/", nil},
		{"a//", nil},
		{"$SYS/broker/uptime", nil},
		{"", ErrEmpty},
		{"a/+", ErrWildcard},
		{"a/#", ErrWildcard},
		{"a+b", ErrWildcard},
		{"nul\x00", ErrBadChar},
		{strings.Repeat("x", MaxLen+1), ErrTooLong},
	}
	for _, tt := range tests {
		err := ValidTopic(tt.topic)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("ValidTopic(%.40q) = %v, want %v", tt.topic, err, tt.wantErr)
		}
	}
}

var matchTests = []struct {
	filter, topic string
	want          bool
}{
	{"a", "a", true},
	{"a", "b", false},
	{"a", "a/b", false},
	{"a/b", "a", false},
	{"a/b/c", "a/b/c", true},
	{"A", "a", false},

	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"#", "/a", true},
	{"a/#", "a", true},
	{"a/#", "a/", true},
	{"a/#", "a/b", true},
	{"a/#", "a/b/c", true},
	{"a/#", "ab", false},
	{"a/#", "b/a", false},
	{"a/b/#", "a", false},
	{"/#", "/", true},
	{"/#", "a", false},

	{"+", "a", true},
	{"+", "a/b", false},
	{"+", "/", false},
	{"+/+", "/", true},
	{"/+", "/", true},
	{"+/", "a/", true},
	{"+/", "a", false},
	{"a/+", "a/b", true},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"a/+", "a/b/c", false},
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a//c", true},
	{"a/+/c", "a/b/d", false},
	{"a/+/c", "a/b/c/d", false},
	{"+/+/#", "a/b", true},
	{"+/#", "a", true},
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},

	// trailing slash and empty levels are levels of their own
	{"a/", "a/", true},
	{"a/", "a", false},
	{"a", "a/", false},
	{"a//b", "a//b", true},
	{"a//b", "a/b", false},
	{"a/+/b", "a//b", true},

	// $-topics: not matched by a filter that starts with a wildcard
	{"#", "$SYS/uptime", false},
	{"+/uptime", "$SYS/uptime", false},
	{"+", "$SYS", false},
	{"$SYS/#", "$SYS/uptime", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/+", "$SYS/uptime", true},
	{"$SYS", "$SYS", true},
	{"a/#", "a/$b", true},
	{"a/+", "a/$b", true},
	{"+/$b", "a/$b", true},
}

func TestMatch(t *testing.T) {
	for _, tt := range matchTests {
		if got := Match(tt.filter, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
		if got := refMatch(tt.filter, tt.topic); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (bad test or reference)", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Match("a/+/c/#", "a/b/c/d/e")
		Match("$SYS/#", "$SYS/broker")
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per run, want 0", allocs)
	}
}

// refMatch is a simple reference implementation of Match for valid input.
func refMatch(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fs[0] == "+" || fs[0] == "#") {
		return false
	}
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ts) || (f != "+" && f != ts[i]) {
			return false
		}
	}
	return len(fs) == len(ts)
}

func FuzzMatch(f *testing.F) {
	for _, tt := range matchTests {
		f.Add(tt.filter, tt.topic)
	}
	f.Add("", "")
	f.Add("a/#/b", "a/x/b")
	f.Add("+a", "$")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := Match(filter, topic)
		topicOK := ValidTopic(topic) == nil
		if filter == topic && topicOK && !got {
			t.Fatalf("Match(%q, %q) = false for a valid topic matched against itself", filter, topic)
		}
		if !topicOK || ValidFilter(filter) != nil {
			return
		}
		if want := refMatch(filter, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		tab, err := NewTable([]Entry{{Bridge: 3, Filter: filter}})
		if err != nil {
			t.Fatalf("NewTable with valid filter %q: %v", filter, err)
		}
		if m := tab.Match(topic); (m == 1<<3) != got || (m != 0 && m != 1<<3) {
			t.Fatalf("Table.Match(%q) with filter %q = %b, Match says %v", topic, filter, m, got)
		}
	})
}
