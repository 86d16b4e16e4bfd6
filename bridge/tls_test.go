package bridge

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
)

// TestTransports drains a backlog over each url scheme the bridge speaks,
// with server-verified TLS and mutual TLS, to an upstream serving it.
func TestTransports(t *testing.T) {
	ca := bridgetest.NewCA(t)
	clientCert, clientKey := ca.Issue(t, "gateway")
	for _, tc := range []struct {
		name   string
		scheme string
		up     bridgetest.UpstreamOptions
		tls    string // the bridge's tls: section
	}{
		{"tls", "tls", bridgetest.UpstreamOptions{TLS: ca.ServerTLS(t, false)},
			fmt.Sprintf("{ca_file: %q}", ca.CertFile)},
		{"mutual-tls", "tls", bridgetest.UpstreamOptions{TLS: ca.ServerTLS(t, true)},
			fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q}", ca.CertFile, clientCert, clientKey)},
		{"ws", "ws", bridgetest.UpstreamOptions{WebSocket: true}, ""},
		{"wss", "wss", bridgetest.UpstreamOptions{WebSocket: true, TLS: ca.ServerTLS(t, true)},
			fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q}", ca.CertFile, clientCert, clientKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.up.Filter = "site/#"
			up := bridgetest.StartUpstream(t, tc.up)
			q, qb := openQueue(t)
			const n = 2000
			enqueue(t, q, qb.Mask(), 0, n, 3)
			cfg := fmt.Sprintf(`  - name: cloud
    mqtt: {url: "%s://%s", keepalive: 10s%s}
    forward: [{from: "sensors/#", to: "site/{topic}", qos: 1}]
    reconnect: {min: 20ms, max: 200ms}
`, tc.scheme, up.Addr, tlsKey(tc.tls))
			runBridge(t, Options{Config: bridgeConfig(t, cfg), GatewayID: "gw-1", Queue: qb})
			got := up.WaitFor(t, n, time.Minute)
			if dups := checkOrder(t, got); dups != 0 || len(got) != n {
				t.Fatalf("%d received, %d duplicates; want %d once each", len(got), dups, n)
			}
			waitUntil(t, 10*time.Second, "queue drained", func() bool { return qb.Pending() == 0 })
		})
	}
}

func tlsKey(s string) string {
	if s == "" {
		return ""
	}
	return ", tls: " + s
}

// TestTLSRefusals: an upstream whose certificate the CA does not vouch for,
// and one that wants a client certificate the bridge does not have, are
// refused with a clear error; the bridge stays down and keeps everything.
func TestTLSRefusals(t *testing.T) {
	ca, other := bridgetest.NewCA(t), bridgetest.NewCA(t)
	for _, tc := range []struct {
		name, want string
		up         bridgetest.UpstreamOptions
	}{
		{"unknown-server-cert", "certificate signed by unknown authority", bridgetest.UpstreamOptions{TLS: other.ServerTLS(t, false)}},
		{"no-client-cert", "certificate required", bridgetest.UpstreamOptions{TLS: ca.ServerTLS(t, true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.up.Filter = "site/#"
			up := bridgetest.StartUpstream(t, tc.up)
			q, qb := openQueue(t)
			enqueue(t, q, qb.Mask(), 0, 10, 1)
			var logs bridgetest.Buffer
			b := runBridge(t, Options{Config: bridgeConfig(t, fmt.Sprintf(`  - name: cloud
    mqtt: {url: "tls://%s", tls: {ca_file: %q}}
    forward: [{from: "sensors/#", to: "site/{topic}", qos: 1}]
    reconnect: {min: 20ms, max: 100ms}
`, up.Addr, ca.CertFile)), GatewayID: "gw-1", Queue: qb, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			waitUntil(t, 10*time.Second, "two refused attempts in the log", func() bool {
				return strings.Count(logs.String(), "upstream unavailable") >= 2
			})
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("log does not say %q:\n%s", tc.want, logs.String())
			}
			if s := b.Stats(); s.Up || s.Pending != 10 || len(up.Received()) != 0 {
				t.Fatalf("after refused handshakes: %+v, upstream got %d", s, len(up.Received()))
			}
		})
	}
}
