package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	pngpkg "image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
	"github.com/outpost-edge/outpost/configs"
)

// freeAddr returns a loopback address nothing listens on, for an upstream
// that starts later in the test.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeWebConfig writes a config with the HTTP server on a free port, one
// tcp listener, user "sensor" (password "secret", may publish sensors/#
// only) and bridge "cloud" to upstream.
func writeWebConfig(t *testing.T, dir, upstream string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`gateway_id: web-gw-01
data_dir: %s
listeners:
  - {name: sensors, type: tcp, address: "127.0.0.1:0"}
auth:
  users:
    - {username: sensor, password_hash: %q, publish: ["sensors/#"]}
bridges:
  - name: cloud
    mqtt: {url: "tcp://%s", keepalive: 2s}
    forward:
      - {from: "sensors/#", to: "site/{gateway_id}/{topic}", qos: 1}
    batch: {max_messages: 50, max_delay: 20ms}
    reconnect: {min: 50ms, max: 300ms}
http: {address: "127.0.0.1:0"}
`, filepath.Join(dir, "data"), hash, upstream)
	path := filepath.Join(dir, "outpost.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	httpAddrRE = regexp.MustCompile(`msg="http serving[^"]*" address=(\S+)`)
	mqttAddrRE = regexp.MustCompile(`msg="outpost running".* listeners=(\S+)`)
)

// runInProcess runs outpost's run on cfg in this process and returns its
// log and stop, which cancels it and fails the test unless it returns
// cleanly; the test's end stops it too.
func runInProcess(t *testing.T, cfg *configs.Config) (logs *bridgetest.Buffer, stop func()) {
	t.Helper()
	logs = &bridgetest.Buffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), func() *configs.Config { <-ctx.Done(); return nil })
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v\n%s", err, logs)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("run did not return after cancel:\n%s", logs)
			}
		})
	}
	t.Cleanup(stop)
	return logs, stop
}

// waitAddrs waits until the logs name the MQTT listener and the HTTP server.
func waitAddrs(t *testing.T, logs *bridgetest.Buffer) (mqttAddr, httpAddr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, h := mqttAddrRE.FindStringSubmatch(logs.String()), httpAddrRE.FindStringSubmatch(logs.String())
		if m != nil && h != nil {
			return strings.Split(m[1], ",")[0], h[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("outpost did not log its addresses:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics and parses it with Prometheus' text parser.
func scrape(t *testing.T, httpAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, "http://"+httpAddr+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// metric returns the value of the sample of name with exactly labels, and
// whether there is one.
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		}
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// specMetrics are the metrics SPEC names, with their types and labels.
var specMetrics = []struct {
	name   string
	typ    dto.MetricType
	labels []string
}{
	{"outpost_received_total", dto.MetricType_COUNTER, nil},
	{"outpost_queue_messages", dto.MetricType_GAUGE, nil},
	{"outpost_queue_bytes", dto.MetricType_GAUGE, nil},
	{"outpost_queue_oldest_age_seconds", dto.MetricType_GAUGE, nil},
	{"outpost_dropped_total", dto.MetricType_COUNTER, []string{"reason"}},
	{"outpost_bridge_up", dto.MetricType_GAUGE, []string{"bridge"}},
	{"outpost_bridge_forwarded_total", dto.MetricType_COUNTER, []string{"bridge"}},
	{"outpost_bridge_pending_messages", dto.MetricType_GAUGE, []string{"bridge"}},
	{"outpost_bridge_last_ack_timestamp_seconds", dto.MetricType_GAUGE, []string{"bridge"}},
	{"outpost_clients_connected", dto.MetricType_GAUGE, nil},
	{"outpost_build_info", dto.MetricType_GAUGE, []string{"goversion", "version"}},
	{"go_goroutines", dto.MetricType_GAUGE, nil},
	{"go_memstats_heap_inuse_bytes", dto.MetricType_GAUGE, nil},
	{"process_resident_memory_bytes", dto.MetricType_GAUGE, nil},
	{"go_gc_duration_seconds", dto.MetricType_SUMMARY, nil}, // quantiles are not labels once parsed
}

func checkSpecMetrics(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for _, m := range specMetrics {
		f := fams[m.name]
		if f == nil {
			t.Errorf("/metrics has no %s", m.name)
			continue
		}
		if f.GetType() != m.typ {
			t.Errorf("%s is a %v, want %v", m.name, f.GetType(), m.typ)
		}
		for _, s := range f.GetMetric() {
			var names []string
			for _, l := range s.GetLabel() {
				names = append(names, l.GetName())
			}
			slices.Sort(names)
			if fmt.Sprint(names) != fmt.Sprint(m.labels) {
				t.Errorf("%s has labels %v, want %v", m.name, names, m.labels)
			}
		}
	}
}

// want checks that metric name{labels} is v.
func want(t *testing.T, fams map[string]*dto.MetricFamily, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := metric(fams, name, labels...)
	if !ok {
		t.Errorf("no %s%v", name, labels)
	} else if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

// waitMetrics scrapes until ok accepts the metrics, failing after d.
func waitMetrics(t *testing.T, httpAddr string, d time.Duration, what string, ok func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		fams := scrape(t, httpAddr)
		if ok(fams) {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func connect(t *testing.T, addr, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername("sensor").SetPassword("secret").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// TestWebMetricsLifecycle runs outpost in this process (so the race
// detector sees the HTTP server, the adapters and the pieces they read)
// and follows a backlog through /metrics: N messages queue while the
// upstream is away, a publish the ACL refuses is counted as a drop, then
// the upstream comes, the backlog drains and the counters say so. /healthz
// and /readyz answer 200 while it runs; the server is gone after shutdown.
func TestWebMetricsLifecycle(t *testing.T) {
	const n = 25
	upAddr := freeAddr(t)
	dir := t.TempDir()
	cfg, err := loadConfig(writeWebConfig(t, dir, upAddr))
	if err != nil {
		t.Fatal(err)
	}
	logs, stop := runInProcess(t, cfg)
	mqttAddr, httpAddr := waitAddrs(t, logs)

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, "http://"+httpAddr+path); code != 200 {
			t.Fatalf("GET %s = %d %q", path, code, body)
		}
	}
	fams := scrape(t, httpAddr)
	checkSpecMetrics(t, fams)
	want(t, fams, 0, "outpost_queue_messages")
	want(t, fams, 0, "outpost_queue_oldest_age_seconds")
	want(t, fams, 0, "outpost_bridge_up", "bridge", "cloud")
	want(t, fams, 0, "outpost_bridge_last_ack_timestamp_seconds", "bridge", "cloud")
	want(t, fams, 1, "outpost_build_info", "version", versionString(), "goversion", runtime.Version())

	c := connect(t, mqttAddr, "web-pub")
	for i := range n {
		if tok := c.Publish(fmt.Sprintf("sensors/s1/%d", i), 1, false, []byte("x")); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	fams = scrape(t, httpAddr)
	checkSpecMetrics(t, fams)
	want(t, fams, n, "outpost_queue_messages")
	want(t, fams, 1, "outpost_clients_connected")
	want(t, fams, 0, "outpost_bridge_up", "bridge", "cloud")
	want(t, fams, n, "outpost_bridge_pending_messages", "bridge", "cloud")
	want(t, fams, 0, "outpost_bridge_forwarded_total", "bridge", "cloud")
	want(t, fams, 0, "outpost_dropped_total", "reason", "acl")
	want(t, fams, 0, "outpost_dropped_total", "reason", "queue_full")
	want(t, fams, 0, "outpost_dropped_total", "reason", "upstream_refused")
	// Outside the user's publish ACL: dropped and counted (mochi closes
	// the 3.1.1 client's connection, its way of refusing a QoS 1 publish).
	c.Publish("forbidden/x", 1, false, []byte("no")).WaitTimeout(2 * time.Second)
	fams = waitMetrics(t, httpAddr, 10*time.Second, "the ACL drop", func(f map[string]*dto.MetricFamily) bool {
		v, _ := metric(f, "outpost_dropped_total", "reason", "acl")
		return v == 1
	})
	want(t, fams, n, "outpost_queue_messages")
	if v, _ := metric(fams, "outpost_received_total"); v < n {
		t.Errorf("outpost_received_total = %v after %d publishes", v, n)
	}
	if v, _ := metric(fams, "outpost_queue_bytes"); v < n {
		t.Errorf("outpost_queue_bytes = %v with %d messages queued", v, n)
	}
	if v, _ := metric(fams, "outpost_queue_oldest_age_seconds"); v < 0 || v > 600 {
		t.Errorf("outpost_queue_oldest_age_seconds = %v", v)
	}
	if v, _ := metric(fams, "process_resident_memory_bytes"); v <= 0 {
		t.Errorf("process_resident_memory_bytes = %v", v)
	}

	// The upstream comes: everything is forwarded and acknowledged.
	beforeUp := time.Now()
	up := bridgetest.NewUpstreamOn(t, upAddr, "site/#")
	up.WaitFor(t, n, 30*time.Second)
	fams = waitMetrics(t, httpAddr, 30*time.Second, "the drained backlog", func(f map[string]*dto.MetricFamily) bool {
		fwd, _ := metric(f, "outpost_bridge_forwarded_total", "bridge", "cloud")
		q, _ := metric(f, "outpost_queue_messages")
		return fwd == n && q == 0
	})
	checkSpecMetrics(t, fams)
	want(t, fams, 1, "outpost_bridge_up", "bridge", "cloud")
	want(t, fams, 0, "outpost_bridge_pending_messages", "bridge", "cloud")
	want(t, fams, 0, "outpost_queue_oldest_age_seconds")
	want(t, fams, 1, "outpost_dropped_total", "reason", "acl")
	ack, _ := metric(fams, "outpost_bridge_last_ack_timestamp_seconds", "bridge", "cloud")
	if ackAt := time.Unix(0, int64(ack*1e9)); ackAt.Before(beforeUp.Add(-time.Second)) || ackAt.After(time.Now().Add(time.Second)) {
		t.Errorf("last ack at %v, want between %v and now", ackAt, beforeUp)
	}

	// Shutdown: run returns, and the HTTP server is gone with it.
	stop()
	if t.Failed() {
		t.FailNow()
	}
	if _, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + httpAddr + "/healthz"); err == nil {
		t.Error("the HTTP server still answers after run returned")
	}
}

// chromium returns the Debian chromium binary's path, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is headless chromium with JavaScript off, driven over the
// DevTools protocol on a pipe (--remote-debugging-pipe: commands on its fd
// 3, replies and events on fd 4, each a JSON object ended by a NUL byte).
// With scriptEnabled=false, its --dump-dom and --screenshot shortcuts give
// nothing (seen with chromium 156: no output, no file, exit 0), while the
// protocol's DOM.getOuterHTML and Page.captureScreenshot work.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	stderr  *bridgetest.Buffer
	in      *os.File // to chromium
	outFile *os.File // from chromium, for read deadlines
	out     *bufio.Reader
	id      int
	session string
	loaded  bool // Page.loadEventFired seen since the last navigate
}

// startBrowser starts chromium with one page of a phone's size (412×915
// CSS pixels); t.Cleanup closes it.
func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	toR, toW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromR, fromW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, stderr: &bridgetest.Buffer{}, in: toW, outFile: fromR, out: bufio.NewReader(fromR)}
	b.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--hide-scrollbars", "--user-data-dir="+t.TempDir(),
		"--blink-settings=scriptEnabled=false", "--remote-debugging-pipe")
	b.cmd.ExtraFiles = []*os.File{toR, fromW} // fd 3, fd 4
	b.cmd.SysProcAttr = dieWithTest()
	b.cmd.Stderr = b.stderr
	b.cmd.WaitDelay = 5 * time.Second
	err = b.cmd.Start()
	toR.Close()
	fromW.Close()
	if err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		b.send("", "Browser.close", nil)
		done := make(chan struct{})
		go func() { b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.cmd.Process.Kill()
			<-done
		}
		toW.Close()
		fromR.Close()
	})
	var target struct{ TargetID string }
	b.call("Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	b.call("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID // the page's: the commands below go to it
	b.call("Page.enable", nil, nil)
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": true}, nil)
	return b
}

func (b *browser) send(session, method string, params any) (int, error) {
	b.id++
	m := map[string]any{"id": b.id, "method": method}
	if params != nil {
		m["params"] = params
	}
	if session != "" {
		m["sessionId"] = session
	}
	msg, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	_, err = b.in.Write(append(msg, 0))
	return b.id, err
}

// next reads the next reply or event, noting a page load; it fails the
// test after 30s of silence.
func (b *browser) next() (id int, result json.RawMessage, errMsg string) {
	b.t.Helper()
	b.outFile.SetReadDeadline(time.Now().Add(30 * time.Second))
	raw, err := b.out.ReadBytes(0)
	if err != nil {
		b.t.Fatalf("reading from chromium: %v\n%s", err, b.stderr)
	}
	var m struct {
		ID     int             `json:"id"`
		Method string          `json:"method"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw[:len(raw)-1], &m); err != nil {
		b.t.Fatalf("chromium sent %q: %v", raw, err)
	}
	if m.Method == "Page.loadEventFired" {
		b.loaded = true
	}
	if m.Error != nil {
		errMsg = m.Error.Message
	}
	return m.ID, m.Result, errMsg
}

