package route

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestTemplateExpand(t *testing.T) {
	const gw = "pi-0001"
	tests := []struct {
		tmpl, topic, want string
	}{
		{"{topic}", "sensors/a/temp", "sensors/a/temp"},
		{"site/{gateway_id}/{topic}", "sensors/a/temp", "site/pi-0001/sensors/a/temp"},
		{"{1}", "sensors/a/temp", "sensors"},
		{"{2}", "sensors/a/temp", "a"},
		{"{3}", "sensors/a/temp", "temp"},
		{"{4}", "sensors/a/temp", ""},
		{"{1...}", "sensors/a/temp", "sensors/a/temp"},
		{"{2...}", "sensors/a/temp", "a/temp"},
		{"{3...}", "sensors/a/temp", "temp"},
		{"{4...}", "sensors/a/temp", ""},
		{"{99...}", "sensors/a/temp", ""},
		{"commands/{3...}", "site/pi-0001/commands/valve/open", "commands/commands/valve/open"},
		{"commands/{4...}", "site/pi-0001/commands/valve/open", "commands/valve/open"},
		{"x/{2}/y", "a//c", "x//y"},
		{"{2}", "a/", ""},
		{"{2...}", "a/", ""},
		{"{3...}", "a/b/", ""},
		{"{2...}", "/b", "b"},
		{"{1}", "/b", ""},
		{"{gateway_id}/{topic}", "t", "pi-0001/t"},
		{"iot.telemetry", "sensors/x", "iot.telemetry"},
		{"", "sensors/x", ""},
		{"{{literal}}/{2}", "a/b", "{literal}/b"},
		{"a{{b}}c", "t", "a{b}c"},
		{"{01}", "a/b", "a"},
	}
	for _, tt := range tests {
		tm, err := ParseTemplate(tt.tmpl)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tt.tmpl, err)
			continue
		}
		if got := tm.Expand(tt.topic, gw); got != tt.want {
			t.Errorf("%q.Expand(%q) = %q, want %q", tt.tmpl, tt.topic, got, tt.want)
		}
		if got := string(tm.AppendExpand([]byte("pre:"), tt.topic, gw)); got != "pre:"+tt.want {
			t.Errorf("%q.AppendExpand(%q) = %q, want %q", tt.tmpl, tt.topic, got, "pre:"+tt.want)
		}
	}
}

func TestParseTemplateErrors(t *testing.T) {
	tests := []struct {
		tmpl, errContains string
	}{
		{"{0}", "count from 1"},
		{"{0...}", "count from 1"},
		{"{foo}", "unknown placeholder {foo}"},
		{"{}", "unknown placeholder {}"},
		{"{...}", "unknown placeholder {...}"},
		{"{-1}", "unknown placeholder {-1}"},
		{"{+1}", "unknown placeholder {+1}"},
		{"{1..}", "unknown placeholder {1..}"},
		{"{Topic}", "unknown placeholder {Topic}"},
		{"{ topic }", "unknown placeholder { topic }"},
		{"{99999999999999999999}", "too large"},
		{"{topic", "unclosed"},
		{"a/{", "unclosed"},
		{"{to{pic}", "unclosed"},
		{"a}", "unmatched"},
		{"}{topic}", "unmatched"},
		{"{{topic}", "unmatched"},
	}
	for _, tt := range tests {
		_, err := ParseTemplate(tt.tmpl)
		if err == nil {
			t.Errorf("ParseTemplate(%q) succeeded, want error containing %q", tt.tmpl, tt.errContains)
			continue
		}
		if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), tt.errContains) {
			t.Errorf("ParseTemplate(%q) = %v, want ErrTemplate containing %q", tt.tmpl, err, tt.errContains)
		}
	}
}

func TestTemplateString(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"{topic}":                "{topic}",
		"a/{gateway_id}/{2...}":  "a/{gateway_id}/{2...}",
		"{007}":                  "{7}",
		"{{x}}":                  "{{x}}",
		"k:{1}-{3...}:{topic}}}": "k:{1}-{3...}:{topic}}}",
	} {
		tm, err := ParseTemplate(in)
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", in, err)
		}
		if got := tm.String(); got != want {
			t.Errorf("ParseTemplate(%q).String() = %q, want %q", in, got, want)
		}
	}
}

func TestExpandAllocations(t *testing.T) {
	topicOnly, _ := ParseTemplate("{topic}")
	full, _ := ParseTemplate("site/{gateway_id}/{2...}/{1}")
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		_ = topicOnly.Expand("sensors/a/temp", "gw")
		buf = full.AppendExpand(buf[:0], "sensors/a/temp", "gw")
	})
	if allocs != 0 {
		t.Errorf("Expand({topic}) + AppendExpand allocate %v times per run, want 0", allocs)
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"{topic}", "site/{gateway_id}/{topic}", "commands/{3...}", "{1}/{2}", "{{}}",
		"{0}", "{", "}", "{foo}", "{1...}{2}", "a{{{topic}}}b", "{18446744073709551617}",
	} {
		f.Add(s, "sensors/a/temp")
	}
	f.Add("{2...}", "a/")
	f.Fuzz(func(t *testing.T, s, topic string) {
		tm, err := ParseTemplate(s)
		if err != nil {
			return
		}
		str := tm.String()
		tm2, err := ParseTemplate(str)
		if err != nil {
			t.Fatalf("String() of %q is %q, which does not parse: %v", s, str, err)
		}
		if !slices.Equal(tm.parts, tm2.parts) {
			t.Fatalf("ParseTemplate(%q) = %+v, but its String() %q parses to %+v", s, tm.parts, str, tm2.parts)
		}
		if tm2.String() != str {
			t.Fatalf("String() is not stable: %q then %q", str, tm2.String())
		}
		got := tm.Expand(topic, "gw")
		if app := string(tm.AppendExpand(nil, topic, "gw")); app != got {
			t.Fatalf("Expand = %q, AppendExpand = %q", got, app)
		}
	})
}
