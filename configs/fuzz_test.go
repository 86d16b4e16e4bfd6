package configs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML)
	for _, data := range Examples() {
		f.Add(data)
	}
	for _, tt := range badConfigs {
		f.Add([]byte(tt.yaml))
	}
	f.Add([]byte("a: &a [*a, *a]\nlisteners: *a\n"))
	f.Add([]byte("listeners: [{<<: [{name: x}, {address: \":1\"}]}]\n"))
	lookup := env(map[string]string{"A": "1", "OUTPOST_GATEWAY_ID": "gw"})

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data, lookup)
		if err == nil {
			if c == nil || len(c.Listeners) == 0 {
				t.Fatalf("loaded without error but config = %+v", c)
			}
			if errs := c.validate(); len(errs) > 0 {
				t.Fatalf("loaded config does not validate again: %v", errs)
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %T is not a non-empty ErrorList: %v", err, err)
		}
		empty := false
		if root, errs := parseYAML("fuzz.yaml", data); root == nil && errs == nil {
			empty = true
		}
		// YAML also breaks lines at \r, NEL, LS and PS.
		lines := 1
		for _, br := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
			lines += bytes.Count(data, []byte(br))
		}
		for _, e := range list {
			switch {
			case e.File != "fuzz.yaml":
				t.Errorf("error names file %q: %v", e.File, e)
			case e.Line < 0 || e.Line > lines:
				t.Errorf("line %d outside the document's %d lines: %v", e.Line, lines, e)
			case e.Line == 0 && !empty && !strings.HasPrefix(e.Msg, "YAML: "):
				t.Errorf("no line for a problem in a non-empty document: %v", e)
			}
		}
	})
}
