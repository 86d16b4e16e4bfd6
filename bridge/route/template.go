package route

import (
	"fmt"
	"strconv"
	"strings"
)

// maxLevel bounds {N}: a topic of MaxLen bytes has fewer levels than this.
const maxLevel = MaxLen + 1

type partKind uint8

const (
	kindLiteral    partKind = iota // lit
	kindTopic                      // {topic}
	kindGateway                    // {gateway_id}
	kindLevel                      // {n}
	kindLevelsFrom                 // {n...}
)

type part struct {
	kind partKind
	lit  string
	n    int
}

// Template is a parsed topic or key template: literal text plus the
// placeholders {topic}, {gateway_id}, {N} and {N...} (see the package doc).
// The zero Template expands to "". A Template is immutable and safe for
// concurrent use.
type Template struct {
	parts []part
}

// ParseTemplate parses s. It fails, naming the problem, on an unknown
// placeholder, on {0}, and on a "{" or "}" that is neither part of a
// placeholder nor doubled ("{{", "}}") as a literal brace.
func ParseTemplate(s string) (Template, error) {
	var (
		parts []part
		lit   strings.Builder
	)
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, part{kind: kindLiteral, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '{' && strings.HasPrefix(s[i:], "{{"):
			lit.WriteByte('{')
			i += 2
		case c == '}' && strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte('}')
			i += 2
		case c == '}':
			return Template{}, fmt.Errorf("%w %q: unmatched \"}\" at offset %d (write \"}}\" for a literal brace)", ErrTemplate, s, i)
		case c == '{':
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] != '}' {
				return Template{}, fmt.Errorf("%w %q: unclosed \"{\" at offset %d (write \"{{\" for a literal brace)", ErrTemplate, s, i)
			}
			name := s[i+1 : i+1+end]
			p, err := placeholder(name)
			if err != nil {
				return Template{}, fmt.Errorf("%w %q: %v", ErrTemplate, s, err)
			}
			flush()
			parts = append(parts, p)
			i += end + 2
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	return Template{parts: parts}, nil
}

func placeholder(name string) (part, error) {
	switch name {
	case "topic":
		return part{kind: kindTopic}, nil
	case "gateway_id":
		return part{kind: kindGateway}, nil
	}
	kind := kindLevel
	num, ok := strings.CutSuffix(name, "...")
	if ok {
		kind = kindLevelsFrom
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return part{}, fmt.Errorf("unknown placeholder {%s} (want {topic}, {gateway_id}, {N} or {N...})", name)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n > maxLevel {
		return part{}, fmt.Errorf("level in {%s} is too large", name)
	}
	if n == 0 {
		return part{}, fmt.Errorf("levels count from 1, not 0, in {%s}", name)
	}
	return part{kind: kind, n: n}, nil
}

// String returns the template in canonical form; it parses back to an
// equivalent Template.
func (t Template) String() string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case kindLiteral:
			for i := 0; i < len(p.lit); i++ {
				c := p.lit[i]
				if c == '{' || c == '}' {
					b.WriteByte(c)
				}
				b.WriteByte(c)
			}
		case kindTopic:
			b.WriteString("{topic}")
		case kindGateway:
			b.WriteString("{gateway_id}")
		case kindLevel:
			fmt.Fprintf(&b, "{%d}", p.n)
		case kindLevelsFrom:
			fmt.Fprintf(&b, "{%d...}", p.n)
		}
	}
	return b.String()
}

// Expand returns the template expanded for topic and gatewayID. A level
// beyond the topic's depth expands to "". A template that is just {topic}, or
// just literal text, expands without allocating.
func (t Template) Expand(topic, gatewayID string) string {
	if len(t.parts) == 1 {
		switch p := t.parts[0]; p.kind {
		case kindTopic:
			return topic
		case kindLiteral:
			return p.lit
		}
	}
	return string(t.AppendExpand(make([]byte, 0, len(topic)+len(gatewayID)+32), topic, gatewayID))
}

// AppendExpand appends the expansion of the template to dst and returns the
// extended slice, like strconv.AppendInt. It allocates only if dst is too
// small.
func (t Template) AppendExpand(dst []byte, topic, gatewayID string) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case kindLiteral:
			dst = append(dst, p.lit...)
		case kindTopic:
			dst = append(dst, topic...)
		case kindGateway:
			dst = append(dst, gatewayID...)
		case kindLevel:
			lv, _, _ := strings.Cut(levelStart(topic, p.n), "/")
			dst = append(dst, lv...)
		case kindLevelsFrom:
			dst = append(dst, levelStart(topic, p.n)...)
		}
	}
	return dst
}

// levelStart returns topic from the start of its nth level (1-based), or ""
// if the topic has fewer levels.
func levelStart(topic string, n int) string {
	for ; n > 1; n-- {
		i := strings.IndexByte(topic, '/')
		if i < 0 {
			return ""
		}
		topic = topic[i+1:]
	}
	return topic
}
