// Package web serves outpost's HTTP endpoints: /metrics in the Prometheus
// text format, /healthz, /readyz, and / a status page for a technician on a
// phone. It reads the running pieces through small interfaces and changes
// nothing.
package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/storage"
)

// Queue is the durable queue, as *storage.Queue.
type Queue interface {
	Stats() (storage.Stats, error)
}

// Broker is the local MQTT broker, as *broker.Broker.
type Broker interface {
	Stats() broker.Stats
}

// Device is the state of a sensor or output wired to the gateway.
type Device struct {
	Name        string
	Driver      string
	OK          bool      // the last reading or write succeeded
	Errors      uint64    // failed readings or writes since start
	LastReading time.Time // zero if never
	LastError   string    // empty if none
}

// Options configure a Server. Queue and Broker are required.
type Options struct {
	GatewayID string
	Version   string
	Queue     Queue
	Broker    Broker
	// Bridges returns the running bridges' counters; nil means none.
	Bridges func() []bridge.Stats
	// Devices returns the wired devices' state; nil means none.
	Devices func() []Device
	// Ready returns nil when outpost is ready to take messages, else why
	// not; nil means always ready.
	Ready func() error
	// Start is when the process started (uptime, process_start_time_seconds).
	Start time.Time
	// SampleEvery is the backlog chart's sampling period; the chart keeps
	// ChartPoints samples. Defaults 30s and 120 (one hour).
	SampleEvery time.Duration
	ChartPoints int
	Logger      *slog.Logger
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// Server is the HTTP front of a running outpost. Its methods are safe for
// concurrent use.
type Server struct {
	o   Options
	mux *http.ServeMux

	mu      sync.Mutex
	backlog *ring // guarded by mu
}

// New returns a server for o; Serve runs it.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Start.IsZero() {
		o.Start = o.Now()
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 30 * time.Second
	}
	if o.ChartPoints <= 1 {
		o.ChartPoints = 120
	}
	s := &Server{o: o, mux: http.NewServeMux(), backlog: newRing(o.ChartPoints)}
	s.mux.HandleFunc("GET /metrics", s.metrics)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /{$}", s.status)
	return s
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves HTTP on ln and samples the backlog for the chart until ctx
// is done, then closes ln and waits up to 5s for the requests in flight.
// It returns when the server and its sampler have stopped.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx) // also ends the helpers if hs.Serve fails
	defer cancel()
	wg.Go(func() { s.sampleLoop(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	})
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serving http: %w", err)
}

