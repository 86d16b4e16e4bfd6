package configs

import (
	"embed"
	"io/fs"
	"path"
	"time"

	"github.com/outpost-edge/outpost/bridge/route"
)

// Config is a whole outpost configuration file. The yaml tags are the keys
// of the file; every field's comment gives its default and allowed values.
type Config struct {
	// Source is the name of the file the config was read from.
	Source string `yaml:"-"`
	// GatewayID identifies this gateway upstream. Default: the hostname.
	// It must not contain "/", "+", "#", spaces or control characters.
	GatewayID string `yaml:"gateway_id"`
	// DataDir holds the queue and broker state. Default: /var/lib/outpost.
	DataDir string `yaml:"data_dir"`
	// Log sets the log level and format.
	Log Log `yaml:"log"`
	// Listeners are the local MQTT listeners; at least one.
	Listeners []Listener `yaml:"listeners"`
	// Auth decides which local clients may connect, publish and subscribe.
	Auth Auth `yaml:"auth"`
	// Queue is the on-disk outage queue.
	Queue Queue `yaml:"queue"`
	// Bridges forward to, and receive from, upstream systems; at most 64.
	Bridges []Bridge `yaml:"bridges"`
	// Devices are sensors and outputs wired to the gateway itself.
	Devices []Device `yaml:"devices"`
	// HTTP serves metrics, health and status pages.
	HTTP HTTP `yaml:"http"`

	// lines maps the path of every key and list item in the file, such as
	// "bridges[0].batch.max_delay", to its line.
	lines map[string]int
	// failed holds the paths whose values did not decode, which validate
	// does not report again.
	failed map[string]bool
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default: info.
	Level string `yaml:"level"`
	// Format is text or json. Default: text.
	Format string `yaml:"format"`
}

// Listener is a local MQTT listener.
type Listener struct {
	// Name identifies the listener in logs and metrics; required, unique.
	Name string `yaml:"name"`
	// Type is tcp, tls, ws or wss. Default: tcp.
	Type string `yaml:"type"`
	// Address is host:port to listen on; required, unique.
	Address string `yaml:"address"`
	// TLS is required for types tls and wss, and refused for the others.
	TLS *ServerTLS `yaml:"tls"`
}

// ServerTLS is a listener's certificate, and optionally the CA that client
// certificates must be signed by.
type ServerTLS struct {
	CertFile     string `yaml:"cert_file"`      // required
	KeyFile      string `yaml:"key_file"`       // required
	ClientCAFile string `yaml:"client_ca_file"` // if set, clients must present a certificate
}

// Auth is local client authentication and authorization.
type Auth struct {
	// Anonymous lets clients connect without a username. Default: false,
	// and then at least one user is required.
	Anonymous bool `yaml:"anonymous"`
	// Users are the clients that log in; usernames are unique.
	Users []User `yaml:"users"`
}

// User is a local MQTT user.
type User struct {
	Username string `yaml:"username"`
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$), from `outpost passwd`.
	PasswordHash string `yaml:"password_hash"`
	// Publish and Subscribe are the topic filters the user may publish to
	// and subscribe to.
	Publish   []string `yaml:"publish"`
	Subscribe []string `yaml:"subscribe"`
}

// Queue is the on-disk queue that holds messages until every bridge that
// must forward them has done so.
type Queue struct {
	// MaxSize caps the queue file. Default: 1GiB; at least 1MiB; at most
	// 1GiB on 32-bit platforms (arm, 386), where bbolt maps at most 2 GB.
	MaxSize Size `yaml:"max_size"`
	// MaxAge drops older messages (counted). Default: 168h; 0 keeps them
	// forever.
	MaxAge time.Duration `yaml:"max_age"`
	// WhenFull is drop_oldest or reject_new. Default: drop_oldest.
	WhenFull string `yaml:"when_full"`
	// Sync is always (a QoS 1/2 message is acknowledged after the commit
	// holding it is fsynced; concurrent publishers share commits) or
	// interval (acknowledged at once, committed and fsynced at most every
	// SyncInterval: a crash or power failure can lose up to SyncInterval of
	// acknowledged messages). Default: always.
	Sync string `yaml:"sync"`
	// SyncInterval is the fsync period for sync: interval. Default: 100ms.
	SyncInterval time.Duration `yaml:"sync_interval"`
}

