package configs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// noEnv is an empty environment.
func noEnv(string) (string, bool) { return "", false }

// env returns a lookup function over m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExamplesLoad(t *testing.T) {
	ex := Examples()
	for _, want := range []string{"minimal.yaml", "pump-station.yaml", "kafka-lake.yaml"} {
		if ex[want] == nil {
			t.Errorf("Examples() has no %s", want)
		}
	}
	ex["../default.yaml"] = DefaultYAML
	for name, data := range ex {
		t.Run(name, func(t *testing.T) {
			c, err := Parse(filepath.Join("examples", name), data, noEnv)
			if err != nil {
				t.Fatalf("does not load:\n%v", err)
			}
			if len(c.Listeners) == 0 {
				t.Error("no listeners")
			}
		})
	}
}

func TestExampleValues(t *testing.T) {
	c, err := Parse("examples/pump-station.yaml", Examples()["pump-station.yaml"], noEnv)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Bridges[0]
	for _, tt := range []struct{ name, got, want string }{
		{"gateway_id", c.GatewayID, "ps-0001"},
		{"client_id", b.MQTT.ClientID, "outpost-ps-0001"},
		{"status_topic", b.MQTT.StatusTopic, "site/ps-0001/status"},
		{"receive from", b.Receive[0].From, "site/ps-0001/commands/#"},
		{"receive to", b.Receive[0].ToTemplate.Expand("site/ps-0001/commands/pump-1/stop", c.GatewayID), "commands/pump-1/stop"},
		{"forward to", b.Forward[0].ToTemplate.Expand("sensors/flow/rate", c.GatewayID), "site/ps-0001/sensors/flow/rate"},
		{"listener cert", c.Listeners[1].TLS.CertFile, filepath.Join("examples", "tls", "server.crt")},
		{"door edge", c.Devices[1].Edge, "both"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if got := c.Devices[0].I2C.Address; got != 0x76 {
		t.Errorf("bme280 address = %#x, want 0x76", got)
	}
	if got := c.Devices[0].Every; got != time.Minute {
		t.Errorf("bme280 every = %v, want 1m", got)
	}
	if got := c.BridgeNames(); !slices.Equal(got, []string{"cloud"}) {
		t.Errorf("BridgeNames() = %q", got)
	}

	c, err = Parse("examples/kafka-lake.yaml", Examples()["kafka-lake.yaml"], env(map[string]string{"KAFKA_BROKERS_1": "10.0.0.1:9093"}))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Bridges[0].Kafka
	if !slices.Equal(k.Brokers, []string{"10.0.0.1:9093", "kafka-2:9093"}) || k.SASL.Username != "lake-gw-01" {
		t.Errorf("kafka = %+v, sasl = %+v", k, k.SASL)
	}
	if got := c.Bridges[0].Forward[0].KeyTemplate.Expand("sensors/pump-3/telemetry", c.GatewayID); got != "lake-gw-01/pump-3" {
		t.Errorf("kafka key = %q", got)
	}
	if got := c.DataDir; got != filepath.Join("examples", "data") {
		t.Errorf("data_dir = %q", got)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	host, _ := os.Hostname()
	if c.GatewayID != host || c.DataDir != "./outpost-data" || !c.Auth.Anonymous ||
		len(c.Bridges) != 0 || len(c.Devices) != 0 || c.HTTP.Address != "" {
		t.Errorf("Default() = %+v", c)
	}
	if len(c.Listeners) != 1 || c.Listeners[0] != (Listener{Name: "local", Type: "tcp", Address: "127.0.0.1:1883"}) {
		t.Errorf("Default().Listeners = %+v", c.Listeners)
	}
	if Default() == c {
		t.Error("Default() returns a shared value")
	}
}

// TestDefaults checks every default the file can leave out.
func TestDefaults(t *testing.T) {
	defer swap(&hostname, func() (string, error) { return "host-1", nil })()
	c, err := Parse("/etc/outpost/outpost.yaml", []byte(`
listeners: [{name: l, address: ":1883"}]
auth: {anonymous: true}
bridges:
  - name: m
    mqtt: {url: "tcp://up:1883"}
    forward: [{from: "#"}]
    receive: [{from: "cmd/#"}]
  - name: k
    kafka: {brokers: ["k:9092"]}
    forward: [{from: "#", topic: t}]
devices:
  - {name: e, driver: bme280, i2c: {address: 0x77}, topic: t}
  - {name: d, driver: gpio_in, pin: GPIO4, topic: t}
  - {name: p, driver: gpio_in, pin: GPIO5, topic: t, edge: none}
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"gateway_id", c.GatewayID, "host-1"},
		{"data_dir", c.DataDir, "/var/lib/outpost"},
		{"log", c.Log, Log{Level: "info", Format: "text"}},
		{"listener type", c.Listeners[0].Type, "tcp"},
		{"queue", c.Queue, Queue{MaxSize: GiB, MaxAge: 168 * time.Hour, WhenFull: "drop_oldest", Sync: "always", SyncInterval: 100 * time.Millisecond}},
		{"batch", c.Bridges[0].Batch, Batch{MaxMessages: 500, MaxBytes: MiB, MaxDelay: 50 * time.Millisecond}},
		{"reconnect", c.Bridges[1].Reconnect, Backoff{Min: 500 * time.Millisecond, Max: time.Minute}},
		{"max_rate", c.Bridges[0].MaxRate, 0.0},
		{"mqtt", *c.Bridges[0].MQTT, MQTTBridge{URL: "tcp://up:1883", ClientID: "outpost-host-1", Keepalive: 30 * time.Second, Envelope: "none", ConnectTimeout: 10 * time.Second}},
		{"kafka client_id", c.Bridges[1].Kafka.ClientID, "outpost-host-1"},
		{"kafka compression", c.Bridges[1].Kafka.Compression, "none"},
		{"forward to", c.Bridges[0].Forward[0].To, "{topic}"},
		{"forward qos", c.Bridges[0].Forward[0].QoS, 1},
		{"receive to", c.Bridges[0].Receive[0].ToTemplate.String(), "{topic}"},
		{"kafka key", c.Bridges[1].Forward[0].KeyTemplate.String(), ""},
		{"bme280 every", c.Devices[0].Every, 30 * time.Second},
		{"gpio_in edge, pull", [2]string{c.Devices[1].Edge, c.Devices[1].Pull}, [2]string{"both", "none"}},
		{"gpio_in every", c.Devices[1].Every, time.Duration(0)},
		{"polled gpio_in every", c.Devices[2].Every, 30 * time.Second},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func swap[T any](p *T, v T) (restore func()) {
	old := *p
	*p = v
	return func() { *p = old }
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "outpost.yaml")
	err := os.WriteFile(path, []byte(`
gateway_id: gw
data_dir: state
listeners:
  - {name: s, type: tls, address: ":8883", tls: {cert_file: s.crt, key_file: /abs/s.key}}
auth: {anonymous: true}
bridges:
  - name: k
    kafka:
      brokers: ["k:9093"]
      tls: {ca_file: ca/ca.crt}
      sasl: {mechanism: PLAIN, username: u, password_file: k.pass}
    forward: [{from: "#", topic: t}]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range []struct{ name, got, want string }{
		{"source", c.Source, path},
		{"data_dir", c.DataDir, filepath.Join(dir, "state")},
		{"cert_file", c.Listeners[0].TLS.CertFile, filepath.Join(dir, "s.crt")},
		{"key_file", c.Listeners[0].TLS.KeyFile, "/abs/s.key"},
		{"ca_file", c.Bridges[0].Kafka.TLS.CAFile, filepath.Join(dir, "ca", "ca.crt")},
		{"password_file", c.Bridges[0].Kafka.SASL.PasswordFile, filepath.Join(dir, "k.pass")},
	} {
		if ck.got != ck.want {
			t.Errorf("%s = %q, want %q", ck.name, ck.got, ck.want)
		}
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listeners: []\nauth: {anonymous: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || !strings.HasPrefix(err.Error(), bad+":1: listeners: ") {
		t.Errorf("Load(bad) = %v, want one error at %s:1", err, bad)
	}
}

func TestParseNameAndPaths(t *testing.T) {
	doc := []byte("data_dir: d\nlisteners: [{name: l, address: \":1\"}]\nauth: {anonymous: true}\n")
	for _, tt := range []struct{ name, file, dataDir string }{
		{"", "<config>", "d"},
		{"<stdin>", "<stdin>", "d"},
		{"conf/outpost.yaml", "conf/outpost.yaml", filepath.Join("conf", "d")},
	} {
		c, err := Parse(tt.name, doc, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if c.DataDir != tt.dataDir {
			t.Errorf("Parse(%q): data_dir = %q, want %q", tt.name, c.DataDir, tt.dataDir)
		}
		_, err = Parse(tt.name, []byte("x: 1\n"), noEnv)
		if err == nil || !strings.HasPrefix(err.Error(), tt.file+":1: ") {
			t.Errorf("Parse(%q) error = %v, want it to start with %q", tt.name, err, tt.file+":1: ")
		}
	}
}

func TestQueueLimit32Bit(t *testing.T) {
	doc := "listeners: [{name: l, address: \":1\"}]\nauth: {anonymous: true}\nqueue: {max_size: 2GiB}\n"
	if _, err := Parse("q.yaml", []byte(doc), noEnv); err != nil {
		t.Fatalf("2GiB on 64-bit: %v", err)
	}
	for _, arch := range []string{"arm", "386"} {
		restore := swap(&goarch, arch)
		_, err := Parse("q.yaml", []byte(doc), noEnv)
		restore()
		if err == nil || !strings.Contains(err.Error(), "q.yaml:3: queue.max_size: 2GiB is over the 1GiB limit on "+arch+": bbolt") {
			t.Errorf("2GiB on %s: %v", arch, err)
		}
	}
}

func TestAliasesAndMerge(t *testing.T) {
	_, err := Parse("m.yaml", []byte(`
listeners: [{name: l, address: ":1"}]
auth: {anonymous: true}
x-batch: &batch {max_messages: 10, max_delay: 1s}
bridges:
  - &cloud
    name: a
    mqtt: {url: "tcp://a:1"}
    forward: [{from: "#"}]
    batch: *batch
  - <<: *cloud
    name: b
    batch: {<<: *batch, max_messages: 20}
`), noEnv)
	// x-batch is an unknown key: anchors must live under a known key.
	if err == nil || !strings.Contains(err.Error(), `m.yaml:4: unknown key "x-batch"`) {
		t.Fatalf("got %v, want the unknown key x-batch", err)
	}
	c, err := Parse("m.yaml", []byte(`
listeners: [{name: l, address: ":1"}]
auth: {anonymous: true}
bridges:
  - &cloud
    name: a
    mqtt: {url: "tcp://a:1"}
    forward: [{from: "#"}]
    batch: &batch {max_messages: 10, max_delay: 1s}
  - <<: *cloud
    name: b
    batch: {<<: *batch, max_messages: 20}
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Bridges[0], c.Bridges[1]
	if b.Name != "b" || b.MQTT.URL != "tcp://a:1" || len(b.Forward) != 1 {
		t.Errorf("merged bridge = %+v", b)
	}
	if a.Batch != (Batch{MaxMessages: 10, MaxBytes: MiB, MaxDelay: time.Second}) ||
		b.Batch != (Batch{MaxMessages: 20, MaxBytes: MiB, MaxDelay: time.Second}) {
		t.Errorf("batches = %+v, %+v", a.Batch, b.Batch)
	}
}

func TestErrorList(t *testing.T) {
	l := ErrorList{{"f", 3, "c"}, {"f", 0, "file"}, {"f", 1, "a"}, {"f", 3, "c"}, {"f", 2, "b"}}.sorted()
	want := "f: file\nf:1: a\nf:2: b\nf:3: c"
	if l.Error() != want {
		t.Errorf("sorted list = %q, want %q", l.Error(), want)
	}
}
