package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// GatewayIDVar is the environment variable that, when it is not set, expands
// to the config's own gateway_id, so that values such as client_id can use it.
const GatewayIDVar = "OUTPOST_GATEWAY_ID"

// hostname is os.Hostname, replaceable in tests.
var hostname = os.Hostname

// Load reads and parses the config file at path, expanding environment
// variables from the process environment. Relative paths in the file
// (data_dir, TLS and password files) are resolved against the file's
// directory. A config with problems yields an ErrorList listing all of them.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse parses and validates a config. name is used in error messages and
// as Config.Source; relative paths in the config are resolved against
// filepath.Dir(name), or left relative to the working directory when name
// is "" or starts with "<" (such as "<stdin>"). lookupEnv looks up the
// variables of ${VAR} and ${VAR:-default}; nil means os.LookupEnv.
//
// The error, if any, is an ErrorList with every problem found.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	file, base := name, ""
	if name == "" {
		file = "<config>"
	} else if !strings.HasPrefix(name, "<") {
		base = filepath.Dir(name)
	}

	root, errs := parseYAML(file, data)
	if errs != nil {
		return nil, errs
	}

	// Expand ${OUTPOST_GATEWAY_ID} to the gateway id when the environment
	// does not set it, which needs the gateway id first.
	gw := ""
	if v := topLevel(root, "gateway_id"); v != nil && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		gw, _ = expandEnv(v.Value, lookupEnv) // an error is reported when decoding
	}
	if gw == "" {
		gw, _ = hostname()
	}
	lookup := func(k string) (string, bool) {
		if v, ok := lookupEnv(k); ok || k != GatewayIDVar || gw == "" {
			return v, ok
		}
		return gw, true
	}

	c := &Config{Source: name}
	c.setDefaults()
	d := &decoder{
		file:   file,
		expand: func(s string) (string, error) { return expandEnv(s, lookup) },
		lines:  make(map[string]int),
		failed: make(map[string]bool),
		active: make(map[*yaml.Node]bool),
	}
	if root != nil {
		d.lines[""] = root.Line
		d.decode(root, reflect.ValueOf(c).Elem(), "")
	}
	c.lines, c.failed = d.lines, d.failed
	if c.GatewayID == "" {
		c.GatewayID = gw
	}
	c.complete(base)
	errs = append(d.errs, c.validate()...)
	for i := range errs {
		errs[i].File = file
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return c, nil
}

var (
	yamlErrLine   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// lineOf returns the 1-based line of the first s in data, or 0.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// parseYAML parses data as one YAML document. It returns nil for an empty
// document.
func parseYAML(file string, data []byte) (*yaml.Node, ErrorList) {
	syntaxErr := func(err error) ErrorList {
		e := Error{File: file, Msg: "YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = "YAML: " + m[2]
		} else if m := unknownAnchor.FindStringSubmatch(err.Error()); m != nil {
			e.Line = lineOf(data, "*"+m[1])
		}
		return ErrorList{e}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, syntaxErr(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, ErrorList{{File: file, Line: next.Line, Msg: "a config file holds one YAML document; found a second one"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxErr(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	return root, nil
}

// topLevel returns the value of key in the root mapping, or nil.
func topLevel(root *yaml.Node, key string) *yaml.Node {
	if root == nil || root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key {
			return root.Content[i+1]
		}
	}
	return nil
}

// expandEnv expands ${VAR} and ${VAR:-default} in s; the default is used
// when VAR is unset or empty and runs to the first "}". "$${" is a literal
// "${". A "$" not followed by "{" is left alone, so bcrypt hashes need no
// quoting.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("unclosed ${ in %q (write $${ for a literal ${)", s)
			}
			expr := s[i+2 : i+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !envName.MatchString(name) {
				return "", fmt.Errorf("bad variable reference ${%s} (want ${NAME} or ${NAME:-default}; write $${ for a literal ${)", expr)
			}
			v, ok := lookup(name)
			switch {
			case hasDef && v == "":
				v = def
			case !ok:
				return "", fmt.Errorf("environment variable %s is not set (give a default with ${%s:-value})", name, name)
			}
			b.WriteString(v)
			i += end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
