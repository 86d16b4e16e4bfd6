package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/bridge"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// errReported means the error was printed already.
var errReported = errors.New("reported")

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

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	current := cfg
	err = run(ctx, cfg, log, func() *configs.Config {
		select {
		case <-hup:
		case <-ctx.Done():
			return nil
		}
		current = reload(*path, current, log, level)
		return current
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
	// Bridges stop before the queue closes (deferred above) and after the
	// broker: they only read and acknowledge.
	bctx, stopBridges := context.WithCancel(context.Background())
	var bridges sync.WaitGroup
	defer bridges.Wait()
	defer stopBridges()
	var webBridges []statser // what /metrics and the status page show
	for _, bc := range cfg.Bridges {
		qb, err := q.Bridge(bc.Name)
		if err != nil {
			return err
		}
		o := bridge.Options{Config: bc, GatewayID: cfg.GatewayID, Queue: qb, Local: b, Logger: log}
		var run func(context.Context) error
		if bc.Kafka != nil {
			br, err := bridge.NewKafka(o)
			if err != nil {
				return err
			}
			run = br.Run
			webBridges = append(webBridges, br)
		} else {
			br, err := bridge.NewMQTT(o)
			if err != nil {
				return err
			}
			run = br.Run
			webBridges = append(webBridges, br)
		}
		bridges.Go(func() { run(bctx) })
	}
	// Wired devices publish through the broker; they stop before the queue
	// closes (see devices.go).
	dm, stopDevices, err := startDevices(ctx, cfg, b, q, bridgeStats(webBridges), log)
	if err != nil {
		return err
	}
	defer stopDevices()
	stopWeb, err := startWeb(ctx, cfg, log, q, b, bridgeStats(webBridges), deviceRows(dm))
	if err != nil {
		return err
	}
	defer stopWeb()

	go func() {
		for reloaded() != nil {
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

// reload loads the config again after SIGHUP. A bad config keeps the running
// one and logs every problem. The log level applies at once; the rest needs
// a restart in this version, and the log says which sections changed.
func reload(path string, old *configs.Config, log *slog.Logger, level *slog.LevelVar) *configs.Config {
	if path == "" {
		log.Info("SIGHUP: running on the embedded default config; nothing to reload")
		return old
	}
	cfg, err := configs.Load(path)
	if err != nil {
		var l configs.ErrorList
		if errors.As(err, &l) {
			for _, e := range l {
				log.Error("reload refused, keeping the running config", "problem", e.Error())
			}
		} else {
			log.Error("reload refused, keeping the running config", "error", err)
		}
		return old
	}
	level.Set(parseLevel(cfg.Log.Level))
	var restart []string
	for name, changed := range map[string]bool{
		"listeners": fmt.Sprint(cfg.Listeners) != fmt.Sprint(old.Listeners),
		"auth":      fmt.Sprint(cfg.Auth) != fmt.Sprint(old.Auth),
		"queue":     cfg.Queue != old.Queue,
		"bridges":   fmt.Sprint(cfg.Bridges) != fmt.Sprint(old.Bridges),
		"devices":   fmt.Sprint(cfg.Devices) != fmt.Sprint(old.Devices),
		"data_dir":  cfg.DataDir != old.DataDir,
	} {
		if changed {
			restart = append(restart, name)
		}
	}
	if len(restart) > 0 {
		log.Warn("config reloaded: log level applied; these sections changed and take effect at the next restart", "sections", strings.Join(restart, ","))
	} else {
		log.Info("config reloaded", "log_level", cfg.Log.Level)
	}
	return cfg
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
