package web

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/storage"
)

// The sources here are fixed values: these tests cover what the real
// pieces cannot easily produce (every drop reason at once, devices, names
// that need escaping). cmd/outpost's web tests scrape a real outpost.

type fixedQueue struct {
	st  storage.Stats
	err error
}

func (q *fixedQueue) Stats() (storage.Stats, error) { return q.st, q.err }

type fixedBroker broker.Stats

func (b fixedBroker) Stats() broker.Stats { return broker.Stats(b) }

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testServer(q *fixedQueue, ready func() error) *Server {
	return New(Options{
		GatewayID: `pi-<b>"1"</b>`,
		Version:   "v1.2.3",
		Queue:     q,
		Broker:    fixedBroker{Received: 42, ClientsConnected: 3, DroppedACL: 2, Refused: 5},
		Bridges: func() []bridge.Stats {
			return []bridge.Stats{{Name: "cloud", Up: true, Forwarded: 40, Pending: 1, LastAck: now.Add(-3 * time.Second),
				Dropped: map[string]uint64{bridge.DropNoRoute: 1, bridge.DropRefused: 4}},
				{Name: `lake"\` + "\n", Up: false, Pending: 7, LastError: "<dial tcp: connection refused>",
					Dropped: map[string]uint64{bridge.DropTooLarge: 6, bridge.DropRefused: 1}},
			}
		},
		Devices: func() []Device {
			return []Device{
				{Name: "enclosure", Driver: "bme280", OK: true, LastReading: now.Add(-30 * time.Second)},
				{Name: "door", Driver: "gpio_in", Errors: 9, LastError: "<gpio busy>"},
			}
		},
		Ready: ready,
		Start: now.Add(-90 * time.Minute),
		Now:   func() time.Time { return now },
	})
}

func testQueue() *fixedQueue {
	return &fixedQueue{st: storage.Stats{Messages: 8, Bytes: 2048, Oldest: now.Add(-75 * time.Second), Commits: 11,
		Dropped: map[string]uint64{storage.ReasonQueueFull: 3, storage.ReasonMaxAge: 0, storage.ReasonCorrupt: 1}}}
}

func get(t *testing.T, h http.Handler, path string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Result().Header, string(b)
}

// parseMetrics parses a /metrics body with Prometheus' own text parser,
// which refuses a family split in two, a bad TYPE or a badly escaped label.
func parseMetrics(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include want, failing if there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_SUMMARY:
			return float64(m.GetSummary().GetSampleCount())
		}
		return m.GetUntyped().GetValue()
	}
	t.Fatalf("%s has no sample with labels %v", name, want)
	return 0
}

func TestMetricsExposition(t *testing.T) {
	s := testServer(testQueue(), nil)
	code, h, body := get(t, s.Handler(), "/metrics")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q", code, h.Get("Content-Type"))
	}
	fams := parseMetrics(t, body)
	types := map[string]dto.MetricType{
		"outpost_received_total":                    dto.MetricType_COUNTER,
		"outpost_queue_messages":                    dto.MetricType_GAUGE,
		"outpost_queue_bytes":                       dto.MetricType_GAUGE,
		"outpost_queue_oldest_age_seconds":          dto.MetricType_GAUGE,
		"outpost_dropped_total":                     dto.MetricType_COUNTER,
		"outpost_bridge_up":                         dto.MetricType_GAUGE,
		"outpost_bridge_forwarded_total":            dto.MetricType_COUNTER,
		"outpost_bridge_pending_messages":           dto.MetricType_GAUGE,
		"outpost_bridge_last_ack_timestamp_seconds": dto.MetricType_GAUGE,
		"outpost_clients_connected":                 dto.MetricType_GAUGE,
		"outpost_build_info":                        dto.MetricType_GAUGE,
		"outpost_device_up":                         dto.MetricType_GAUGE,
		"outpost_device_errors_total":               dto.MetricType_COUNTER,
		"go_goroutines":                             dto.MetricType_GAUGE,
		"go_memstats_heap_inuse_bytes":              dto.MetricType_GAUGE,
		"go_gc_duration_seconds":                    dto.MetricType_SUMMARY,
	}
	for name, typ := range types {
		if f := fams[name]; f == nil || f.GetType() != typ {
			t.Errorf("%s: want a %v family, got %v", name, typ, f)
		}
	}
	lake := `lake"\` + "\n" // survives the label escaping both ways
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"outpost_received_total", nil, 42},
		{"outpost_clients_connected", nil, 3},
		{"outpost_refused_total", nil, 5},
		{"outpost_queue_messages", nil, 8},
		{"outpost_queue_bytes", nil, 2048},
		{"outpost_queue_oldest_age_seconds", nil, 75},
		{"outpost_queue_commits_total", nil, 11},
		// Every source summed by reason: queue, broker, both bridges.
		{"outpost_dropped_total", map[string]string{"reason": "queue_full"}, 3},
		{"outpost_dropped_total", map[string]string{"reason": "max_age"}, 0},
		{"outpost_dropped_total", map[string]string{"reason": "corrupt"}, 1},
		{"outpost_dropped_total", map[string]string{"reason": "acl"}, 2},
		{"outpost_dropped_total", map[string]string{"reason": "no_route"}, 1},
		{"outpost_dropped_total", map[string]string{"reason": "upstream_refused"}, 5},
		{"outpost_dropped_total", map[string]string{"reason": "too_large"}, 6},
		{"outpost_bridge_up", map[string]string{"bridge": "cloud"}, 1},
		{"outpost_bridge_up", map[string]string{"bridge": lake}, 0},
		{"outpost_bridge_forwarded_total", map[string]string{"bridge": "cloud"}, 40},
		{"outpost_bridge_pending_messages", map[string]string{"bridge": lake}, 7},
		{"outpost_bridge_last_ack_timestamp_seconds", map[string]string{"bridge": "cloud"}, float64(now.Unix() - 3)},
		{"outpost_bridge_last_ack_timestamp_seconds", map[string]string{"bridge": lake}, 0},
		{"outpost_build_info", map[string]string{"version": "v1.2.3", "goversion": goVersion}, 1},
		{"outpost_device_up", map[string]string{"device": "enclosure"}, 1},
		{"outpost_device_up", map[string]string{"device": "door"}, 0},
		{"outpost_device_errors_total", map[string]string{"device": "door"}, 9},
		{"outpost_device_info", map[string]string{"device": "door", "driver": "gpio_in"}, 1},
		{"outpost_device_last_reading_timestamp_seconds", map[string]string{"device": "enclosure"}, float64(now.Unix() - 30)},
		{"process_start_time_seconds", nil, float64(now.Unix() - 90*60)},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if v := value(t, fams, "go_goroutines", nil); v < 1 {
		t.Errorf("go_goroutines = %v", v)
	}
	if v := value(t, fams, "go_memstats_heap_inuse_bytes", nil); v <= 0 {
		t.Errorf("go_memstats_heap_inuse_bytes = %v", v)
	}
	if _, ok := readProc(); ok {
		if v := value(t, fams, "process_resident_memory_bytes", nil); v <= 0 {
			t.Errorf("process_resident_memory_bytes = %v", v)
		}
	}
}

// TestMetricsNoDevices: without devices there are no device families, and
// an empty queue has an oldest age of 0.
func TestMetricsNoDevices(t *testing.T) {
	s := New(Options{Queue: &fixedQueue{}, Broker: fixedBroker{}})
	_, _, body := get(t, s.Handler(), "/metrics")
	fams := parseMetrics(t, body)
	for name := range fams {
		if strings.HasPrefix(name, "outpost_device_") {
			t.Errorf("%s without devices", name)
		}
	}
	if v := value(t, fams, "outpost_queue_oldest_age_seconds", nil); v != 0 {
		t.Errorf("oldest age of an empty queue = %v", v)
	}
	if v := value(t, fams, "outpost_dropped_total", map[string]string{"reason": "acl"}); v != 0 {
		t.Errorf("acl drops = %v", v)
	}
}

func TestHealthReady(t *testing.T) {
	var notReady error
	s := testServer(testQueue(), func() error { return notReady })
	for _, c := range []struct {
		path     string
		notReady error
		code     int
		body     string
	}{
		{"/healthz", nil, 200, "ok\n"},
		{"/readyz", nil, 200, "ready\n"},
		{"/readyz", errors.New("queue is not open: database not open"), 503, "not ready: queue is not open: database not open\n"},
		{"/healthz", errors.New("shutting down"), 200, "ok\n"},
		{"/nothing", nil, 404, ""},
	} {
		notReady = c.notReady
		code, _, body := get(t, s.Handler(), c.path)
		if code != c.code || (c.body != "" && body != c.body) {
			t.Errorf("GET %s (ready: %v) = %d %q, want %d %q", c.path, c.notReady, code, body, c.code, c.body)
		}
	}
}

// TestStatusPageEscapes: names from the config and errors from devices are
// text, never markup.
func TestStatusPageEscapes(t *testing.T) {
	s := testServer(testQueue(), func() error { return errors.New("<shutting down>") })
	s.Sample()
	code, h, body := get(t, s.Handler(), "/")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", code, h.Get("Content-Type"))
	}
	for _, raw := range []string{`<b>"1"</b>`, "<gpio busy>", "<shutting down>", "<dial tcp"} {
		if strings.Contains(body, raw) {
			t.Errorf("unescaped %q in the page", raw)
		}
	}
	for _, want := range []string{
		`<h1 id="gateway">pi-&lt;b&gt;&#34;1&#34;&lt;/b&gt;</h1>`,
		`data-bridge="cloud" data-state="up"`,
		"&lt;gpio busy&gt;",
		"&lt;dial tcp: connection refused&gt;", // why the down bridge is down
		"not ready",
		"up 1h 30m",
		"1m 15s",  // oldest message
		"2.0 KiB", // backlog bytes
		"last ack 3s ago (11:59:57 UTC)",
		"<polyline", // the chart, one sample so far
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("the page loads a script or an external asset")
	}
}

func TestStatusChartWindow(t *testing.T) {
	r := newRing(4)
	for i := range 6 {
		r.add(point{at: now.Add(time.Duration(i-5) * 10 * time.Minute), messages: uint64(i)})
	}
	pts := r.points()
	if len(pts) != 4 || pts[0].messages != 2 || pts[3].messages != 5 {
		t.Fatalf("ring kept %v", pts)
	}
	// A 25-minute window holds the samples at -20, -10 and 0 minutes.
	c := drawChart(pts, now, 25*time.Minute)
	if strings.Count(c.Line, ",") != 3 || c.Max != "5" {
		t.Fatalf("chart = %+v", c)
	}
	// The newest sample is the top right corner; the area closes on the x axis.
	if !strings.HasSuffix(c.Line, " 320.0,2.0") || !strings.HasSuffix(c.Area, " 320.0,90") {
		t.Errorf("line %q area %q", c.Line, c.Area)
	}
	if c := drawChart(nil, now, time.Hour); c.Line != "" || c.Window != "1h" {
		t.Errorf("empty chart = %+v", c)
	}
}

// TestWebServeStops: Serve answers on its listener, samples the backlog at
// once, and returns with its goroutines when ctx is done; a listener that
// fails ends it too.
func TestWebServeStops(t *testing.T) {
	s := testServer(testQueue(), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	s.mu.Lock()
	n := len(s.backlog.points())
	s.mu.Unlock()
	if n == 0 {
		t.Error("no backlog sample taken at start")
	}

	ln, _ = net.Listen("tcp", "127.0.0.1:0")
	ln.Close()
	go func() { done <- s.Serve(t.Context(), ln) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve on a closed listener returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve on a closed listener did not return")
	}
}
