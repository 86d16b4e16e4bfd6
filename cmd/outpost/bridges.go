package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// runner is what bridge.MQTT and bridge.Kafka have in common.
type runner interface {
	Name() string
	Run(ctx context.Context) error
	Stats() bridge.Stats
}

// bridgeSet runs the bridges of a config and, on reload, restarts the ones
// whose section changed. The set of bridge names is fixed while running:
// each has a slot in the queue file, chosen when the queue is opened.
type bridgeSet struct {
	q         *storage.Queue
	local     bridge.Publisher
	gatewayID string
	log       *slog.Logger

	mu      sync.Mutex
	running map[string]*runningBridge
	order   []string
	stopped bool
	wg      sync.WaitGroup
}

type runningBridge struct {
	cfg    configs.Bridge
	r      runner
	cancel context.CancelFunc
	done   chan struct{}
}

func newBridgeSet(q *storage.Queue, local bridge.Publisher, gatewayID string, log *slog.Logger) *bridgeSet {
	return &bridgeSet{q: q, local: local, gatewayID: gatewayID, log: log, running: map[string]*runningBridge{}}
}

func newBridge(o bridge.Options) (runner, error) {
	if o.Config.Kafka != nil {
		return bridge.NewKafka(o)
	}
	return bridge.NewMQTT(o)
}

// start starts the bridges of cfg.
func (s *bridgeSet) start(cfg []configs.Bridge) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, bc := range cfg {
		if err := s.startLocked(bc); err != nil {
			return err
		}
		s.order = append(s.order, bc.Name)
	}
	return nil
}

func (s *bridgeSet) startLocked(bc configs.Bridge) error {
	qb, err := s.q.Bridge(bc.Name)
	if err != nil {
		return err
	}
	r, err := newBridge(bridge.Options{Config: bc, GatewayID: s.gatewayID, Queue: qb, Local: s.local, Logger: s.log})
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bc.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rb := &runningBridge{cfg: bc, r: r, cancel: cancel, done: make(chan struct{})}
	s.running[bc.Name] = rb
	s.wg.Go(func() {
		defer close(rb.done)
		r.Run(ctx)
	})
	return nil
}

// apply restarts each running bridge whose section differs in cfg, and
// returns the names of bridges added or removed, which need a restart.
// A bridge that fails to start with its new section keeps running with
// its old one.
func (s *bridgeSet) apply(cfg []configs.Bridge) (restarted, needRestart []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, nil, nil
	}
	var errs []error
	seen := map[string]bool{}
	for _, bc := range cfg {
		seen[bc.Name] = true
		rb, ok := s.running[bc.Name]
		if !ok {
			needRestart = append(needRestart, "bridges."+bc.Name+" (added)")
			continue
		}
		if reflect.DeepEqual(rb.cfg, bc) {
			continue
		}
		qb, _ := s.q.Bridge(bc.Name)
		if _, err := newBridge(bridge.Options{Config: bc, GatewayID: s.gatewayID, Queue: qb, Local: s.local, Logger: s.log}); err != nil {
			errs = append(errs, fmt.Errorf("bridge %s: %w", bc.Name, err))
			continue
		}
		// Stop the old session first: two sessions must never forward
		// from the same position at once.
		rb.cancel()
		<-rb.done
		if err := s.startLocked(bc); err != nil {
			errs = append(errs, err)
			s.startLocked(rb.cfg) // the old one again: a bridge is never left stopped
			continue
		}
		restarted = append(restarted, bc.Name)
	}
	for _, name := range s.order {
		if !seen[name] {
			needRestart = append(needRestart, "bridges."+name+" (removed)")
		}
	}
	return restarted, needRestart, errors.Join(errs...)
}

// Stats returns each bridge's counters, in config order.
func (s *bridgeSet) Stats() []bridge.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bridge.Stats, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, s.running[name].r.Stats())
	}
	return out
}

// stop stops every bridge and waits for them.
func (s *bridgeSet) stop() {
	s.mu.Lock()
	s.stopped = true
	for _, rb := range s.running {
		rb.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// configs returns the sections the bridges run with, in config order.
func (s *bridgeSet) configs() []configs.Bridge {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]configs.Bridge, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, s.running[name].cfg)
	}
	return out
}
