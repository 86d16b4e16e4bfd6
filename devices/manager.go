package devices

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/outpost-edge/outpost/configs"
)

// Publisher publishes into the local broker; broker.Broker is one. A
// message that a bridge route matches is queued durably before Publish
// returns.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// QueueState is what gpio_out "queue:backlog" shows.
type QueueState struct {
	Messages uint64 // waiting in the queue
	Dropped  uint64 // dropped since start, for any reason; only its rises matter
}

// Options configure a Manager.
type Options struct {
	Devices   []configs.Device
	Publisher Publisher // required when a device publishes (all but gpio_out)
	// BridgeUp reports whether the named bridge is connected upstream, for
	// gpio_out "bridge:<name>". Called every ShowPeriod; must not block.
	BridgeUp func(name string) bool
	// Queue reports the queue's backlog and drops, for gpio_out
	// "queue:backlog". Called every ShowPeriod; must not block for long.
	Queue func() QueueState
	// Host gives the buses and pins; nil is PeriphHost().
	Host   *Host
	Logger *slog.Logger
	// QoS of the published readings. Default 1.
	QoS byte
	// RetryMin and RetryMax bound the backoff between attempts to open or
	// read a failing device: RetryMin doubling up to RetryMax. Defaults 1s
	// and 1m.
	RetryMin, RetryMax time.Duration
	// ShowPeriod is how often gpio_out reads the state, and its blink
	// half-period. Default 500ms.
	ShowPeriod time.Duration
	// DropBlink is how long gpio_out "queue:backlog" blinks after the last
	// drop it saw. Default 10s.
	DropBlink time.Duration
}

// State is a device's state, for the status page.
type State string

const (
	StateStarting State = "starting" // not opened yet
	StateOK       State = "ok"       // last open or read succeeded
	StateFailing  State = "failing"  // last open or read failed; retrying
	StateStopped  State = "stopped"  // Run has returned
)

// Stats are one device's counters.
type Stats struct {
	Name, Driver string
	State        State
	// Errors counts failed opens and reads (outpost_device_errors_total).
	Errors uint64
	// Published counts readings published; PublishErrors those the broker
	// refused (the queue full with when_full: reject_new, shutting down).
	Published, PublishErrors uint64
	LastReading              time.Time // zero if none yet
	LastError                string    // of the last failure, even if recovered since
}

// Manager runs the configured devices.
type Manager struct {
	o    Options
	log  *slog.Logger
	devs []*device

	hostMu sync.Mutex
	hostOK bool
	buses  map[string]i2c.BusCloser
}

// New builds the devices of o.Devices; it touches no hardware.
func New(o Options) (*Manager, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Host == nil {
		o.Host = PeriphHost()
	}
	if o.QoS == 0 {
		o.QoS = 1
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(time.Minute, o.RetryMin)
	}
	if o.ShowPeriod <= 0 {
		o.ShowPeriod = 500 * time.Millisecond
	}
	if o.DropBlink <= 0 {
		o.DropBlink = 10 * time.Second
	}
	m := &Manager{o: o, log: o.Logger.With("component", "devices"), buses: map[string]i2c.BusCloser{}}
	for _, c := range o.Devices {
		d := &device{m: m, cfg: c, log: m.log.With("device", c.Name, "driver", c.Driver),
			bo:    backoff{min: o.RetryMin, max: o.RetryMax},
			st:    Stats{Name: c.Name, Driver: c.Driver, State: StateStarting},
			seen:  map[string]*onChange{},
			every: c.Every}
		if d.every <= 0 {
			d.every = 30 * time.Second
		}
		var err error
		if d.run, err = m.driver(d); err != nil {
			return nil, fmt.Errorf("device %s: %w", c.Name, err)
		}
		if c.Driver != "gpio_out" && o.Publisher == nil {
			return nil, fmt.Errorf("device %s: %w", c.Name, ErrNoPublisher)
		}
		m.devs = append(m.devs, d)
	}
	return m, nil
}

// Run runs every device until ctx is done, and returns once they have all
// stopped and the buses are closed. With no devices it returns at once,
// without initialising the host. Run is called once.
func (m *Manager) Run(ctx context.Context) error {
	if len(m.devs) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	for _, d := range m.devs {
		wg.Go(func() { d.run(ctx) })
	}
	wg.Wait()
	for _, d := range m.devs {
		d.mu.Lock()
		d.st.State = StateStopped
		d.mu.Unlock()
	}
	m.hostMu.Lock()
	defer m.hostMu.Unlock()
	for name, b := range m.buses {
		if err := b.Close(); err != nil {
			m.log.Warn("closing I²C bus", "bus", name, "error", err)
		}
		delete(m.buses, name)
	}
	return nil
}

// Stats returns every device's counters, in config order.
func (m *Manager) Stats() []Stats {
	out := make([]Stats, len(m.devs))
	for i, d := range m.devs {
		d.mu.Lock()
		out[i] = d.st
		d.mu.Unlock()
	}
	return out
}

