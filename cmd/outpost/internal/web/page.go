package web

import (
	"bufio"
	"fmt"
	"html"
	"io"
)

// The status page is written by hand, not with html/template: text/template
// calls methods by name through reflection, which makes the linker keep
// every exported method of every type in the binary (2.7 MB more on
// linux/arm, past our 15 MB budget).
//
// Every value goes through htmlw.f, which escapes it unless it is markup
// this file wrote (safeHTML); the format strings are constant markup.

// safeHTML is markup written by this file, never from data.
type safeHTML string

type htmlw struct {
	w   *bufio.Writer
	buf []any
}

// f writes format with every argument escaped: strings, errors and
// anything else as text; numbers as they are; safeHTML unchanged.
func (h *htmlw) f(format string, args ...any) {
	h.buf = h.buf[:0]
	for _, a := range args {
		switch v := a.(type) {
		case safeHTML:
			h.buf = append(h.buf, string(v))
		case int, int64, uint64, float64:
			h.buf = append(h.buf, v)
		default:
			h.buf = append(h.buf, html.EscapeString(fmt.Sprint(v)))
		}
	}
	fmt.Fprintf(h.w, format, h.buf...)
}

const pageCSS = `body{margin:0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#111827}
main{max-width:40rem;margin:0 auto;padding:.75rem}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem .75rem;margin-bottom:.5rem}
h1{font-size:1.3rem;margin:0;word-break:break-all}
h2{font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;color:#4b5563;margin:0 0 .4rem}
section{background:#fff;border-radius:.5rem;padding:.6rem .75rem;margin:.6rem 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.meta{color:#4b5563;font-size:.85rem}
.badge{display:inline-block;border-radius:1rem;padding:.05rem .6rem;font-weight:600;font-size:.85rem;color:#fff}
.ok{background:#15803d}.bad{background:#b91c1c}
table{width:100%;border-collapse:collapse}
td{text-align:left;padding:.25rem .3rem;vertical-align:top;border-top:1px solid #e5e7eb}
tr:first-child td{border-top:0}
.num{text-align:right;font-variant-numeric:tabular-nums}
.big{font-size:1.6rem;font-weight:600}
.kpis{display:flex;gap:1rem;flex-wrap:wrap}
.kpis div{flex:1 1 6rem}
.small{font-size:.8rem;color:#4b5563}
svg{display:block;width:100%;height:auto;margin-top:.4rem}
.err{color:#b91c1c;word-break:break-word}
a{color:#1d4ed8}
.row{padding:.35rem 0;border-top:1px solid #e5e7eb}
.row:first-of-type{border-top:0}
.line{display:flex;justify-content:space-between;align-items:center}
.axis{display:flex;justify-content:space-between}`

func badge(ok bool, yes, no string) safeHTML {
	if ok {
		return safeHTML(`<span class="badge ok">` + html.EscapeString(yes) + `</span>`)
	}
	return safeHTML(`<span class="badge bad">` + html.EscapeString(no) + `</span>`)
}

func state(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

// writePage writes the status page: no script, no external asset, a
// refresh every 10 s.
func writePage(w io.Writer, p *page) error {
	h := &htmlw{w: bufio.NewWriter(w)}
	h.f(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10">
<title>outpost %s</title>
<style>
%s
</style>
</head>
<body>
<main>
<header>
<h1 id="gateway">%s</h1>
<span class="badge %s" id="ready">%s</span>
</header>
<div class="meta">outpost %s · up %s · %s</div>
`, p.GatewayID, safeHTML(pageCSS), p.GatewayID, safeHTML(state(p.Ready, "ok", "bad")), state(p.Ready, "ready", "not ready"),
		p.Version, p.Uptime, p.Now)
	if !p.Ready {
		h.f("<p class=\"err\">%s</p>\n", p.NotReady)
	}

	h.f("<section>\n<h2>Bridges</h2>\n")
	for _, b := range p.Bridges {
		ack := "never"
		if b.AckAge != "" {
			ack = b.AckAge + " (" + b.LastAck + ")"
		}
		h.f(`<div class="row" data-bridge="%s" data-state="%s">
<div class="line"><strong>%s</strong>%s</div>
<div class="small">last ack %s</div>
<div class="small">%d sent · %d waiting</div>
</div>
`, b.Name, state(b.Up, "up", "down"), b.Name, badge(b.Up, "UP", "DOWN"), ack, b.Forwarded, b.Pending)
		if b.LastError != "" {
			h.f("<div class=\"small err\">%s</div>\n", b.LastError)
		}
	}
	if len(p.Bridges) == 0 {
		h.f("<p class=\"small\">No bridges configured: messages are delivered locally only.</p>\n")
	}
	h.f("</section>\n")

	h.f("<section>\n<h2>Backlog</h2>\n")
	if p.QueueErr != "" {
		h.f("<p class=\"err\">queue: %s</p>\n", p.QueueErr)
	}
	c := p.Chart
	h.f(`<div class="kpis">
<div><div class="big" id="backlog">%d</div><div class="small">messages</div></div>
<div><div class="big">%s</div><div class="small">on disk</div></div>
<div><div class="big">%s</div><div class="small">oldest</div></div>
</div>
<svg viewBox="0 0 %d %d" role="img" aria-label="queued messages over the last %s">
<rect x="0" y="0" width="%d" height="%d" fill="#f9fafb"/>
`, p.Messages, p.Bytes, p.OldestAge, c.W, c.H, c.Window, c.W, c.H)
	if c.Line != "" {
		h.f(`<polygon points="%s" fill="#bfdbfe"/>
<polyline points="%s" fill="none" stroke="#1d4ed8" stroke-width="1.5"/>
`, c.Area, c.Line)
	}
	h.f(`</svg>
<div class="small axis"><span>−%s</span><span>max %s</span><span>now</span></div>
</section>
`, c.Window, c.Max)

	h.f("<section>\n<h2>Dropped</h2>\n")
	if len(p.Drops) == 0 {
		h.f("<p class=\"small\">Nothing dropped since start.</p>\n")
	} else {
		h.f("<table>\n")
		for _, d := range p.Drops {
			h.f("<tr data-reason=\"%s\"><td>%s</td><td class=\"num\">%d</td></tr>\n", d.Reason, d.Reason, d.Count)
		}
		h.f("</table>\n")
	}
	h.f("</section>\n")

	h.f(`<section>
<h2>Local broker</h2>
<table>
<tr><td>clients connected</td><td class="num">%d</td></tr>
<tr><td>messages received</td><td class="num">%d</td></tr>
<tr><td>refused (queue full, sender keeps them)</td><td class="num">%d</td></tr>
</table>
</section>
`, p.Clients, p.Received, p.Refused)

	if len(p.Devices) > 0 {
		h.f("<section>\n<h2>Devices</h2>\n")
		for _, d := range p.Devices {
			h.f(`<div class="row" data-device="%s" data-state="%s">
<div class="line"><span><strong>%s</strong> <span class="small">%s</span></span>%s</div>
<div class="small">last reading %s · %d errors</div>
`, d.Name, state(d.OK, "ok", "error"), d.Name, d.Driver, badge(d.OK, "OK", "ERROR"), d.LastReading, d.Errors)
			if d.LastError != "" {
				h.f("<div class=\"small err\">%s</div>\n", d.LastError)
			}
			h.f("</div>\n")
		}
		h.f("</section>\n")
	}
	h.f(`<p class="small">Refreshes every 10 s · <a href="/metrics">metrics</a> · <a href="/healthz">healthz</a> · <a href="/readyz">readyz</a></p>
</main>
</body>
</html>
`)
	return h.w.Flush()
}
