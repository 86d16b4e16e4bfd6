package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/cmd/outpost/internal/web"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// processStart is when the process started, near enough: package
// variables are set before main runs.
var processStart = time.Now()

// startWeb serves /metrics, /healthz, /readyz and the status page on
// http.address until the returned stop is called; with no address it does
// nothing. The address is bound before startWeb returns, so that a port in
// use stops outpost at startup. ctx is the run's context: once it is done
// (SIGTERM), /readyz answers 503 while the broker shuts down.
//
// bridges returns the running bridges' counters; devices returns the wired
// devices' state. Either may be nil when there are none.
func startWeb(ctx context.Context, cfg *configs.Config, log *slog.Logger, q *storage.Queue, b *broker.Broker,
	bridges func() []bridge.Stats, devices func() []web.Device) (stop func(), err error) {
	if cfg.HTTP.Address == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Address)
	if err != nil {
		return nil, fmt.Errorf("http.address: %w", err)
	}
	s := web.New(web.Options{
		GatewayID: cfg.GatewayID,
		Version:   versionString(),
		Queue:     q,
		Broker:    b,
		Bridges:   bridges,
		Devices:   devices,
		Ready:     readiness(ctx, q, b),
		Start:     processStart,
		Logger:    log.With("component", "http"),
	})
	// The server outlives ctx: it stops after the broker, so that /readyz
	// says "shutting down" while the broker drains.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Serve(sctx, ln); err != nil {
			log.Error("http server stopped", "error", err)
		}
	})
	log.Info("http serving /metrics /healthz /readyz and the status page", "address", ln.Addr().String())
	return func() { cancel(); wg.Wait() }, nil
}

// readiness is /readyz's check: the broker's listeners are bound, the queue
// is open and outpost is not shutting down.
func readiness(ctx context.Context, q *storage.Queue, b *broker.Broker) func() error {
	return func() error {
		if ctx.Err() != nil {
			return errors.New("shutting down")
		}
		if len(b.Addrs()) == 0 {
			return errors.New("no MQTT listener is bound")
		}
		if _, err := q.Stats(); err != nil {
			return fmt.Errorf("queue is not open: %w", err)
		}
		return nil
	}
}
