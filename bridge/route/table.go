package route

import (
	"fmt"
	"strings"
)

// MaxBridges is the number of bridges a Table can tell apart: one bit each
// in the uint64 that Table.Match returns.
const MaxBridges = 64

// Entry is one forward route of one bridge: messages whose topic matches
// Filter go to bridge number Bridge.
type Entry struct {
	Bridge int    // 0 <= Bridge < MaxBridges
	Filter string // a valid topic filter
}

// Table maps a topic to the set of bridges whose forward routes match it.
// It is a trie of filter levels, built once and then read-only, so it is safe
// for concurrent use.
type Table struct {
	root node
}

type node struct {
	children map[string]*node
	plus     *node  // the "+" level
	hash     uint64 // bridges with a filter that has "#" at this level
	end      uint64 // bridges with a filter that ends at this node
}

// NewTable builds a Table from entries. It fails on an invalid filter or a
// bridge number outside [0, MaxBridges).
func NewTable(entries []Entry) (*Table, error) {
	t := &Table{}
	for _, e := range entries {
		if e.Bridge < 0 || e.Bridge >= MaxBridges {
			return nil, fmt.Errorf("bridge number %d out of range [0, %d)", e.Bridge, MaxBridges)
		}
		if err := ValidFilter(e.Filter); err != nil {
			return nil, fmt.Errorf("filter %q of bridge %d: %w", e.Filter, e.Bridge, err)
		}
		t.add(e.Filter, uint64(1)<<e.Bridge)
	}
	return t, nil
}

func (t *Table) add(filter string, bit uint64) {
	n := &t.root
	for {
		lv, rest, more := strings.Cut(filter, "/")
		if lv == "#" {
			n.hash |= bit
			return
		}
		var next *node
		if lv == "+" {
			if n.plus == nil {
				n.plus = &node{}
			}
			next = n.plus
		} else {
			if n.children == nil {
				n.children = make(map[string]*node)
			}
			if next = n.children[lv]; next == nil {
				next = &node{}
				n.children[lv] = next
			}
		}
		n = next
		if !more {
			n.end |= bit
			return
		}
		filter = rest
	}
}

// Match returns the set of bridges (bit i for bridge i) with a forward route
// whose filter matches topic, by the rules of the package-level Match. It is
// called for every published message and does not allocate.
func (t *Table) Match(topic string) uint64 {
	// Leading wildcards do not match "$" topics (MQTT 4.7.2).
	return t.root.match(topic, topic != "" && topic[0] == '$')
}

// match matches topic, the rest of the topic from this node's level on.
func (n *node) match(topic string, dollar bool) uint64 {
	var m uint64
	if !dollar {
		m = n.hash
	}
	lv, rest, more := strings.Cut(topic, "/")
	if c := n.children[lv]; c != nil {
		m |= c.next(rest, more)
	}
	if n.plus != nil && !dollar {
		m |= n.plus.next(rest, more)
	}
	return m
}

// next continues a match after this node consumed a level.
func (n *node) next(rest string, more bool) uint64 {
	if !more {
		// "a/#" matches "a": # includes the parent level.
		return n.end | n.hash
	}
	return n.match(rest, false)
}
