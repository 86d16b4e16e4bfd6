package configs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// head is a valid start of a config: two lines, so a case's own lines
// start at line 3.
const head = `listeners: [{name: l, address: "127.0.0.1:1883"}]
auth: {anonymous: true}
`

// mqttBridge is a valid bridge, for cases that need one (lines 4-7 after
// "bridges:" on line 3).
const mqttBridge = `  - name: cloud
    mqtt: {url: "tls://up.example.com:8883"}
    forward: [{from: "sensors/#"}]
`

var badConfigs = []struct {
	name     string
	yaml     string
	wantErrs []string // each in its own error line
}{
	{"unknown top-level key, near a valid one", head + "gatway_id: x\n",
		[]string{`bad.yaml:3: unknown key "gatway_id" (did you mean "gateway_id"?)`}},
	{"unknown key, case and dashes", head + "bridges:\n  - name: c\n    mqtt: {url: \"tcp://u:1\", Client-ID: x}\n    forward: [{from: a}]\n",
		[]string{`bad.yaml:5: unknown key "Client-ID" in bridges[0].mqtt (did you mean "client_id"?)`}},
	{"unknown key, nothing near", head + "queue: {compress: true}\n",
		[]string{`bad.yaml:3: unknown key "compress" in queue; valid keys are: max_size, max_age, when_full, sync, sync_interval`}},
	{"repeated key", head + "gateway_id: a\ngateway_id: b\n",
		[]string{`bad.yaml:4: key "gateway_id" repeated (first at line 3)`}},
	{"mapping instead of string", head + "http: {address: {host: x}}\n",
		[]string{`bad.yaml:3: http.address: expected a string, found a mapping`}},
	{"scalar instead of mapping", head + "log: debug\n",
		[]string{`bad.yaml:3: log: expected a mapping of keys to values, found "debug"`}},
	{"scalar instead of list", head + "bridges: cloud\n",
		[]string{`bad.yaml:3: bridges: expected a list, found "cloud"`}},
	{"not a bool", "listeners: [{name: l, address: \":1\"}]\nauth: {anonymous: sure}\n",
		[]string{`bad.yaml:2: auth.anonymous: expected true or false, found "sure"`, `bad.yaml:2: auth: anonymous is false`}},
	{"not an integer", head + "bridges:\n  - name: c\n    mqtt: {url: \"tcp://u:1\"}\n    forward: [{from: a, qos: high}]\n",
		[]string{`bad.yaml:6: bridges[0].forward[0].qos: expected an integer, found "high"`}},
	{"integer out of range", head + "devices: [{name: e, driver: bme280, i2c: {address: 0x10000}, topic: t}]\n",
		[]string{`bad.yaml:3: devices[0].i2c.address: 0x10000 is out of range`}},
	{"bad size", head + "queue:\n  max_size: 1GB2\n",
		[]string{`bad.yaml:4: queue.max_size: invalid size "1GB2"`}},
	{"size too small", head + "queue: {max_size: 4KiB}\n",
		[]string{`bad.yaml:3: queue.max_size: 4KiB is too small (at least 1MiB)`}},
	{"bad duration", head + "queue:\n  sync: interval\n  sync_interval: 100\n  max_age: 7d\n",
		[]string{`bad.yaml:5: queue.sync_interval: invalid duration "100"`, `bad.yaml:6: queue.max_age: invalid duration "7d"`}},
	{"negative duration", head + "queue: {max_age: -1h}\n",
		[]string{`bad.yaml:3: queue.max_age: duration -1h is negative`}},
	{"bad when_full and sync", head + "queue:\n  when_full: drop_newest\n  sync: never\n",
		[]string{`bad.yaml:4: queue.when_full: "drop_newest" is not one of: drop_oldest, reject_new`, `bad.yaml:5: queue.sync: "never" is not one of: always, interval`}},
	{"no listeners", "gateway_id: gw\nauth: {anonymous: true}\n",
		[]string{`bad.yaml:1: listeners: at least one listener is required`}},
	{"empty listener list", "listeners: []\nauth: {anonymous: true}\n",
		[]string{`bad.yaml:1: listeners: at least one listener is required`}},
	{"empty file", "# nothing here\n",
		[]string{`bad.yaml: listeners: at least one listener is required`, `bad.yaml: auth: anonymous is false and there are no users`}},
	{"duplicate addresses and names", `listeners:
  - {name: a, address: "0.0.0.0:1883"}
  - {name: a, address: "127.0.0.1:1883"}
  - {name: b, type: ws, address: ":9180"}
auth: {anonymous: true}
http: {address: "localhost:9180"}
`, []string{
		`bad.yaml:3: listeners[1].name: "a" is already the name of listeners[0]`,
		`bad.yaml:3: listeners[1].address: address "127.0.0.1:1883" collides with listeners[0].address`,
		`bad.yaml:6: http.address: address "localhost:9180" collides with listeners[2].address`,
	}},
	{"listener fields", `listeners:
  - {name: s, type: tls, address: "0.0.0.0:8883"}
  - {type: quic, address: "nohost"}
  - {name: t, type: wss, address: ":443", tls: {cert_file: c}}
  - {name: p, address: ":1", tls: {cert_file: c, key_file: k}}
auth: {anonymous: true}
`, []string{
		`bad.yaml:2: listeners[0].tls: required for type tls`,
		`bad.yaml:3: listeners[1].name: required`,
		`bad.yaml:3: listeners[1].type: "quic" is not one of: tcp, tls, ws, wss`,
		`bad.yaml:3: listeners[1].address: "nohost" is not host:port`,
		`bad.yaml:4: listeners[2].tls.key_file: required`,
		`bad.yaml:5: listeners[3].tls: set, but type tcp does not use TLS`,
	}},
	{"no users and not anonymous", "listeners: [{name: l, address: \":1\"}]\nauth:\n  anonymous: false\n",
		[]string{`bad.yaml:2: auth: anonymous is false and there are no users`}},
	{"users", `listeners: [{name: l, address: ":1"}]
auth:
  users:
    - {username: a, password_hash: "$2a$10$kks5NQ7dOu31KxxgM2BkjOyKlGUY2Quwy6vmO7m3chFXB/ighjxVa", publish: ["a/#/b"]}
    - {username: a, password_hash: "secret", subscribe: ["ok/+", "x+"]}
`, []string{
		`bad.yaml:4: auth.users[0].publish[0]: bad topic filter "a/#/b"`,
		`bad.yaml:5: auth.users[1].username: "a" is already the username of auth.users[0]`,
		`bad.yaml:5: auth.users[1].password_hash: not a bcrypt hash`,
		`bad.yaml:5: auth.users[1].subscribe[1]: bad topic filter "x+"`,
	}},
	{"bridge with both mqtt and kafka", head + `bridges:
  - name: both
    mqtt: {url: "tcp://u:1"}
    kafka: {brokers: ["k:9092"]}
    forward: [{from: "#"}]
`, []string{`bad.yaml:4: bridges[0]: has both mqtt and kafka`}},
	{"bridge with neither, no routes, bad name", head + "bridges:\n  - name: Cloud!\n",
		[]string{`bad.yaml:4: bridges[0].name: "Cloud!" may contain only`, `bad.yaml:4: bridges[0]: needs mqtt or kafka`, `bad.yaml:4: bridges[0].forward: at least one forward route is required`}},
	{"duplicate bridge names", head + "bridges:\n" + mqttBridge + mqttBridge,
		[]string{`bad.yaml:7: bridges[1].name: "cloud" is already the name of bridges[0]`}},
	{"too many bridges", head + "bridges:\n" + strings.Repeat("  - {name: b, mqtt: {url: \"tcp://u:1\"}, forward: [{from: a}]}\n", 65),
		append([]string{`bad.yaml:3: bridges: 65 bridges; at most 64 are supported`}, dupNames(64)...)},
	{"bad template", head + "bridges:\n  - name: c\n    mqtt: {url: \"tcp://u:1\"}\n    forward:\n      - {from: \"sensors/#\", to: \"site/{0}/{topic\"}\n      - {from: \"a\", to: \"x/{gw}\"}\n",
		[]string{`bad.yaml:7: bridges[0].forward[0].to: bad template "site/{0}/{topic": levels count from 1, not 0, in {0}`, `bad.yaml:8: bridges[0].forward[1].to: bad template "x/{gw}": unknown placeholder {gw}`}},
	{"wildcard in to", head + "bridges:\n  - name: c\n    mqtt: {url: \"tcp://u:1\"}\n    forward: [{from: a, to: \"b/#\"}]\n",
		[]string{`bad.yaml:6: bridges[0].forward[0].to: "b/#": a topic name cannot contain + or #`}},
	{"bad filter", head + "bridges:\n  - name: c\n    mqtt: {url: \"tcp://u:1\"}\n    forward: [{from: \"sensors/#/x\"}, {to: y}]\n    receive: [{from: \"cmd+\"}]\n",
		[]string{`bad.yaml:6: bridges[0].forward[0].from: bad topic filter "sensors/#/x"`, `bad.yaml:6: bridges[0].forward[1].from: required`, `bad.yaml:7: bridges[0].receive[0].from: bad topic filter "cmd+"`}},
	{"kafka routes", head + `bridges:
  - name: lake
    kafka: {brokers: ["k:9092", "nohost"], compression: brotli}
    forward:
      - {from: "a/#"}
      - {from: "b", topic: "iot/{2}", to: x, qos: 0}
      - {from: "c", topic: "t", key: "{nope}"}
    receive: [{from: "x"}]
`, []string{
		`bad.yaml:5: bridges[0].kafka.brokers[1]: "nohost" is not host:port`,
		`bad.yaml:5: bridges[0].kafka.compression: "brotli" is not one of`,
		`bad.yaml:7: bridges[0].forward[0].topic: required for kafka bridges`,
		`bad.yaml:8: bridges[0].forward[1].to: not used by kafka bridges`,
		`bad.yaml:8: bridges[0].forward[1].qos: not used by kafka bridges`,
		`bad.yaml:8: bridges[0].forward[1].topic: "iot/{2}": a Kafka topic name may contain only`,
		`bad.yaml:9: bridges[0].forward[2].key: bad template "{nope}"`,
		`bad.yaml:10: bridges[0].receive: only MQTT bridges receive`,
	}},
	{"kafka sasl", head + "bridges:\n  - name: k\n    kafka:\n      brokers: []\n      sasl: {mechanism: GSSAPI}\n    forward: [{from: a, topic: t}]\n",
		[]string{`bad.yaml:6: bridges[0].kafka.brokers: at least one broker`, `bad.yaml:7: bridges[0].kafka.sasl.mechanism: "GSSAPI" is not one of`, `bad.yaml:7: bridges[0].kafka.sasl.username: required`, `bad.yaml:7: bridges[0].kafka.sasl.password_file: required`}},
	{"kafka batch and topic names", head + "bridges:\n  - name: k\n    kafka: {brokers: [\"k:9092\"]}\n    forward: [{from: a, topic: \".\"}, {from: b, topic: \"" + strings.Repeat("t", 250) + "\"}]\n    batch: {max_bytes: 100, max_delay: -1s}\n",
		[]string{`bad.yaml:6: bridges[0].forward[0].topic: "." is not a valid Kafka topic name`, `bad.yaml:6: bridges[0].forward[1].topic: "ttt`, `bad.yaml:7: bridges[0].batch.max_bytes: 100B: a Kafka record batch must be 1KiB to 1GiB`, `bad.yaml:7: bridges[0].batch.max_delay: duration -1s is negative`}},
	{"mqtt bridge fields", head + `bridges:
  - name: c
    mqtt:
      url: "mqtt.example.com:8883"
      tls: {cert_file: c.crt}
      password_file: p
      keepalive: 1500ms
      envelope: xml
      status_topic: "status/+"
      connect_timeout: 0s
    forward: [{from: a, qos: 3}]
    batch: {max_messages: 0, max_bytes: 0}
    max_rate: -1
    reconnect: {min: 10s, max: 1s}
`, []string{
		`bad.yaml:6: bridges[0].mqtt.url: "mqtt.example.com:8883": want tcp://`,
		`bad.yaml:7: bridges[0].mqtt.tls: cert_file and key_file go together`,
		`bad.yaml:8: bridges[0].mqtt.password_file: needs a username`,
		`bad.yaml:9: bridges[0].mqtt.keepalive: 1.5s: must be whole seconds`,
		`bad.yaml:10: bridges[0].mqtt.envelope: "xml" is not one of: none, json`,
		`bad.yaml:11: bridges[0].mqtt.status_topic: bad topic "status/+"`,
		`bad.yaml:12: bridges[0].mqtt.connect_timeout: must be more than 0`,
		`bad.yaml:13: bridges[0].forward[0].qos: 3 is not 0, 1 or 2`,
		`bad.yaml:14: bridges[0].batch.max_messages: must be more than 0`,
		`bad.yaml:14: bridges[0].batch.max_bytes: must be more than 0`,
		`bad.yaml:15: bridges[0].max_rate: must not be negative`,
		`bad.yaml:16: bridges[0].reconnect.max: 1s is less than min 10s`,
	}},
	{"tls on a plain url", head + "bridges:\n  - name: c\n    mqtt: {url: \"tcp://u:1883\", tls: {ca_file: ca}}\n    forward: [{from: a}]\n",
		[]string{`bad.yaml:5: bridges[0].mqtt.tls: set, but a tcp:// url does not use TLS`}},
	{"undefined env var", head + "gateway_id: ${NOPE}\nbridges:\n  - name: c\n    mqtt: {url: \"${UPSTREAM}\"}\n    forward: [{from: a}]\n",
		[]string{`bad.yaml:3: gateway_id: environment variable NOPE is not set (give a default with ${NOPE:-value})`, `bad.yaml:6: bridges[0].mqtt.url: environment variable UPSTREAM is not set`}},
	{"bad env reference", head + "data_dir: ${1X}/${OK:-d}\nhttp: {address: \"${PORT\"}\n",
		[]string{`bad.yaml:3: data_dir: bad variable reference ${1X}`, `bad.yaml:4: http.address: unclosed ${`}},
	{"bad gateway id", head + "gateway_id: \"site/1\"\n",
		[]string{`bad.yaml:3: gateway_id: "site/1" must not contain /`}},
	{"show naming a missing bridge", head + "bridges:\n" + mqttBridge + `devices:
  - {name: led1, driver: gpio_out, pin: GPIO27, show: "bridge:cloud"}
  - {name: led2, driver: gpio_out, pin: GPIO22, show: "bridge:lake"}
  - {name: led3, driver: gpio_out, pin: GPIO23, show: "queue:full"}
  - {name: led4, driver: gpio_out, pin: GPIO24}
`, []string{
		`bad.yaml:9: devices[1].show: there is no bridge named "lake"`,
		`bad.yaml:10: devices[2].show: "queue:full" is neither`,
		`bad.yaml:11: devices[3].show: required for driver gpio_out`,
	}},
	{"devices", head + `devices:
  - {name: e, driver: bme280, i2c: {address: 0x80}, topic: "s/+", pin: GPIO1}
  - {name: e, driver: bmp280, every: 0s, topic: t}
  - {name: g, driver: gpio_in, edge: up, every: 1s, deadband: 1}
  - {name: a, driver: ads1115, i2c: {address: 0x48}, topic: t, channels: [{channel: 4, name: x}, {channel: 0, name: "a/b", scale: {in: [1, 1], out: [0]}}]}
  - {name: z, driver: dht22}
`, []string{
		`bad.yaml:4: devices[0].pin: not used by driver bme280`,
		`bad.yaml:4: devices[0].i2c.address: 0x80 is not a 7-bit address`,
		`bad.yaml:4: devices[0].topic: bad topic "s/+"`,
		`bad.yaml:5: devices[1].name: "e" is already the name of devices[0]`,
		`bad.yaml:5: devices[1].i2c: required for driver bmp280`,
		`bad.yaml:5: devices[1].every: must be more than 0`,
		`bad.yaml:6: devices[2].deadband: not used by driver gpio_in`,
		`bad.yaml:6: devices[2].pin: required for driver gpio_in`,
		`bad.yaml:6: devices[2].topic: required for driver gpio_in`,
		`bad.yaml:6: devices[2].edge: "up" is not one of: rising, falling, both, none`,
		`bad.yaml:6: devices[2].every: only used with edge: none`,
		`bad.yaml:7: devices[3].channels[1].scale.out: expected a list of exactly 2 values, found a list`,
		`bad.yaml:7: devices[3].channels[0].channel: 4 is not 0 to 3`,
		`bad.yaml:7: devices[3].channels[1].name: "a/b" must be a single topic level`,
		`bad.yaml:7: devices[3].channels[1].scale.in: the two ends must differ`,
		`bad.yaml:7: devices[3].channels[1].unit: required with a scale`,
		`bad.yaml:8: devices[4].driver: "dht22" is not one of`,
	}},
	{"ads1115 without channels", head + "devices: [{name: a, driver: ads1115, i2c: {address: 0x48}, topic: t}]\n",
		[]string{`bad.yaml:3: devices[0].channels: at least one channel is required`}},
	{"negative debounce", head + "devices: [{name: d, driver: gpio_in, pin: GPIO17, topic: t, debounce: -5ms}]\n",
		[]string{`bad.yaml:3: devices[0].debounce: duration -5ms is negative`}},
	{"device pins, addresses and units", head + `devices:
  - {name: a, driver: bme280, i2c: {bus: "1", address: 0x49}, topic: t}
  - {name: b, driver: ads1115, i2c: {bus: "1", address: 0x48}, topic: t, channels: [{channel: 0, name: p, scale: {in: [1, 5], out: [0, 10]}}, {channel: 1, name: q, unit: mA}, {channel: 2, name: r, scale: {in: [0, 10], out: [0, 1]}, unit: x}]}
  - {name: c, driver: ads1115, i2c: {bus: "1", address: 0x48}, topic: t, channels: [{channel: 0, name: p}]}
  - {name: d, driver: gpio_in, pin: gpio17, topic: t}
  - {name: e, driver: gpio_in, pin: GPIO17, topic: t, only_on_change: true}
  - {name: f, driver: gpio_out, pin: GPIO17, show: "queue:backlog"}
  - {name: g, driver: bme280, i2c: {bus: "i2c 1", address: 0x77}, topic: t, deadband: 1}
`, []string{
		`bad.yaml:4: devices[0].i2c.address: 0x49: a bme280 answers only at 0x76, 0x77`,
		`bad.yaml:5: devices[1].channels[0].unit: required with a scale`,
		`bad.yaml:5: devices[1].channels[1].unit: "mA", but without a scale the channel reads volts`,
		`bad.yaml:5: devices[1].channels[2].scale.in: the ADS1115 reads at most ±6.144 V`,
		`bad.yaml:6: devices[2].i2c.address: 0x48 on bus "1" is already devices[1] (b)`,
		`bad.yaml:7: devices[3].pin: "gpio17" is not a pin name`,
		`bad.yaml:8: devices[4].only_on_change: only used with edge: none`,
		`bad.yaml:9: devices[5].pin: GPIO17 is already the pin of devices[4] (e)`,
		`bad.yaml:10: devices[6].i2c.bus: "i2c 1" is not a bus name`,
		`bad.yaml:10: devices[6].deadband: only used with only_on_change: true`,
	}},
	{"several errors at once", `gateway_id: gw
listeners:
  - {name: l, address: ":1883", tyep: tcp}
auth: {anonymous: true}
queue:
  max_size: lots
  max_age: forever
  when_full: panic
bridges:
  - name: cloud
    mqtt: {url: "ftp://x:21"}
    forward: [{from: "#", to: "{7}/{x}"}]
`, []string{
		`bad.yaml:3: unknown key "tyep" in listeners[0] (did you mean "type"?)`,
		`bad.yaml:6: queue.max_size: invalid size "lots"`,
		`bad.yaml:7: queue.max_age: invalid duration "forever"`,
		`bad.yaml:8: queue.when_full: "panic" is not one of`,
		`bad.yaml:11: bridges[0].mqtt.url: "ftp://x:21": want tcp://`,
		`bad.yaml:12: bridges[0].forward[0].to: bad template "{7}/{x}": unknown placeholder {x}`,
	}},
	{"YAML syntax error", head + "queue:\n  max_size: 1GiB\n max_age: 1h\n",
		[]string{`bad.yaml:4: YAML: did not find expected key`}},
	{"unknown anchor", head + "log: *nope\n",
		[]string{`bad.yaml:3: YAML: unknown anchor 'nope' referenced`}},
	{"two documents", head + "---\ngateway_id: x\n",
		[]string{`bad.yaml:3: a config file holds one YAML document`}},
	{"not a mapping", "- a\n- b\n",
		[]string{`bad.yaml:1: expected a mapping of keys to values, found a list`, `bad.yaml:1: listeners: at least one`, `bad.yaml:1: auth: anonymous is false`}},
	{"alias cycle", head + "bridges: &b\n  - name: c\n    mqtt: {url: \"tcp://u:1\"}\n    forward: [{from: a}]\n    receive: *b\n",
		[]string{ // errors in aliased nodes are at the anchor's lines
			`bad.yaml:4: unknown key "name" in bridges[0].receive[0]; valid keys are: from, to, topic, key, qos`,
			`bad.yaml:4: bridges[0].receive[0].from: required`,
			`bad.yaml:5: unknown key "mqtt" in bridges[0].receive[0]`,
			`bad.yaml:6: unknown key "forward" in bridges[0].receive[0]`,
			`bad.yaml:7: unknown key "receive" in bridges[0].receive[0]`,
		}},
	{"merge cycle", head + "log: &l {<<: *l}\n",
		[]string{`bad.yaml:3: log: alias *l refers to itself`}},
	{"non-string key", head + "? [a]\n: b\n",
		[]string{`bad.yaml:3: a key must be a plain string, found a list`}},
}

// dupNames lists the errors for bridges[1..n] all named "b".
func dupNames(n int) []string {
	var s []string
	for i := 1; i <= n; i++ {
		s = append(s, fmt.Sprintf(`bad.yaml:%d: bridges[%d].name: "b" is already the name of bridges[0]`, 4+i, i))
	}
	return s
}

func TestBadConfigs(t *testing.T) {
	for _, tt := range badConfigs {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("bad.yaml", []byte(tt.yaml), env(map[string]string{"OK": "ok"}))
			if err == nil {
				t.Fatalf("loaded, want errors; config: %+v", c)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			lines := strings.Split(err.Error(), "\n")
			used := make([]bool, len(lines))
		want:
			for _, w := range tt.wantErrs {
				for i, l := range lines {
					if !used[i] && strings.Contains(l, w) {
						used[i] = true
						continue want
					}
				}
				t.Errorf("no error line contains %q", w)
			}
			for i, l := range lines {
				if !used[i] {
					t.Errorf("unexpected error: %s", l)
				}
			}
			if t.Failed() {
				t.Logf("all errors:\n%v", err)
			}
		})
	}
}