// Bridge is one upstream link: exactly one of MQTT and Kafka is set.
type Bridge struct {
	// Name identifies the bridge in logs, metrics and device "show" values;
	// required, unique, made of [a-z0-9_-].
	Name  string       `yaml:"name"`
	MQTT  *MQTTBridge  `yaml:"mqtt"`
	Kafka *KafkaBridge `yaml:"kafka"`
	// Forward routes go edge -> upstream through the queue; at least one.
	Forward []Route `yaml:"forward"`
	// Receive routes go upstream -> edge (MQTT bridges only): From filters
	// the upstream broker, To names the local topic.
	Receive []Route `yaml:"receive"`
	// Batch bounds what is sent upstream in one go.
	Batch Batch `yaml:"batch"`
	// MaxRate is the most messages per second to send while draining a
	// backlog; 0 (the default) is unlimited.
	MaxRate float64 `yaml:"max_rate"`
	// Reconnect is the wait between connection attempts.
	Reconnect Backoff `yaml:"reconnect"`
}

// Batch bounds one batch of forwarded messages.
type Batch struct {
	MaxMessages int           `yaml:"max_messages"` // default 500
	MaxBytes    Size          `yaml:"max_bytes"`    // default 1MiB
	MaxDelay    time.Duration `yaml:"max_delay"`    // wait for a batch to fill; default 50ms
}

// Backoff is a jittered exponential backoff between Min and Max.
type Backoff struct {
	Min time.Duration `yaml:"min"` // default 500ms
	Max time.Duration `yaml:"max"` // default 1m
}

// MQTTBridge is an upstream MQTT broker.
type MQTTBridge struct {
	// URL is scheme://host:port with scheme tcp, tls (or ssl), ws or wss.
	URL string `yaml:"url"`
	// ClientID defaults to "outpost-" + gateway_id.
	ClientID     string `yaml:"client_id"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"` // needs Username
	// TLS is for tls, ssl and wss URLs only; they verify the server with the
	// system roots when it is not set.
	TLS *ClientTLS `yaml:"tls"`
	// Keepalive is whole seconds, 0 to 18h12m15s. Default: 30s.
	Keepalive time.Duration `yaml:"keepalive"`
	// Envelope is none (payload as is) or json (payload wrapped with
	// gateway_id, seq and received_at). Default: none.
	Envelope string `yaml:"envelope"`
	// StatusTopic, if set, gets a retained "online" on connect and
	// "offline" as the last will.
	StatusTopic string `yaml:"status_topic"`
	// ConnectTimeout bounds one connection attempt. Default: 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// ClientTLS is the TLS setup of an upstream connection.
type ClientTLS struct {
	CAFile             string `yaml:"ca_file"`   // default: system roots
	CertFile           string `yaml:"cert_file"` // client certificate; needs KeyFile
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	ServerName         string `yaml:"server_name"` // default: the host being dialed
}

// KafkaBridge is an upstream Kafka cluster.
type KafkaBridge struct {
	// Brokers are seed brokers as host:port; at least one.
	Brokers []string `yaml:"brokers"`
	// ClientID defaults to "outpost-" + gateway_id.
	ClientID string     `yaml:"client_id"`
	TLS      *ClientTLS `yaml:"tls"`
	SASL     *SASL      `yaml:"sasl"`
	// Compression is none, gzip, snappy, lz4 or zstd. Default: none.
	Compression string `yaml:"compression"`
}

// SASL is Kafka SASL authentication.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism    string `yaml:"mechanism"`
	Username     string `yaml:"username"`      // required
	PasswordFile string `yaml:"password_file"` // required
}

// Route maps topics matching From to an upstream (forward) or local
// (receive) destination. The templates are parsed when the config is loaded.
type Route struct {
	// From is the topic filter; required.
	From string `yaml:"from"`
	// To is the destination topic template of MQTT routes. Default: {topic}.
	To string `yaml:"to"`
	// Topic is the Kafka topic template; required for Kafka routes.
	Topic string `yaml:"topic"`
	// Key is the Kafka record key template; empty means no key.
	Key string `yaml:"key"`
	// QoS is the MQTT QoS (0, 1 or 2): for forward routes the highest QoS
	// used upstream, for receive routes the QoS of the subscription.
	// Default: 1. Not used by Kafka routes.
	QoS int `yaml:"qos"`

	ToTemplate    route.Template `yaml:"-"` // To, parsed
	TopicTemplate route.Template `yaml:"-"` // Topic, parsed
	KeyTemplate   route.Template `yaml:"-"` // Key, parsed; zero if Key is empty
}

