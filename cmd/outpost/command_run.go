package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// errReported means the error was printed already.
var errReported = errors.New("reported")

// gcPercent is outpost's GOGC unless the environment sets one. A gateway's
// live heap is a few MiB, and at Go's default of 100 the heap grows to
// twice that between collections; 50 keeps the resident set of a draining
// backlog near what the gateway idles at, for somewhat more collection
// work.
const gcPercent = 50

func runCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("c", "", "config file (default: the embedded default config)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return errUsage
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		printConfigError(stderr, err)
		return errReported
	}
	level := new(slog.LevelVar)
	log := newLogger(stderr, cfg.Log, level)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	err = run(ctx, cfg, log, func() *configs.Config {
		for {
			select {
			case <-hup:
			case <-ctx.Done():
				return nil
			}
			if c := reload(*path, log, level); c != nil {
				return c
			}
		}
	})
	if err != nil {
		log.Error("outpost stopped", "error", err)
		return errReported
	}
	return nil
}

// run runs outpost until ctx is done. reloaded blocks until the next
// successful reload and returns its config (nil when ctx is done).
func run(ctx context.Context, cfg *configs.Config, log *slog.Logger, reloaded func() *configs.Config) error {
	q, err := storage.Open(queuePath(cfg), queueOptions(cfg, log))
	if err != nil {
		return err
	}
	defer func() {
		if err := q.Close(); err != nil {
			log.Error("closing queue", "error", err)
		}
	}()
	table, err := routeTable(cfg, q)
	if err != nil {
		return err
	}
	ls, err := brokerListeners(cfg)
	if err != nil {
		return err
	}
	b, err := broker.New(broker.Options{
		Listeners:     ls,
		Queue:         q,
		Route:         table.Match,
		AckBeforeSync: cfg.Queue.Sync == "interval",
		Auth:          brokerAuth(cfg),
		Logger:        log,
	})
	if err != nil {
		return err
	}
	st, _ := q.Stats()
	var addrs []string
	for _, a := range b.Addrs() {
		addrs = append(addrs, a.String())
	}
	log.Info("outpost running", "version", versionString(), "gateway_id", cfg.GatewayID, "listeners", strings.Join(addrs, ","),
		"data_dir", cfg.DataDir, "sync", cfg.Queue.Sync, "queued", st.Messages, "last_seq", st.LastSeq)
	// Bridges and devices stop after the broker and before the queue closes
	// (deferred above).
	bs := newBridgeSet(q, b, cfg.GatewayID, log)
	defer bs.stop()
	if err := bs.start(cfg.Bridges); err != nil {
		return err
	}
	// Wired devices publish through the broker (see devices.go).
	ds, err := newDeviceSet(ctx, cfg, b, q, bs.Stats, log)
	if err != nil {
		return err
	}
	defer ds.close()
	stopWeb, err := startWeb(ctx, cfg, log, q, b, bs.Stats, ds.rows)
	if err != nil {
		return err
	}
	defer stopWeb()

	go func() {
		running := cfg
		for next := reloaded(); next != nil; next = reloaded() {
			running = apply(ctx, running, next, b, q, bs, ds, log)
		}
	}()
	// systemd: READY=1 (listeners bound, queue open), watchdog pings while
	// the queue answers, STOPPING=1 at shutdown; see sdnotify.go.
	defer systemdNotify(ctx, log, queueProbe(q, addrs))()
	// Broker.Run stops the listeners, then waits for pending acks; the
	// deferred Close commits what was enqueued and closes the file.
	if err := b.Run(ctx); err != nil {
		return err
	}
	log.Info("outpost stopped cleanly")
	return nil
}