// sampleLoop records the backlog now and every SampleEvery until ctx is done.
func (s *Server) sampleLoop(ctx context.Context) {
	t := time.NewTicker(s.o.SampleEvery)
	defer t.Stop()
	for {
		s.Sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample records the backlog for the chart. Serve calls it every
// SampleEvery; tests call it directly.
func (s *Server) Sample() {
	st, err := s.o.Queue.Stats()
	if err != nil {
		return
	}
	s.mu.Lock()
	s.backlog.add(point{at: s.o.Now(), messages: st.Messages, bytes: st.Bytes})
	s.mu.Unlock()
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready:", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) ready() error {
	if s.o.Ready == nil {
		return nil
	}
	return s.o.Ready()
}

// snapshot is everything /metrics and the status page show, read once per
// request.
type snapshot struct {
	now      time.Time
	queue    storage.Stats
	queueErr error
	broker   broker.Stats
	bridges  []bridge.Stats
	devices  []Device
	// dropped sums every drop source by reason.
	dropped map[string]uint64
}

// Drop reasons outside the queue and the bridges.
const (
	// ReasonACL: a publish an ACL denied (counted by the broker).
	ReasonACL = "acl"
)

// knownReasons are always exported, at 0 until something is dropped, so
// that rate() and alerts see the series from the start.
var knownReasons = []string{
	storage.ReasonQueueFull, storage.ReasonMaxAge, storage.ReasonCorrupt,
	ReasonACL,
	bridge.DropNoRoute, bridge.DropRefused,
}

func (s *Server) snapshot() snapshot {
	sn := snapshot{now: s.o.Now(), broker: s.o.Broker.Stats(), dropped: map[string]uint64{}}
	sn.queue, sn.queueErr = s.o.Queue.Stats()
	for _, r := range knownReasons {
		sn.dropped[r] += 0
	}
	for r, n := range sn.queue.Dropped {
		sn.dropped[r] += n
	}
	sn.dropped[ReasonACL] += sn.broker.DroppedACL
	if s.o.Bridges != nil {
		sn.bridges = s.o.Bridges()
	}
	for _, bs := range sn.bridges {
		for r, n := range bs.Dropped {
			sn.dropped[r] += n
		}
	}
	sort.Slice(sn.bridges, func(i, j int) bool { return sn.bridges[i].Name < sn.bridges[j].Name })
	if s.o.Devices != nil {
		sn.devices = s.o.Devices()
		sort.Slice(sn.devices, func(i, j int) bool { return sn.devices[i].Name < sn.devices[j].Name })
	}
	return sn
}

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	sn := s.snapshot()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriter(w)
	e := &expo{w: bw}
	s.writeMetrics(e, sn)
	writeRuntime(e, s.o.Start)
	if err := bw.Flush(); err != nil {
		s.o.Logger.Debug("writing /metrics", "error", err)
	}
}

func (s *Server) writeMetrics(e *expo, sn snapshot) {
	e.family("outpost_build_info", "gauge", "Always 1; the labels say which build runs.")
	e.sample("outpost_build_info", 1, label{"version", s.o.Version}, label{"goversion", goVersion})

	e.single("outpost_received_total", "counter", "Messages published to the local broker by clients and by the gateway itself.", float64(sn.broker.Received))
	e.single("outpost_clients_connected", "gauge", "MQTT clients connected to the local broker.", float64(sn.broker.ClientsConnected))
	e.single("outpost_refused_total", "counter", "QoS 1/2 publishes refused because the queue could not take them; the sender keeps them and resends (not a drop).", float64(sn.broker.Refused))

	e.single("outpost_queue_messages", "gauge", "Messages in the on-disk queue.", float64(sn.queue.Messages))
	e.single("outpost_queue_bytes", "gauge", "Bytes of messages in the on-disk queue.", float64(sn.queue.Bytes))
	var age float64
	if !sn.queue.Oldest.IsZero() {
		age = max(0, sn.now.Sub(sn.queue.Oldest).Seconds())
	}
	e.single("outpost_queue_oldest_age_seconds", "gauge", "Age of the oldest queued message; 0 when the queue is empty.", age)
	e.single("outpost_queue_commits_total", "counter", "Queue commits (each one fsync with queue.sync: always) since start.", float64(sn.queue.Commits))

	dropped := make(map[string]float64, len(sn.dropped))
	for r, n := range sn.dropped {
		dropped[r] = float64(n)
	}
	e.byLabel("outpost_dropped_total", "counter", "Messages dropped, by reason: queue_full, max_age, corrupt (queue), acl (broker), no_route, upstream_refused and the Kafka reasons (bridges).", "reason", dropped)

	up, fwd, pending, ack := map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, b := range sn.bridges {
		up[b.Name] = 0
		if b.Up {
			up[b.Name] = 1
		}
		fwd[b.Name] = float64(b.Forwarded)
		pending[b.Name] = float64(b.Pending)
		ack[b.Name] = unixSeconds(b.LastAck)
	}
	e.byLabel("outpost_bridge_up", "gauge", "1 while the bridge's upstream connection is up.", "bridge", up)
	e.byLabel("outpost_bridge_forwarded_total", "counter", "Messages the upstream acknowledged since start.", "bridge", fwd)
	e.byLabel("outpost_bridge_pending_messages", "gauge", "Queued messages waiting for this bridge.", "bridge", pending)
	e.byLabel("outpost_bridge_last_ack_timestamp_seconds", "gauge", "When the upstream last acknowledged a message (Unix seconds); 0 if never.", "bridge", ack)

	if len(sn.devices) > 0 {
		ok, errs, last := map[string]float64{}, map[string]float64{}, map[string]float64{}
		for _, d := range sn.devices {
			ok[d.Name] = 0
			if d.OK {
				ok[d.Name] = 1
			}
			errs[d.Name] = float64(d.Errors)
			last[d.Name] = unixSeconds(d.LastReading)
		}
		e.family("outpost_device_info", "gauge", "Always 1; the driver label says what the device is.")
		for _, d := range sn.devices {
			e.sample("outpost_device_info", 1, label{"device", d.Name}, label{"driver", d.Driver})
		}
		e.byLabel("outpost_device_up", "gauge", "1 while the device's last reading or write succeeded.", "device", ok)
		e.byLabel("outpost_device_errors_total", "counter", "Failed readings or writes of the device since start.", "device", errs)
		e.byLabel("outpost_device_last_reading_timestamp_seconds", "gauge", "When the device was last read or written successfully (Unix seconds); 0 if never.", "device", last)
	}
}
