package main

import (
	"context"
	"log/slog"
	"reflect"
	"sync"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/cmd/outpost/internal/web"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/devices"
	"github.com/outpost-edge/outpost/storage"
)

// deviceHost is where the devices find their buses and pins; nil is
// periph.io's host (devices.PeriphHost). Tests replace it.
var deviceHost *devices.Host

// startDevices runs the devices section of cfg until ctx is done or stop
// is called: readings are published through the broker (so they take the
// forward routes and the durable queue), gpio_out shows the bridges' links
// and the queue's backlog. Without devices it starts nothing, and periph's
// host drivers are never initialised. stop waits for the devices to stop;
// call it before the queue closes.
func startDevices(ctx context.Context, cfg *configs.Config, b *broker.Broker, q *storage.Queue,
	bridges func() []bridge.Stats, log *slog.Logger) (m *devices.Manager, stop func(), err error) {
	m, err = devices.New(devices.Options{
		Devices:   cfg.Devices,
		Publisher: b,
		BridgeUp: func(name string) bool {
			for _, s := range bridges() {
				if s.Name == name {
					return s.Up
				}
			}
			return false
		},
		Queue: func() devices.QueueState {
			st, err := q.Stats()
			if err != nil {
				return devices.QueueState{}
			}
			// Drops by the queue (full, too old) and by the bridges
			// (refused upstream, no route).
			s := devices.QueueState{Messages: st.Messages}
			for _, n := range st.Dropped {
				s.Dropped += n
			}
			for _, bs := range bridges() {
				for _, n := range bs.Dropped {
					s.Dropped += n
				}
			}
			return s
		},
		Host:   deviceHost,
		Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	return m, func() { cancel(); <-done }, nil
}

// deviceSet runs the devices section and, on reload, replaces it: the old
// devices stop (their pins and buses are released) before the new ones
// start.
type deviceSet struct {
	b       *broker.Broker
	q       *storage.Queue
	bridges func() []bridge.Stats
	log     *slog.Logger

	mu     sync.Mutex
	cfg    []configs.Device
	m      *devices.Manager
	stop   func()
	closed bool
}

func newDeviceSet(ctx context.Context, cfg *configs.Config, b *broker.Broker, q *storage.Queue, bridges func() []bridge.Stats, log *slog.Logger) (*deviceSet, error) {
	s := &deviceSet{b: b, q: q, bridges: bridges, log: log}
	return s, s.apply(ctx, cfg)
}

// apply runs cfg's devices, unless they are what runs already. When the new
// section cannot start, the old one is started again and the error returned.
func (s *deviceSet) apply(ctx context.Context, cfg *configs.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.stop != nil {
		if reflect.DeepEqual(s.cfg, cfg.Devices) {
			return nil
		}
		s.stop()
	}
	m, stop, err := startDevices(ctx, cfg, s.b, s.q, s.bridges, s.log)
	if err != nil {
		if s.stop != nil {
			old := *cfg
			old.Devices = s.cfg
			m, stop, _ = startDevices(ctx, &old, s.b, s.q, s.bridges, s.log)
			s.m, s.stop = m, stop
		}
		return err
	}
	s.cfg, s.m, s.stop = cfg.Devices, m, stop
	return nil
}

// close stops the devices; call it before the queue closes.
func (s *deviceSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// rows adapts the devices' state to what the web server shows: the status
// page and outpost_device_errors_total{device}.
func (s *deviceSet) rows() []web.Device {
	s.mu.Lock()
	m := s.m
	s.mu.Unlock()
	if m == nil {
		return nil
	}
	st := m.Stats()
	if len(st) == 0 {
		return nil
	}
	out := make([]web.Device, len(st))
	for i, d := range st {
		out[i] = web.Device{Name: d.Name, Driver: d.Driver, OK: d.State == devices.StateOK,
			Errors: d.Errors, LastReading: d.LastReading, LastError: d.LastError}
	}
	return out
}
