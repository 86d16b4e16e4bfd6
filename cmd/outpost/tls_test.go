package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/bridge/bridgetest"
)

// TestRunTLSListener runs the real binary with a tls listener from the
// config (cert_file, key_file, client_ca_file) and connects real clients:
// one limited to TLS 1.1, one without a certificate and one with a
// certificate from another CA are refused; one with a certificate from the
// client CA gets its CONNACK and its publish acknowledged.
func TestRunTLSListener(t *testing.T) {
	serverCA, clientCA, otherCA := bridgetest.NewCA(t), bridgetest.NewCA(t), bridgetest.NewCA(t)
	certFile, keyFile := serverCA.Issue(t, "gateway")
	dir := t.TempDir()
	path := filepath.Join(dir, "outpost.yaml")
	cfg := fmt.Sprintf(`gateway_id: tls-gw
data_dir: %s
listeners:
  - name: sensors-tls
    type: tls
    address: "127.0.0.1:0"
    tls: {cert_file: %q, key_file: %q, client_ca_file: %q}
auth: {anonymous: true}
`, filepath.Join(dir, "data"), certFile, keyFile, clientCA.CertFile)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Go servers refuse TLS 1.0 and 1.1 by default; this makes the binary
	// accept them unless the listener's own MinVersion refuses them, so
	// that the TLS 1.1 client below tests the config's listener.
	t.Setenv("GODEBUG", "tls10server=1")
	p := startOutpost(t, path)

	clientCert := func(ca *bridgetest.CA, name string) []tls.Certificate {
		c, err := tls.LoadX509KeyPair(ca.Issue(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	good := clientCert(clientCA, "sensor-1")
	dial := func(id string, tc *tls.Config) (paho.Client, error) {
		tc.RootCAs = serverCA.Pool()
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tls://" + p.addr).SetClientID(id).
			SetTLSConfig(tc).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return nil, fmt.Errorf("no answer to CONNECT")
		}
		return c, tok.Error()
	}
	for _, tc := range []struct {
		name        string
		tls         *tls.Config
		errContains string
	}{
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, Certificates: good}, "protocol version not supported"},
		{"no certificate", &tls.Config{}, "certificate required"},
		{"certificate from another CA", &tls.Config{Certificates: clientCert(otherCA, "stranger")}, "unknown certificate authority"},
	} {
		if c, err := dial("refused", tc.tls); err == nil {
			c.Disconnect(0)
			t.Errorf("%s: connected, want the handshake refused", tc.name)
		} else if !strings.Contains(err.Error(), tc.errContains) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.errContains)
		}
	}

	c, err := dial("sensor-1", &tls.Config{Certificates: good})
	if err != nil {
		t.Fatalf("a client with a certificate from the client CA: %v\n%s", err, p.logs)
	}
	// Connect returned after a CONNACK that accepted the client; the
	// connection serves.
	if tok := c.Publish("sensors/tls", 1, false, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over TLS: %v", tok.Error())
	}
	c.Disconnect(100)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.logs)
	}
}
