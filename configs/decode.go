package configs

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the work of decoding one file, so that aliases cannot
// make a small file expand into a huge one.
const maxNodes = 1 << 20

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decoder decodes a yaml.Node tree into the config structs by their yaml
// tags, collecting every problem with its line instead of stopping at the
// first, and recording the line of every key and list item.
type decoder struct {
	file   string
	expand func(string) (string, error) // ${VAR} expansion of scalar values
	errs   ErrorList
	lines  map[string]int
	failed map[string]bool     // paths whose values did not decode
	nodes  int                 // nodes visited, against maxNodes
	active map[*yaml.Node]bool // anchors being expanded, to catch cycles
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
		d.failed[path] = true
	}
	d.errs = append(d.errs, Error{File: d.file, Line: n.Line, Msg: msg})
}

// visit counts a node against maxNodes and follows an alias to its anchor;
// it returns nil when decoding must not go on.
func (d *decoder) visit(n *yaml.Node, path string) *yaml.Node {
	d.nodes++
	if d.nodes == maxNodes {
		d.errorf(n, "", "the document is too large, or expands too much through aliases")
	}
	if d.nodes >= maxNodes {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || d.active[n.Alias] {
			d.errorf(n, path, "alias *%s refers to itself", n.Value)
			return nil
		}
		return n.Alias
	}
	return n
}

// decode decodes n into v, which must be settable. A null node leaves v as
// it is, so fields keep their defaults.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if a := d.visit(n, path); a != n {
		if a != nil {
			d.active[a] = true
			d.decode(a, v, path)
			delete(d.active, a)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if v.Kind() != reflect.Pointer && reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		if s, ok := d.scalar(n, v.Type(), path); ok {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				d.errorf(n, path, "%v", err)
			}
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(newValue(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, found %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			s.Index(i).Set(newValue(v.Type().Elem()).Elem())
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.Array:
		if n.Kind != yaml.SequenceNode || len(n.Content) != v.Len() {
			d.errorf(n, path, "expected a list of exactly %d values, found %s", v.Len(), describe(n))
			return
		}
		for i, item := range n.Content {
			d.decode(item, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if s, ok := d.scalar(n, v.Type(), path); ok {
			if err := setScalar(v, s); err != nil {
				d.errorf(n, path, "%v", err)
			}
		}
	}
}

// newValue returns a pointer to a new value of type t with its defaults set.
func newValue(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if s, ok := p.Interface().(interface{ setDefaults() }); ok {
		s.setDefaults()
	}
	return p
}

// scalar returns the text of a scalar node with environment variables
// expanded, or reports why it cannot.
func (d *decoder) scalar(n *yaml.Node, t reflect.Type, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, found %s", typeName(t), describe(n))
		return "", false
	}
	s, err := d.expand(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return "", false
	}
	return s, true
}

// setScalar parses s into v by v's type.
func setScalar(v reflect.Value, s string) error {
	t := v.Type()
	switch {
	case t == durationType:
		dur, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want a number with a unit, such as 500ms, 30s, 2m or 1h)", s)
		}
		if dur < 0 {
			return fmt.Errorf("duration %s is negative", s)
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			return fmt.Errorf("expected true or false, found %q", s)
		}
	case v.CanInt():
		i, err := strconv.ParseInt(s, 0, t.Bits())
		if err != nil {
			return intError(s, err)
		}
		v.SetInt(i)
	case v.CanUint():
		u, err := strconv.ParseUint(s, 0, t.Bits())
		if err != nil {
			return intError(s, err)
		}
		v.SetUint(u)
	case v.CanFloat():
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("expected a number, found %q", s)
		}
		v.SetFloat(f)
	default:
		panic("configs: no decoding for type " + t.String())
	}
	return nil
}

func intError(s string, err error) error {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return fmt.Errorf("%s is out of range", s)
	}
	return fmt.Errorf("expected an integer, found %q", s)
}

