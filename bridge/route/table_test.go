package route

import (
	"fmt"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	tab, err := NewTable([]Entry{
		{Bridge: 0, Filter: "sensors/#"},
		{Bridge: 1, Filter: "sensors/+/telemetry"},
		{Bridge: 1, Filter: "alarms/#"},
		{Bridge: 2, Filter: "#"},
		{Bridge: 3, Filter: "$SYS/#"},
		{Bridge: 4, Filter: "+/x"},
		{Bridge: 5, Filter: "a/"},
		{Bridge: 6, Filter: "sensors/pump/telemetry"},
		{Bridge: 63, Filter: "+/+/+"},
	})
	if err != nil {
		t.Fatal(err)
	}
	bits := func(bs ...int) uint64 {
		var m uint64
		for _, b := range bs {
			m |= 1 << b
		}
		return m
	}
	tests := []struct {
		topic string
		want  uint64
	}{
		{"sensors", bits(0, 2)},
		{"sensors/pump/telemetry", bits(0, 1, 2, 6, 63)},
		{"sensors/fan/telemetry", bits(0, 1, 2, 63)},
		{"sensors/fan/status", bits(0, 2, 63)},
		{"alarms", bits(1, 2)},
		{"alarms/a/b/c", bits(1, 2)},
		{"other", bits(2)},
		{"$SYS/uptime", bits(3)},
		{"$SYS/x", bits(3)},
		{"$other/x", 0},
		{"a/x", bits(2, 4)},
		{"a/", bits(2, 5)},
		{"a", bits(2)},
		{"//", bits(2, 63)},
	}
	for _, tt := range tests {
		if got := tab.Match(tt.topic); got != tt.want {
			t.Errorf("Match(%q) = %b, want %b", tt.topic, got, tt.want)
		}
	}
}

func TestTableEmpty(t *testing.T) {
	tab, err := NewTable(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.Match("a/b"); got != 0 {
		t.Errorf("empty table Match = %b, want 0", got)
	}
}

func TestNewTableErrors(t *testing.T) {
	tests := []struct {
		entry       Entry
		errContains string
	}{
		{Entry{Bridge: 64, Filter: "a"}, "out of range"},
		{Entry{Bridge: -1, Filter: "a"}, "out of range"},
		{Entry{Bridge: 0, Filter: "a/#/b"}, "misplaced wildcard"},
		{Entry{Bridge: 0, Filter: ""}, "empty"},
	}
	for _, tt := range tests {
		_, err := NewTable([]Entry{tt.entry})
		if err == nil || !strings.Contains(err.Error(), tt.errContains) {
			t.Errorf("NewTable(%+v) = %v, want error containing %q", tt.entry, err, tt.errContains)
		}
	}
}

// TestTableAgreesWithMatch checks the trie against the plain matcher over
// every pair of the match tests' filters and topics.
func TestTableAgreesWithMatch(t *testing.T) {
	var entries []Entry
	for i, tt := range matchTests {
		entries = append(entries, Entry{Bridge: i % MaxBridges, Filter: tt.filter})
	}
	tab, err := NewTable(entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range matchTests {
		var want uint64
		for _, e := range entries {
			if Match(e.Filter, tt.topic) {
				want |= 1 << e.Bridge
			}
		}
		if got := tab.Match(tt.topic); got != want {
			t.Errorf("Table.Match(%q) = %b, want %b", tt.topic, got, want)
		}
	}
}

func TestTableMatchDoesNotAllocate(t *testing.T) {
	tab := benchTable(t)
	allocs := testing.AllocsPerRun(100, func() {
		tab.Match("sensors/site-3/device-7/telemetry")
		tab.Match("$SYS/broker/load")
	})
	if allocs != 0 {
		t.Errorf("Table.Match allocates %v times per run, want 0", allocs)
	}
}

func benchTable(tb testing.TB) *Table {
	var entries []Entry
	for b := range 8 {
		entries = append(entries,
			Entry{Bridge: b, Filter: fmt.Sprintf("sensors/site-%d/#", b)},
			Entry{Bridge: b, Filter: fmt.Sprintf("sensors/+/device-%d/telemetry", b)},
			Entry{Bridge: b, Filter: fmt.Sprintf("alarms/%d/+", b)},
		)
	}
	entries = append(entries, Entry{Bridge: 8, Filter: "#"})
	tab, err := NewTable(entries)
	if err != nil {
		tb.Fatal(err)
	}
	return tab
}

func BenchmarkTableMatch(b *testing.B) {
	tab := benchTable(b)
	for _, topic := range []string{
		"sensors/site-3/device-7/telemetry",
		"alarms/5/overheat",
		"unrouted/topic/with/many/levels/here",
	} {
		b.Run(topic, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tab.Match(topic)
			}
		})
	}
}