// reload loads the config again after SIGHUP and applies its log level.
// A bad config is refused, with every problem logged, and nil returned:
// the running config stays.
func reload(path string, log *slog.Logger, level *slog.LevelVar) *configs.Config {
	if path == "" {
		log.Info("SIGHUP: running on the embedded default config; nothing to reload")
		return nil
	}
	cfg, err := configs.Load(path)
	if err != nil {
		var l configs.ErrorList
		if errors.As(err, &l) {
			// Every problem, past the log's limit of 5 alike lines per 10s.
			ctx := logEveryLine(context.Background())
			for _, e := range l {
				log.ErrorContext(ctx, "reload refused, keeping the running config", "problem", e.Error())
			}
		} else {
			log.Error("reload refused, keeping the running config", "error", err)
		}
		return nil
	}
	level.Set(parseLevel(cfg.Log.Level))
	return cfg
}

// apply makes a reloaded config take effect, without losing the queue:
// users and ACLs, the bridges' sections (routes, credentials, upstreams:
// each changed bridge reconnects) and the devices. What cannot change
// while running is named in the log and keeps its running value. It
// returns the config now running.
func apply(ctx context.Context, old, cfg *configs.Config, b *broker.Broker, q *storage.Queue, bs *bridgeSet, ds *deviceSet, log *slog.Logger) *configs.Config {
	running := *cfg
	var applied, restart []string
	if !reflect.DeepEqual(old.Auth, cfg.Auth) {
		b.SetAuth(brokerAuth(cfg))
		applied = append(applied, "auth")
	}
	// The bridges first, then the broker's routes: a message routed to a
	// bridge by a new route must find that route in the bridge.
	restarted, added, err := bs.apply(cfg.Bridges)
	if err != nil {
		log.Error("reload: a bridge keeps its running section", "error", err)
	}
	for _, name := range restarted {
		applied = append(applied, "bridges."+name)
	}
	restart = append(restart, added...)
	running.Bridges = bs.configs()
	if table, err := routeTable(&running, q); err != nil {
		log.Error("reload: keeping the running routes", "error", err)
	} else {
		b.SetRoute(table.Match)
	}
	if !reflect.DeepEqual(old.Devices, cfg.Devices) {
		if err := ds.apply(ctx, cfg); err != nil {
			log.Error("reload: keeping the running devices", "error", err)
			running.Devices = old.Devices
		} else {
			applied = append(applied, "devices")
		}
	}
	if old.Log.Level != cfg.Log.Level {
		applied = append(applied, "log.level")
	}
	// The rest needs a restart; it keeps running as it is.
	for _, f := range []struct {
		name    string
		changed bool
		keep    func()
	}{
		{"gateway_id", old.GatewayID != cfg.GatewayID, func() { running.GatewayID = old.GatewayID }},
		{"data_dir", old.DataDir != cfg.DataDir, func() { running.DataDir = old.DataDir }},
		{"listeners", !reflect.DeepEqual(old.Listeners, cfg.Listeners), func() { running.Listeners = old.Listeners }},
		{"queue", old.Queue != cfg.Queue, func() { running.Queue = old.Queue }},
		{"http", old.HTTP != cfg.HTTP, func() { running.HTTP = old.HTTP }},
		{"log.format", old.Log.Format != cfg.Log.Format, func() { running.Log.Format = old.Log.Format }},
	} {
		if f.changed {
			restart = append(restart, f.name)
			f.keep()
		}
	}
	if len(restart) > 0 {
		log.Warn("config reloaded; these changes take effect at the next restart", "applied", strings.Join(applied, ","), "restart_needed", strings.Join(restart, ","))
	} else {
		log.Info("config reloaded", "applied", strings.Join(applied, ","))
	}
	return &running
}

func newLogger(w io.Writer, c configs.Log, level *slog.LevelVar) *slog.Logger {
	level.Set(parseLevel(c.Level))
	o := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, o)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, o)
	}
	// Drops, refused logins and the like are warnings: at most 5 of each
	// kind per 10s, the rest counted on the next one let through.
	return slog.New(newRateLimited(h, 5, 10*time.Second))
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