// decodeStruct decodes a mapping into the struct v by yaml tags.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping of keys to values, found %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	for _, kv := range d.pairs(n, path) {
		key := kv[0].Value
		p := key
		if path != "" {
			p = path + "." + key
		}
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == key })
		if i < 0 {
			d.errorf(kv[0], "", "%s", unknownKey(key, path, fields))
			continue
		}
		d.lines[p] = kv[0].Line
		d.decode(kv[1], v.Field(fields[i].index), p)
	}
}

// pairs returns the key/value pairs of a mapping, with keys merged in by
// "<<" after (and overridden by) the mapping's own keys. It reports keys
// that are not scalars and keys that are repeated.
func (d *decoder) pairs(n *yaml.Node, path string) [][2]*yaml.Node {
	var own, merged [][2]*yaml.Node
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.Tag == "!!merge":
			merged = append(merged, d.merge(val, path)...)
		case k.Kind != yaml.ScalarNode:
			d.errorf(k, path, "a key must be a plain string, found %s", describe(k))
		case seen[k.Value] > 0:
			d.errorf(k, path, "key %q repeated (first at line %d)", k.Value, seen[k.Value])
		default:
			seen[k.Value] = max(k.Line, 1)
			own = append(own, [2]*yaml.Node{k, val})
		}
	}
	for _, kv := range merged {
		if seen[kv[0].Value] == 0 {
			seen[kv[0].Value] = max(kv[0].Line, 1)
			own = append(own, kv)
		}
	}
	return own
}

// merge returns the pairs that a "<<" merge key with value n brings in: a
// mapping, or a list of mappings of which the earlier win.
func (d *decoder) merge(n *yaml.Node, path string) [][2]*yaml.Node {
	a := d.visit(n, path)
	if a == nil {
		return nil
	}
	if a != n {
		d.active[a] = true
		defer delete(d.active, a)
	}
	switch a.Kind {
	case yaml.MappingNode:
		return d.pairs(a, path)
	case yaml.SequenceNode:
		var out [][2]*yaml.Node
		for _, item := range a.Content {
			if m := d.visit(item, path); m != nil && m.Kind != yaml.MappingNode {
				d.errorf(item, path, "merge (<<) wants mappings, found %s", describe(m))
			} else if m != nil {
				d.active[m] = true
				out = append(out, d.pairs(m, path)...)
				delete(d.active, m)
			}
		}
		return out
	}
	d.errorf(n, path, "merge (<<) wants a mapping or a list of mappings, found %s", describe(a))
	return nil
}

// field is a struct field decoded from the key name.
type field struct {
	name  string
	index int
}

// fieldsOf lists the yaml keys of struct type t, in field order.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" && t.Field(i).IsExported() {
			fs = append(fs, field{name, i})
		}
	}
	return fs
}

// keysOf lists the yaml keys of struct type t.
func keysOf(t reflect.Type) []string {
	var keys []string
	for _, f := range fieldsOf(t) {
		keys = append(keys, f.name)
	}
	return keys
}

// unknownKey explains an unknown key: the nearest valid key if one is
// close, else all of them.
func unknownKey(key, path string, fields []field) string {
	where := ""
	if path != "" {
		where = " in " + path
	}
	best, bestDist := "", 3
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s)) }
	for _, f := range fields {
		dist := levenshtein(key, f.name)
		if norm(key) == norm(f.name) {
			dist = 0
		}
		if dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key %q%s (did you mean %q?)", key, where, best)
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return fmt.Sprintf("unknown key %q%s; valid keys are: %s", key, where, strings.Join(names, ", "))
}

// levenshtein returns the edit distance between a and b, in bytes.
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names what a node is, for "expected X, found Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	return strconv.Quote(v)
}

// typeName names what a field expects.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration"
	case t == reflect.TypeFor[Size]():
		return "a size"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Uint16:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	}
	return "a mapping of keys to values"
}
