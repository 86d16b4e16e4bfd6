package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"strings"

	"github.com/outpost-edge/outpost/bridge/route"
	"github.com/outpost-edge/outpost/broker"
	"github.com/outpost-edge/outpost/configs"
	"github.com/outpost-edge/outpost/storage"
)

// loadConfig loads FILE, or the embedded default when path is "".
func loadConfig(path string) (*configs.Config, error) {
	if path == "" {
		return configs.Default(), nil
	}
	return configs.Load(path)
}

// printConfigError prints a config error list one problem per line.
func printConfigError(w io.Writer, err error) {
	if l, ok := err.(configs.ErrorList); ok {
		for _, e := range l {
			fmt.Fprintln(w, e.Error())
		}
		fmt.Fprintf(w, "outpost: %d problem(s) in the config; nothing was started\n", len(l))
		return
	}
	fmt.Fprintln(w, "outpost:", err)
}

func queuePath(cfg *configs.Config) string { return filepath.Join(cfg.DataDir, "queue.db") }

func queueOptions(cfg *configs.Config, log *slog.Logger) storage.Options {
	o := storage.Options{
		Bridges:  cfg.BridgeNames(),
		MaxBytes: int64(cfg.Queue.MaxSize),
		MaxAge:   cfg.Queue.MaxAge,
		Logger:   log.With("component", "queue"),
	}
	if cfg.Queue.WhenFull == "reject_new" {
		o.WhenFull = storage.RejectNew
	}
	if cfg.Queue.Sync == "interval" {
		o.CommitInterval = cfg.Queue.SyncInterval
	}
	return o
}

// routeTable maps each bridge's forward routes to the bridge's bit in the queue.
func routeTable(cfg *configs.Config, q *storage.Queue) (*route.Table, error) {
	var entries []route.Entry
	for _, b := range cfg.Bridges {
		qb, err := q.Bridge(b.Name)
		if err != nil {
			return nil, err
		}
		for _, r := range b.Forward {
			entries = append(entries, route.Entry{Bridge: bits.TrailingZeros64(qb.Mask()), Filter: r.From})
		}
	}
	return route.NewTable(entries)
}

func brokerListeners(cfg *configs.Config) ([]broker.Listener, error) {
	var ls []broker.Listener
	for _, l := range cfg.Listeners {
		bl := broker.Listener{Name: l.Name, Type: l.Type, Address: l.Address}
		if l.TLS != nil {
			tc, err := serverTLS(l.TLS)
			if err != nil {
				return nil, fmt.Errorf("listener %s: %w", l.Name, err)
			}
			bl.TLS = tc
		}
		ls = append(ls, bl)
	}
	return ls, nil
}

func serverTLS(c *configs.ServerTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificates", c.ClientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func brokerAuth(cfg *configs.Config) *broker.Auth {
	a := &broker.Auth{Anonymous: cfg.Auth.Anonymous}
	for _, u := range cfg.Auth.Users {
		a.Users = append(a.Users, broker.User{Username: u.Username, PasswordHash: []byte(u.PasswordHash),
			Publish: u.Publish, Subscribe: u.Subscribe})
	}
	return a
}

// describe prints what a config would run, for outpost check.
func describe(w io.Writer, cfg *configs.Config) {
	fmt.Fprintf(w, "gateway_id: %s\ndata_dir:   %s\n", cfg.GatewayID, cfg.DataDir)
	fmt.Fprintf(w, "log:        %s, %s\n", cfg.Log.Level, cfg.Log.Format)
	for _, l := range cfg.Listeners {
		fmt.Fprintf(w, "listener:   %s %s on %s\n", l.Name, l.Type, l.Address)
	}
	fmt.Fprintf(w, "auth:       anonymous=%v, %d user(s)\n", cfg.Auth.Anonymous, len(cfg.Auth.Users))
	q := cfg.Queue
	sync := "fsync before every ack"
	if q.Sync == "interval" {
		sync = fmt.Sprintf("commit every %s, ack before it (up to %s of acknowledged messages can be lost)", q.SyncInterval, q.SyncInterval)
	}
	fmt.Fprintf(w, "queue:      max %s, max age %s, when full %s, %s\n", humanBytes(uint64(q.MaxSize)), q.MaxAge, q.WhenFull, sync)
	for _, b := range cfg.Bridges {
		kind, target := "mqtt", ""
		if b.MQTT != nil {
			target = b.MQTT.URL
		} else if b.Kafka != nil {
			kind, target = "kafka", strings.Join(b.Kafka.Brokers, ",")
		}
		fmt.Fprintf(w, "bridge:     %s (%s %s), batch %d msgs / %s\n", b.Name, kind, target, b.Batch.MaxMessages, b.Batch.MaxDelay)
		for _, r := range b.Forward {
			to := r.To
			if b.Kafka != nil {
				to = r.Topic
			}
			fmt.Fprintf(w, "  forward   %s -> %s (qos %d)\n", r.From, to, r.QoS)
		}
		for _, r := range b.Receive {
			fmt.Fprintf(w, "  receive   %s -> %s\n", r.From, r.To)
		}
	}
	for _, d := range cfg.Devices {
		fmt.Fprintf(w, "device:     %s (%s) -> %s\n", d.Name, d.Driver, d.Topic)
	}
	if cfg.HTTP.Address != "" {
		fmt.Fprintf(w, "http:       %s\n", cfg.HTTP.Address)
	}
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
