//go:build !outpost_omit_devices

package main

import (
	"context"
	"log/slog"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/cmd/outpost/internal/web"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/devices"
	"github.com/outpost-edge/outpost/storage"
)

// hasDevices reports whether this build runs wired devices; building with
// -tags outpost_omit_devices leaves periph.io out (about 0.9 MB on armv6).
const hasDevices = true

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

// deviceRows adapts the devices' state to what the web server shows: the
// status page and outpost_device_errors_total{device}. nil means none.
func deviceRows(m *devices.Manager) func() []web.Device {
	if m == nil || len(m.Stats()) == 0 {
		return nil
	}
	return func() []web.Device {
		st := m.Stats()
		out := make([]web.Device, len(st))
		for i, s := range st {
			out[i] = web.Device{Name: s.Name, Driver: s.Driver, OK: s.State == devices.StateOK,
				Errors: s.Errors, LastReading: s.LastReading, LastError: s.LastError}
		}
		return out
	}
}