// initHost initialises the host once; a failure is retried on the next call.
// The caller holds hostMu.
func (m *Manager) initHost() error {
	if m.hostOK {
		return nil
	}
	if err := m.o.Host.Init(); err != nil {
		return fmt.Errorf("initialising the host's GPIO and I²C drivers: %w", err)
	}
	m.hostOK = true
	return nil
}

// bus returns the I²C bus of that name, opened once and shared by the
// devices on it.
func (m *Manager) bus(name string) (i2c.Bus, error) {
	m.hostMu.Lock()
	defer m.hostMu.Unlock()
	if err := m.initHost(); err != nil {
		return nil, err
	}
	if b := m.buses[name]; b != nil {
		return b, nil
	}
	b, err := m.o.Host.OpenI2C(name)
	if err != nil {
		return nil, fmt.Errorf("opening I²C bus %q: %w", name, err)
	}
	m.buses[name] = b
	return b, nil
}

func (m *Manager) pin(name string) (pinIO, error) {
	m.hostMu.Lock()
	defer m.hostMu.Unlock()
	if err := m.initHost(); err != nil {
		return nil, err
	}
	return m.o.Host.Pin(name)
}

// device runs one configured device.
type device struct {
	m     *Manager
	cfg   configs.Device
	log   *slog.Logger
	run   func(context.Context)
	every time.Duration
	bo    backoff
	seen  map[string]*onChange // by topic; only used by run's goroutine

	mu sync.Mutex
	st Stats
}

// fail counts and logs a failure and returns how long to wait before the
// next attempt.
func (d *device) fail(err error) time.Duration {
	wait := d.bo.next()
	d.mu.Lock()
	d.st.Errors++
	d.st.State = StateFailing
	d.st.LastError = err.Error()
	n := d.st.Errors
	d.mu.Unlock()
	d.log.Warn("device failing; retrying", "error", err, "retry_in", wait, "errors", n)
	return wait
}

// ok records a successful open or read.
func (d *device) ok(what string) {
	d.bo.reset()
	d.mu.Lock()
	was := d.st.State
	d.st.State = StateOK
	d.mu.Unlock()
	switch was {
	case StateStarting:
		d.log.Info("device ready", "found", what)
	case StateFailing:
		d.log.Info("device recovered", "found", what)
	}
}

// publish publishes s, unless only_on_change holds it back.
func (d *device) publish(ctx context.Context, s sample) {
	var f *onChange
	if d.cfg.OnlyOnChange {
		if f = d.seen[s.topic]; f == nil {
			f = &onChange{}
			d.seen[s.topic] = f
		}
		if !f.changed(s.compared(), d.cfg.Deadband) {
			return
		}
	}
	err := d.m.o.Publisher.Publish(ctx, s.topic, s.payload(d.cfg.Name), d.m.o.QoS, false)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		d.mu.Lock()
		d.st.PublishErrors++
		d.mu.Unlock()
		d.log.Warn("device reading not published", "topic", s.topic, "error", err)
		return
	}
	if f != nil {
		f.published(s.compared())
	}
	d.mu.Lock()
	d.st.Published++
	d.st.LastReading = s.time
	d.mu.Unlock()
}

// sensor is an opened device that is read on a schedule.
type sensor interface {
	// read takes one reading: a sample per topic.
	read(ctx context.Context) ([]sample, error)
	// String names what was found, for the log.
	String() string
	close()
}

// poll opens and reads a sensor on the device's schedule until ctx is done:
// a read is due every `every` from the start (a read that overruns a slot
// skips it); after a failure, the device is closed and opened again after
// the backoff, and once it reads again the schedule goes on at its next
// slot.
func (d *device) poll(ctx context.Context, open func(context.Context) (sensor, error)) {
	var s sensor
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	grid := time.Now()
	due := grid
	for sleepUntil(ctx, due) {
		if s == nil {
			var err error
			if s, err = open(ctx); err != nil {
				s = nil
				if ctx.Err() != nil {
					return
				}
				due = time.Now().Add(d.fail(err))
				continue
			}
		}
		samples, err := s.read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.close()
			s = nil
			due = time.Now().Add(d.fail(err))
			continue
		}
		d.ok(s.String())
		for _, smp := range samples {
			d.publish(ctx, smp)
		}
		grid = grid.Add(d.every * (time.Since(grid)/d.every + 1))
		due = grid
	}
}

// sleepUntil waits until t; it reports false when ctx is done first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	return sleep(ctx, time.Until(t))
}

// sleep waits for d; it reports false when ctx is done first.
func sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is the wait between attempts on a failing device: min, doubling
// up to max. It has no jitter: devices on a local bus are no herd.
type backoff struct{ min, max, cur time.Duration }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// topicJoin joins a device topic and a channel name.
func topicJoin(topic, name string) string { return strings.TrimSuffix(topic, "/") + "/" + name }