// Device is a sensor or output wired to the gateway. Which keys apply
// depends on the driver; setting one that does not is an error.
type Device struct {
	// Name is required and unique.
	Name string `yaml:"name"`
	// Driver is bme280, bmp280, ads1115 (I²C), gpio_in or gpio_out.
	Driver string `yaml:"driver"`
	// I2C is where an I²C device is; required for the I²C drivers.
	I2C *I2C `yaml:"i2c"`
	// Every is the polling period of the I²C drivers, and of gpio_in with
	// edge: none. Default: 30s.
	Every time.Duration `yaml:"every"`
	// Topic is where readings are published; required except for gpio_out.
	Topic string `yaml:"topic"`
	// Pin names the GPIO pin (e.g. GPIO17); required for the gpio drivers.
	Pin string `yaml:"pin"`
	// Show is what a gpio_out pin shows: "bridge:<name>" (on while that
	// bridge is connected) or "queue:backlog" (on while messages wait).
	Show string `yaml:"show"`
	// OnlyOnChange publishes a reading only when it differs from the last
	// one by more than Deadband.
	OnlyOnChange bool    `yaml:"only_on_change"`
	Deadband     float64 `yaml:"deadband"`
	// Pull is the gpio_in pull resistor: up, down or none. Default: none.
	Pull string `yaml:"pull"`
	// Edge is the gpio_in edge to publish on: rising, falling, both, or
	// none (poll every Every). Default: both.
	Edge string `yaml:"edge"`
	// Debounce ignores gpio_in changes shorter than this. Default: 0.
	Debounce time.Duration `yaml:"debounce"`
	// Channels are the ads1115 inputs to read; at least one.
	Channels []ADCChannel `yaml:"channels"`
}

// I2C locates a device on an I²C bus.
type I2C struct {
	// Bus names the bus, e.g. "1" for /dev/i2c-1; empty means the first.
	Bus string `yaml:"bus"`
	// Address is the 7-bit device address, 0x01 to 0x7f.
	Address uint16 `yaml:"address"`
}

// ADCChannel is one ads1115 input, published to <topic>/<name>.
type ADCChannel struct {
	Channel int          `yaml:"channel"` // 0 to 3
	Name    string       `yaml:"name"`    // required, unique within the device
	Scale   *LinearScale `yaml:"scale"`   // default: volts
	Unit    string       `yaml:"unit"`
}

// LinearScale maps In[0]..In[1] (volts) linearly onto Out[0]..Out[1].
type LinearScale struct {
	In  [2]float64 `yaml:"in"`
	Out [2]float64 `yaml:"out"`
}

// HTTP is the metrics and status server.
type HTTP struct {
	// Address is host:port; empty (the default) turns the server off.
	Address string `yaml:"address"`
}

// setDefaults fills in the defaults that the file can override; the decoder
// calls it on every struct it creates before decoding into it.
func (c *Config) setDefaults() {
	c.DataDir = "/var/lib/outpost"
	c.Log = Log{Level: "info", Format: "text"}
	c.Queue = Queue{
		MaxSize:      GiB,
		MaxAge:       168 * time.Hour,
		WhenFull:     "drop_oldest",
		Sync:         "always",
		SyncInterval: 100 * time.Millisecond,
	}
}

func (l *Listener) setDefaults() { l.Type = "tcp" }

func (b *Bridge) setDefaults() {
	b.Batch = Batch{MaxMessages: 500, MaxBytes: MiB, MaxDelay: 50 * time.Millisecond}
	b.Reconnect = Backoff{Min: 500 * time.Millisecond, Max: time.Minute}
}

func (m *MQTTBridge) setDefaults() {
	m.Keepalive = 30 * time.Second
	m.Envelope = "none"
	m.ConnectTimeout = 10 * time.Second
}

func (k *KafkaBridge) setDefaults() { k.Compression = "none" }

func (r *Route) setDefaults() { r.QoS = 1 }

// BridgeNames returns the names of the bridges, in config order; a bridge's
// index is its bit in a route.Table.
func (c *Config) BridgeNames() []string {
	names := make([]string, len(c.Bridges))
	for i, b := range c.Bridges {
		names[i] = b.Name
	}
	return names
}

// DefaultYAML is the config outpost runs with when given none: a broker for
// local clients on 127.0.0.1:1883, data in ./outpost-data, no bridges.
//
//go:embed default.yaml
var DefaultYAML []byte

// Default returns the config parsed from DefaultYAML; a relative data_dir
// stays relative to the working directory.
func Default() *Config {
	c, err := Parse("<default>", DefaultYAML, nil)
	if err != nil {
		panic("configs: the embedded default.yaml does not load: " + err.Error())
	}
	return c
}

//go:embed examples/*.yaml
var examples embed.FS

// Examples returns the example field configs shipped in configs/examples,
// by file name (e.g. "pump-station.yaml").
func Examples() map[string][]byte {
	m := make(map[string][]byte)
	files, _ := fs.Glob(examples, "examples/*.yaml")
	for _, f := range files {
		b, err := examples.ReadFile(f)
		if err != nil {
			panic(err) // embedded, so it cannot fail
		}
		m[path.Base(f)] = b
	}
	return m
}