// call sends a command (to the page once there is one) and decodes its
// result into result, unless nil.
func (b *browser) call(method string, params, result any) {
	b.t.Helper()
	id, err := b.send(b.session, method, params)
	if err != nil {
		b.t.Fatalf("%s: %v\n%s", method, err, b.stderr)
	}
	for {
		got, res, errMsg := b.next()
		if got != id {
			continue // an event, or the reply to a command sent before
		}
		if errMsg != "" {
			b.t.Fatalf("%s: %s", method, errMsg)
		}
		if result != nil {
			if err := json.Unmarshal(res, result); err != nil {
				b.t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

// load navigates to url, waits for the load event and returns the DOM.
func (b *browser) load(url string) string {
	b.t.Helper()
	b.loaded = false
	b.call("Page.navigate", map[string]any{"url": url}, nil)
	for !b.loaded {
		b.next()
	}
	var doc struct{ Root struct{ NodeID int } }
	b.call("DOM.getDocument", nil, &doc)
	var html struct{ OuterHTML string }
	b.call("DOM.getOuterHTML", map[string]any{"nodeId": doc.Root.NodeID}, &html)
	return html.OuterHTML
}

// checkNoScript fails the test unless the browser really runs no script:
// a page whose script would rewrite a paragraph must keep its text.
func (b *browser) checkNoScript() {
	b.t.Helper()
	page := `<p id="p">static</p><script>document.getElementById("p").textContent = "scripted"</script>`
	dom := b.load("data:text/html;base64," + base64.StdEncoding.EncodeToString([]byte(page)))
	if !strings.Contains(dom, `<p id="p">static</p>`) {
		b.t.Fatalf("JavaScript runs in the browser meant to show the page needs none:\n%s", dom)
	}
}

// browse loads url and returns the DOM after load. The page's screenshot
// must be phone-sized; with OUTPOST_TEST_SCREENSHOTS set to a directory, it
// is saved there as name, to look at.
func (b *browser) browse(url, name string) string {
	t := b.t
	t.Helper()
	dom := b.load(url)
	var shot struct{ Data []byte } // base64 in the JSON
	b.call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	pc, err := pngpkg.DecodeConfig(bytes.NewReader(shot.Data))
	if err != nil {
		t.Fatalf("screenshot of %s is not a PNG: %v", url, err)
	}
	if pc.Width < 300 || pc.Height < 600 {
		t.Errorf("screenshot is %dx%d, want a phone-sized page", pc.Width, pc.Height)
	}
	if dir := os.Getenv("OUTPOST_TEST_SCREENSHOTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, name), shot.Data, 0o644)
	}
	return dom
}

// TestBrowserStatusPage loads the real binary's status page in headless
// chromium with JavaScript off, as a technician's phone would: it shows the
// gateway id, the backlog and bridge "cloud" down while its upstream is
// away, then up once the upstream comes and the backlog has drained.
func TestBrowserStatusPage(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("chromium is not installed (.ci/run installs it): status page not checked in a browser")
	}
	const n = 7
	upAddr := freeAddr(t)
	dir := t.TempDir()
	p := startOutpost(t, writeWebConfig(t, dir, upAddr))
	_, httpAddr := waitAddrs(t, p.logs)
	c := connect(t, p.addr, "browser-pub")
	for i := range n {
		if tok := c.Publish(fmt.Sprintf("sensors/s1/%d", i), 1, false, []byte("x")); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	url := "http://" + httpAddr + "/"
	br := startBrowser(t, bin)
	br.checkNoScript()

	dom := br.browse(url, "status-down.png")
	for _, want := range []string{
		`<h1 id="gateway">web-gw-01</h1>`,
		`data-bridge="cloud" data-state="down"`,
		fmt.Sprintf(`<div class="big" id="backlog">%d</div>`, n),
		`<span class="badge ok" id="ready">ready</span>`,
		"<polyline",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("with the upstream away, the page lacks %s:\n%s", want, dom)
		}
	}

	up := bridgetest.NewUpstreamOn(t, upAddr, "site/#")
	up.WaitFor(t, n, 30*time.Second)
	waitMetrics(t, httpAddr, 30*time.Second, "bridge cloud up with the backlog drained", func(f map[string]*dto.MetricFamily) bool {
		u, _ := metric(f, "outpost_bridge_up", "bridge", "cloud")
		q, _ := metric(f, "outpost_queue_messages")
		return u == 1 && q == 0
	})
	dom = br.browse(url, "status-up.png")
	for _, want := range []string{
		`<h1 id="gateway">web-gw-01</h1>`,
		`data-bridge="cloud" data-state="up"`,
		`<div class="big" id="backlog">0</div>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("with the upstream up, the page lacks %s:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, "last ack never") {
		t.Errorf("the page shows no last ack after the drain:\n%s", dom)
	}
}
