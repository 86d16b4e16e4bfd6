package web

import (
	"bufio"
	"math"
	"sort"
	"strconv"
	"strings"
)

// expo writes the Prometheus text exposition format (version 0.0.4): one
// HELP and TYPE line per family, then its samples, all of a family
// together. It is the whole of our Prometheus support: client_golang would
// add megabytes to a binary that exports a few dozen series.
type expo struct {
	w *bufio.Writer
}

// label is one name="value" pair of a sample.
type label struct{ name, value string }

// family starts a metric family; typ is counter, gauge, summary or untyped.
func (e *expo) family(name, typ, help string) {
	e.w.WriteString("# HELP ")
	e.w.WriteString(name)
	e.w.WriteByte(' ')
	e.w.WriteString(helpEscaper.Replace(help))
	e.w.WriteString("\n# TYPE ")
	e.w.WriteString(name)
	e.w.WriteByte(' ')
	e.w.WriteString(typ)
	e.w.WriteByte('\n')
}

// sample writes one line of the current family (name may carry a suffix
// such as _sum or _count for summaries).
func (e *expo) sample(name string, v float64, labels ...label) {
	e.w.WriteString(name)
	if len(labels) > 0 {
		e.w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				e.w.WriteByte(',')
			}
			e.w.WriteString(l.name)
			e.w.WriteString(`="`)
			e.w.WriteString(labelEscaper.Replace(l.value))
			e.w.WriteByte('"')
		}
		e.w.WriteByte('}')
	}
	e.w.WriteByte(' ')
	e.w.WriteString(formatValue(v))
	e.w.WriteByte('\n')
}

// single writes a family of one unlabelled sample.
func (e *expo) single(name, typ, help string, v float64) {
	e.family(name, typ, help)
	e.sample(name, v)
}

// byLabel writes a family with one sample per key of m, in key order.
func (e *expo) byLabel(name, typ, help, labelName string, m map[string]float64) {
	e.family(name, typ, help)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.sample(name, m[k], label{labelName, k})
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
