package configs

import (
	"strings"
	"testing"
	"time"
)

func TestExpandEnv(t *testing.T) {
	lookup := env(map[string]string{"A": "alpha", "EMPTY": "", "B": "${A}"})
	tests := []struct {
		in, want, errContains string
	}{
		{"plain", "plain", ""},
		{"${A}", "alpha", ""},
		{"x-${A}-y", "x-alpha-y", ""},
		{"${A}${A}", "alphaalpha", ""},
		{"${EMPTY}", "", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${UNSET:-def}", "def", ""},
		{"${UNSET:-}", "", ""},
		{"${A:-def}", "alpha", ""},
		{"${UNSET:-a:-b}", "a:-b", ""},
		{"${B}", "${A}", ""}, // values are not expanded again
		{"$${A}", "${A}", ""},
		{"$$${A}", "$${A}", ""},
		{"$A $ {A} $", "$A $ {A} $", ""},
		{"$2a$10$kks5NQ7dOu31KxxgM2BkjO", "$2a$10$kks5NQ7dOu31KxxgM2BkjO", ""},
		{"${UNSET}", "", "environment variable UNSET is not set"},
		{"${A", "", "unclosed ${"},
		{"${}", "", "bad variable reference ${}"},
		{"${1A}", "", "bad variable reference ${1A}"},
		{"${A B}", "", "bad variable reference"},
		{"${A-x}", "", "bad variable reference"},
	}
	for _, tt := range tests {
		got, err := expandEnv(tt.in, lookup)
		switch {
		case tt.errContains != "" && (err == nil || !strings.Contains(err.Error(), tt.errContains)):
			t.Errorf("expandEnv(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.errContains)
		case tt.errContains == "" && (err != nil || got != tt.want):
			t.Errorf("expandEnv(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEnvInConfig(t *testing.T) {
	doc := `gateway_id: ${GW:-gw-1}
listeners: [{name: l, address: "${ADDR:-:1883}"}]
auth: {anonymous: "${ANON:-true}"}
queue: {max_size: "${QSIZE:-64MiB}", max_age: "${AGE:-1h}"}
bridges:
  - name: c
    mqtt:
      url: tcp://u:1
      client_id: "outpost-${OUTPOST_GATEWAY_ID}"
      username: "${USER_DOC}"
    forward: [{from: "${FROM:-a/#}", qos: "${QOS:-0}"}]
devices: [{name: e, driver: bme280, i2c: {address: "${ADDR_I2C:-0x76}"}, topic: t}]
`
	c, err := Parse("e.yaml", []byte(doc), env(map[string]string{
		"QSIZE":    "2MiB",
		"USER_DOC": "a: b\n- [c]", // stays a string: expansion happens after parsing
	}))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Bridges[0]
	if c.GatewayID != "gw-1" || c.Listeners[0].Address != ":1883" || !c.Auth.Anonymous ||
		c.Queue.MaxSize != 2*MiB || c.Queue.MaxAge != time.Hour || c.Devices[0].I2C.Address != 0x76 ||
		b.MQTT.ClientID != "outpost-gw-1" || b.MQTT.Username != "a: b\n- [c]" ||
		b.Forward[0].From != "a/#" || b.Forward[0].QoS != 0 {
		t.Errorf("config = %+v, bridge = %+v, mqtt = %+v", c, b, b.MQTT)
	}
}

func TestGatewayIDVar(t *testing.T) {
	defer swap(&hostname, func() (string, error) { return "host-1", nil })()
	tests := []struct {
		name, gatewayID string
		env             map[string]string
		wantID, wantCID string
	}{
		{"from the config", "gateway_id: gw-7", nil, "gw-7", "c-gw-7"},
		{"from the environment", "gateway_id: gw-7", map[string]string{"OUTPOST_GATEWAY_ID": "env-1"}, "gw-7", "c-env-1"},
		{"config defaults to the variable", "gateway_id: ${OUTPOST_GATEWAY_ID:-gw-8}", map[string]string{"OUTPOST_GATEWAY_ID": "env-2"}, "env-2", "c-env-2"},
		{"config default used", "gateway_id: ${OUTPOST_GATEWAY_ID:-gw-8}", nil, "gw-8", "c-gw-8"},
		{"hostname", "", nil, "host-1", "c-host-1"},
		{"self reference falls back to the hostname", "gateway_id: ${OUTPOST_GATEWAY_ID}", nil, "host-1", "c-host-1"},
	}
	for _, tt := range tests {
		doc := tt.gatewayID + `
listeners: [{name: l, address: ":1"}]
auth: {anonymous: true}
bridges: [{name: c, mqtt: {url: "tcp://u:1", client_id: "c-${OUTPOST_GATEWAY_ID}"}, forward: [{from: a}]}]
`
		c, err := Parse("g.yaml", []byte(doc), env(tt.env))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if c.GatewayID != tt.wantID || c.Bridges[0].MQTT.ClientID != tt.wantCID {
			t.Errorf("%s: gateway_id %q, client_id %q; want %q, %q", tt.name, c.GatewayID, c.Bridges[0].MQTT.ClientID, tt.wantID, tt.wantCID)
		}
	}
}
