package web

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// point is one backlog sample of the chart.
type point struct {
	at       time.Time
	messages uint64
	bytes    uint64
}

// ring keeps the last len(buf) samples.
type ring struct {
	buf  []point
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]point, n)} }

func (r *ring) add(p point) {
	r.buf[r.next] = p
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// points returns the samples, oldest first.
func (r *ring) points() []point {
	if !r.full {
		return append([]point(nil), r.buf[:r.next]...)
	}
	return append(append([]point(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

// page is what the status page shows; writePage escapes every value.
type page struct {
	GatewayID string
	Version   string
	Now       string
	Uptime    string
	Ready     bool
	NotReady  string
	Received  uint64
	Clients   int64
	Refused   uint64

	QueueErr  string
	Messages  uint64
	Bytes     string
	OldestAge string
	Chart     chart

	Bridges    []bridgeRow
	Drops      []dropRow
	DropsTotal uint64
	Devices    []deviceRow
}

type bridgeRow struct {
	Name      string
	Up        bool
	Forwarded uint64
	Pending   uint64
	LastAck   string // "never" or a UTC time
	AckAge    string // "" or "12s ago"
	LastError string // why it is down; "" while up
}

type dropRow struct {
	Reason string
	Count  uint64
}

type deviceRow struct {
	Name, Driver string
	OK           bool
	Errors       uint64
	LastReading  string
	LastError    string
}

// chart is the backlog over the last window, drawn as an SVG polyline in a
// W×H box. Points are "x,y" pairs of numbers.
type chart struct {
	W, H   int
	Line   string // polyline points
	Area   string // polygon points: the line closed along the x axis
	Max    string // the y axis' top value
	Window string // e.g. "1h"
}

const chartW, chartH = 320, 90

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	sn := s.snapshot()
	p := page{
		GatewayID: s.o.GatewayID,
		Version:   s.o.Version,
		Now:       sn.now.UTC().Format("2006-01-02 15:04:05 UTC"),
		Uptime:    duration(sn.now.Sub(s.o.Start)),
		Received:  sn.broker.Received,
		Clients:   sn.broker.ClientsConnected,
		Refused:   sn.broker.Refused,
		Messages:  sn.queue.Messages,
		Bytes:     bytesString(sn.queue.Bytes),
		OldestAge: "-",
	}
	if err := s.ready(); err != nil {
		p.NotReady = err.Error()
	} else {
		p.Ready = true
	}
	if sn.queueErr != nil {
		p.QueueErr = sn.queueErr.Error()
	}
	if !sn.queue.Oldest.IsZero() {
		p.OldestAge = duration(sn.now.Sub(sn.queue.Oldest))
	}
	for _, b := range sn.bridges {
		r := bridgeRow{Name: b.Name, Up: b.Up, Forwarded: b.Forwarded, Pending: b.Pending, LastAck: "never"}
		if !b.Up {
			r.LastError = b.LastError
		}
		if !b.LastAck.IsZero() {
			r.AckAge = duration(sn.now.Sub(b.LastAck)) + " ago"
			r.LastAck = clock(b.LastAck, sn.now)
		}
		p.Bridges = append(p.Bridges, r)
	}
	for r, n := range sn.dropped {
		if n > 0 {
			p.Drops = append(p.Drops, dropRow{r, n})
			p.DropsTotal += n
		}
	}
	sort.Slice(p.Drops, func(i, j int) bool { return p.Drops[i].Reason < p.Drops[j].Reason })
	for _, d := range sn.devices {
		r := deviceRow{Name: d.Name, Driver: d.Driver, OK: d.OK, Errors: d.Errors, LastReading: "never", LastError: d.LastError}
		if !d.LastReading.IsZero() {
			r.LastReading = duration(sn.now.Sub(d.LastReading)) + " ago"
		}
		p.Devices = append(p.Devices, r)
	}
	s.mu.Lock()
	pts := s.backlog.points()
	s.mu.Unlock()
	if sn.queueErr == nil { // the chart ends with the backlog as it is now
		pts = append(pts, point{at: sn.now, messages: sn.queue.Messages, bytes: sn.queue.Bytes})
	}
	p.Chart = drawChart(pts, sn.now, s.o.SampleEvery*time.Duration(s.o.ChartPoints))

	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	if err := writePage(w, &p); err != nil {
		s.o.Logger.Debug("writing status page", "error", err)
	}
}

// drawChart maps the samples of the last window onto the chart's box:
// x from now-window (left) to now (right), y from 0 (bottom) to the
// largest backlog in the window (top).
func drawChart(pts []point, now time.Time, window time.Duration) chart {
	c := chart{W: chartW, H: chartH, Window: duration(window), Max: "0"}
	if window%time.Hour == 0 {
		c.Window = fmt.Sprintf("%dh", window/time.Hour)
	}
	from := now.Add(-window)
	var top uint64
	var in []point
	for _, p := range pts {
		if !p.at.Before(from) && !p.at.After(now) {
			in = append(in, p)
			top = max(top, p.messages)
		}
	}
	if len(in) == 0 {
		return c
	}
	c.Max = strconv.FormatUint(top, 10)
	const pad = 2
	x := func(t time.Time) float64 {
		return float64(chartW) * float64(t.Sub(from)) / float64(window)
	}
	y := func(v uint64) float64 {
		if top == 0 {
			return chartH - pad
		}
		return chartH - pad - float64(chartH-2*pad)*float64(v)/float64(top)
	}
	var line strings.Builder
	for i, p := range in {
		if i > 0 {
			line.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%.1f,%.1f", x(p.at), y(p.messages))
	}
	if len(in) == 1 { // a single sample: a flat line to now
		fmt.Fprintf(&line, " %.1f,%.1f", float64(chartW), y(in[0].messages))
	}
	c.Line = line.String()
	first := strings.SplitN(c.Line, ",", 2)[0]
	last := c.Line[strings.LastIndexByte(c.Line, ' ')+1:]
	lastX := strings.SplitN(last, ",", 2)[0]
	c.Area = fmt.Sprintf("%s,%d %s %s,%d", first, chartH, c.Line, lastX, chartH)
	return c
}

// clock is t in UTC, with the date only when it is not within a day of now.
func clock(t, now time.Time) string {
	if now.Sub(t) < 20*time.Hour && now.Sub(t) > -time.Hour {
		return t.UTC().Format("15:04:05 UTC")
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// duration is d rounded for a person: 45s, 12m 5s, 3h 20m, 2d 4h.
func duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

// bytesString is n in B, KiB, MiB or GiB with one decimal.
func bytesString(n uint64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%d B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(k*k*k))
}
