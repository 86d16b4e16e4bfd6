package configs

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/outpost-edge/outpost/bridge/route"
)

// goarch is runtime.GOARCH, replaceable in tests.
var goarch = runtime.GOARCH

// has reports whether the file set the key at path.
func (c *Config) has(path string) bool {
	_, ok := c.lines[path]
	return ok
}

// line returns the line of path in the file, or of its nearest ancestor
// that is there, or 0.
func (c *Config) line(path string) int {
	for {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return c.lines[""]
		}
		path = path[:i]
	}
}

// complete fills in the defaults that depend on other fields and resolves
// relative paths against base ("" leaves them relative to the working
// directory).
func (c *Config) complete(base string) {
	abs := func(p *string) {
		if *p != "" && base != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	clientTLS := func(t *ClientTLS) {
		if t != nil {
			abs(&t.CAFile)
			abs(&t.CertFile)
			abs(&t.KeyFile)
		}
	}
	abs(&c.DataDir)
	for i := range c.Listeners {
		if t := c.Listeners[i].TLS; t != nil {
			abs(&t.CertFile)
			abs(&t.KeyFile)
			abs(&t.ClientCAFile)
		}
	}
	defaultID := "outpost-" + c.GatewayID
	for i := range c.Bridges {
		b := &c.Bridges[i]
		if m := b.MQTT; m != nil {
			if m.ClientID == "" {
				m.ClientID = defaultID
			}
			abs(&m.PasswordFile)
			clientTLS(m.TLS)
			for _, rs := range [][]Route{b.Forward, b.Receive} {
				for j := range rs {
					if rs[j].To == "" {
						rs[j].To = "{topic}"
					}
				}
			}
		}
		if k := b.Kafka; k != nil {
			if k.ClientID == "" {
				k.ClientID = defaultID
			}
			clientTLS(k.TLS)
			if k.SASL != nil {
				abs(&k.SASL.PasswordFile)
			}
		}
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		p := fmt.Sprintf("devices[%d].", i)
		if d.Driver == "gpio_in" {
			if !c.has(p + "pull") {
				d.Pull = "none"
			}
			if !c.has(p + "edge") {
				d.Edge = "both"
			}
		}
		if polls(d) && !c.has(p+"every") {
			d.Every = 30 * time.Second
		}
	}
}

// polls reports whether the device is read every Every.
func polls(d *Device) bool {
	switch d.Driver {
	case "bme280", "bmp280", "ads1115":
		return true
	case "gpio_in":
		return d.Edge == "none"
	}
	return false
}

// driverKeys lists the device keys each driver uses, besides name and
// driver.
var driverKeys = map[string][]string{
	"bme280":   {"i2c", "every", "topic", "only_on_change", "deadband"},
	"bmp280":   {"i2c", "every", "topic", "only_on_change", "deadband"},
	"ads1115":  {"i2c", "every", "topic", "only_on_change", "deadband", "channels"},
	"gpio_in":  {"pin", "topic", "pull", "edge", "debounce", "every", "only_on_change"},
	"gpio_out": {"pin", "show"},
}

var bridgeName = regexp.MustCompile(`^[a-z0-9_-]+$`)

// i2cAddresses are the addresses each I²C driver's chip can have: the
// BMx280's SDO pin selects 0x76 or 0x77, the ADS1115's ADDR pin one of four.
var i2cAddresses = map[string][]uint16{
	"bme280":  {0x76, 0x77},
	"bmp280":  {0x76, 0x77},
	"ads1115": {0x48, 0x49, 0x4a, 0x4b},
}

var (
	// i2cBus is a bus number, name or /dev path; "" is the first bus.
	i2cBus = regexp.MustCompile(`^[A-Za-z0-9_/.-]{0,64}$`)
	// pinName is a GPIO pin as periph's gpioreg names it: GPIO17, a header
	// pin such as P1_11, a SoC pin such as PA10, or a number.
	pinName = regexp.MustCompile(`^(GPIO[0-9]{1,4}|P[0-9]{1,2}_[0-9]{1,2}|P[A-Z][0-9]{1,3}|[0-9]{1,4})$`)
)

func hexList(as []uint16) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = fmt.Sprintf("%#x", a)
	}
	return strings.Join(s, ", ")
}

// deviceConflicts reports two devices on the same pin, or at the same
// address of the same bus.
func (k *checker) deviceConflicts(ds []Device) {
	pins, addrs := map[string]int{}, map[string]int{}
	for i, d := range ds {
		p := fmt.Sprintf("devices[%d]", i)
		_, usesPin := driverKeys[d.Driver]
		if usesPin = usesPin && slices.Contains(driverKeys[d.Driver], "pin"); usesPin && d.Pin != "" {
			if j, ok := pins[d.Pin]; ok {
				k.errorf(p+".pin", "%s is already the pin of devices[%d] (%s)", d.Pin, j, ds[j].Name)
			} else {
				pins[d.Pin] = i
			}
		}
		if d.I2C != nil && slices.Contains(driverKeys[d.Driver], "i2c") {
			key := fmt.Sprintf("%s@%#x", d.I2C.Bus, d.I2C.Address)
			if j, ok := addrs[key]; ok {
				k.errorf(p+".i2c.address", "%#x on bus %q is already devices[%d] (%s)", d.I2C.Address, d.I2C.Bus, j, ds[j].Name)
			} else {
				addrs[key] = i
			}
		}
	}
}

// checker collects the problems validate finds.
type checker struct {
	c    *Config
	errs ErrorList
}

// errorf reports a problem with the key at path, unless its value did not
// decode, which is reported already.
func (k *checker) errorf(path, format string, args ...any) {
	if k.c.failed[path] {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	k.errs = append(k.errs, Error{Line: k.c.line(path), Msg: msg})
}

// oneOf checks that the value at path is one of allowed.
// unique checks that a required identifier (a name, a username) is set and
// not used before; seen maps each one to the path of its first use.
func (k *checker) unique(path, value, what string, seen map[string]string) {
	switch {
	case value == "":
		k.errorf(path, "required")
	case seen[value] != "":
		k.errorf(path, "%q is already the %s of %s", value, what, seen[value])
	default:
		seen[value] = strings.TrimSuffix(path, "."+what)
	}
}

func (k *checker) oneOf(path, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		k.errorf(path, "%q is not one of: %s", value, strings.Join(allowed, ", "))
	}
}

// hostPort checks a host:port address; needHost requires a host.
func (k *checker) hostPort(path, addr string, needHost bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		k.errorf(path, "%q is not host:port", addr)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && needHost) {
		k.errorf(path, "bad port in %q", addr)
	}
	if needHost && host == "" {
		k.errorf(path, "no host in %q", addr)
	}
}

// validate checks the whole config, including everything that involves more
// than one field, and parses the route templates. It returns every problem,
// each at the line of the key concerned.
func (c *Config) validate() ErrorList {
	k := &checker{c: c}

	switch {
	case c.GatewayID == "":
		k.errorf("gateway_id", "not set, and the hostname is unknown")
	case strings.ContainsFunc(c.GatewayID, func(r rune) bool {
		return strings.ContainsRune("/+#", r) || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}):
		k.errorf("gateway_id", "%q must not contain /, +, #, spaces or control characters: it is used in topics", c.GatewayID)
	}
	if c.DataDir == "" {
		k.errorf("data_dir", "must not be empty")
	}
	k.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	k.oneOf("log.format", c.Log.Format, "text", "json")

	// Listeners, and the HTTP server, whose addresses must not collide.
	if len(c.Listeners) == 0 {
		k.errorf("listeners", "at least one listener is required")
	}
	type addr struct{ host, port, path string }
	var bound []addr
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	bind := func(path, a string) {
		host, port, err := net.SplitHostPort(a)
		if err != nil || port == "0" {
			return
		}
		for _, b := range bound {
			if b.port == port && (b.host == host || wild(b.host) || wild(host)) {
				k.errorf(path, "address %q collides with %s", a, b.path)
				return
			}
		}
		bound = append(bound, addr{host, port, path})
	}
	names := map[string]string{}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		k.unique(p+".name", l.Name, "name", names)
		k.oneOf(p+".type", l.Type, "tcp", "tls", "ws", "wss")
		if l.Address == "" {
			k.errorf(p+".address", "required")
		} else {
			k.hostPort(p+".address", l.Address, false)
			bind(p+".address", l.Address)
		}
		secure := l.Type == "tls" || l.Type == "wss"
		switch {
		case secure && l.TLS == nil:
			k.errorf(p+".tls", "required for type %s (cert_file and key_file)", l.Type)
		case secure:
			if l.TLS.CertFile == "" {
				k.errorf(p+".tls.cert_file", "required")
			}
			if l.TLS.KeyFile == "" {
				k.errorf(p+".tls.key_file", "required")
			}
		case l.TLS != nil:
			k.errorf(p+".tls", "set, but type %s does not use TLS (use tls or wss)", l.Type)
		}
	}
	if c.HTTP.Address != "" {
		k.hostPort("http.address", c.HTTP.Address, false)
		bind("http.address", c.HTTP.Address)
	}

	// Auth.
	if !c.Auth.Anonymous && len(c.Auth.Users) == 0 {
		k.errorf("auth", "anonymous is false and there are no users, so no client could connect (add users, or set anonymous: true on a trusted network)")
	}
	users := map[string]string{}
	for i, u := range c.Auth.Users {
		p := fmt.Sprintf("auth.users[%d]", i)
		k.unique(p+".username", u.Username, "username", users)
		if !isBcrypt(u.PasswordHash) {
			k.errorf(p+".password_hash", "not a bcrypt hash ($2a$, $2b$ or $2y$ and 60 characters); make one with `outpost passwd`")
		}
		for j, f := range u.Publish {
			k.filter(fmt.Sprintf("%s.publish[%d]", p, j), f)
		}
		for j, f := range u.Subscribe {
			k.filter(fmt.Sprintf("%s.subscribe[%d]", p, j), f)
		}
	}

	// Queue.
	q := c.Queue
	switch {
	case q.MaxSize < MiB:
		k.errorf("queue.max_size", "%s is too small (at least 1MiB)", q.MaxSize)
	case q.MaxSize > GiB && (goarch == "arm" || goarch == "386"):
		k.errorf("queue.max_size", "%s is over the 1GiB limit on %s: bbolt maps at most 2 GB of file on 32-bit systems", q.MaxSize, goarch)
	}
	k.oneOf("queue.when_full", q.WhenFull, "drop_oldest", "reject_new")
	k.oneOf("queue.sync", q.Sync, "always", "interval")
	if q.SyncInterval <= 0 {
		k.errorf("queue.sync_interval", "must be more than 0")
	}

	// Bridges.
	if len(c.Bridges) > route.MaxBridges {
		k.errorf("bridges", "%d bridges; at most %d are supported", len(c.Bridges), route.MaxBridges)
	}
	bridges := map[string]string{}
	for i := range c.Bridges {
		b := &c.Bridges[i]
		p := fmt.Sprintf("bridges[%d]", i)
		if b.Name != "" && !bridgeName.MatchString(b.Name) {
			k.errorf(p+".name", "%q may contain only a-z, 0-9, _ and -", b.Name)
		} else {
			k.unique(p+".name", b.Name, "name", bridges)
		}
		switch {
		case b.MQTT != nil && b.Kafka != nil:
			k.errorf(p, "has both mqtt and kafka; a bridge has exactly one (make two bridges)")
		case b.MQTT != nil:
			k.mqtt(p+".mqtt", b.MQTT)
		case b.Kafka != nil:
			k.kafka(p+".kafka", b.Kafka)
		default:
			k.errorf(p, "needs mqtt or kafka")
		}
		kafka := b.Kafka != nil && b.MQTT == nil
		if len(b.Forward) == 0 {
			k.errorf(p+".forward", "at least one forward route is required")
		}
		for j := range b.Forward {
			k.route(fmt.Sprintf("%s.forward[%d]", p, j), &b.Forward[j], kafka)
		}
		if kafka && len(b.Receive) > 0 {
			k.errorf(p+".receive", "only MQTT bridges receive")
		}
		for j := range b.Receive {
			if !kafka {
				k.route(fmt.Sprintf("%s.receive[%d]", p, j), &b.Receive[j], false)
			}
		}
		if b.Batch.MaxMessages <= 0 {
			k.errorf(p+".batch.max_messages", "must be more than 0")
		}
		if b.Batch.MaxBytes <= 0 {
			k.errorf(p+".batch.max_bytes", "must be more than 0")
		} else if kafka && (b.Batch.MaxBytes < KiB || b.Batch.MaxBytes > GiB) {
			k.errorf(p+".batch.max_bytes", "%s: a Kafka record batch must be 1KiB to 1GiB (keep it at most the topics' max.message.bytes)", b.Batch.MaxBytes)
		}
		if b.MaxRate < 0 {
			k.errorf(p+".max_rate", "must not be negative (0 is unlimited)")
		}
		switch r := b.Reconnect; {
		case r.Min <= 0:
			k.errorf(p+".reconnect.min", "must be more than 0")
		case r.Max < r.Min:
			k.errorf(p+".reconnect.max", "%s is less than min %s", r.Max, r.Min)
		}
	}

	// Devices.
	devices := map[string]string{}
	for i := range c.Devices {
		k.device(fmt.Sprintf("devices[%d]", i), &c.Devices[i], devices, bridges)
	}
	k.deviceConflicts(c.Devices)
	return k.errs
}

func (k *checker) filter(path, f string) {
	if err := route.ValidFilter(f); err != nil {
		k.errorf(path, "bad topic filter %q: %v", f, err)
	}
}

func (k *checker) topic(path, t string) {
	if err := route.ValidTopic(t); err != nil {
		k.errorf(path, "bad topic %q: %v", t, err)
	}
}

func (k *checker) clientTLS(path string, t *ClientTLS, scheme string) {
	if t == nil {
		return
	}
	if scheme != "" && scheme != "tls" && scheme != "ssl" && scheme != "wss" {
		k.errorf(path, "set, but a %s:// url does not use TLS (use tls:// or wss://)", scheme)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		k.errorf(path, "cert_file and key_file go together")
	}
}

func (k *checker) mqtt(p string, m *MQTTBridge) {
	u, err := url.Parse(m.URL)
	scheme := ""
	switch {
	case m.URL == "":
		k.errorf(p+".url", "required")
	case err != nil || !slices.Contains([]string{"tcp", "tls", "ssl", "ws", "wss"}, u.Scheme):
		k.errorf(p+".url", "%q: want tcp://, tls://, ssl://, ws:// or wss:// followed by host:port", m.URL)
	default:
		scheme = u.Scheme
		if u.Hostname() == "" || u.Port() == "" {
			k.errorf(p+".url", "%q: want a host and a port", m.URL)
		}
		if u.User != nil {
			k.errorf(p+".url", "put credentials in username and password_file, not in the url")
		}
	}
	k.clientTLS(p+".tls", m.TLS, scheme)
	if m.PasswordFile != "" && m.Username == "" {
		k.errorf(p+".password_file", "needs a username")
	}
	if m.Keepalive%time.Second != 0 || m.Keepalive > 65535*time.Second {
		k.errorf(p+".keepalive", "%s: must be whole seconds, at most 18h12m15s", m.Keepalive)
	}
	k.oneOf(p+".envelope", m.Envelope, "none", "json")
	if m.StatusTopic != "" {
		k.topic(p+".status_topic", m.StatusTopic)
	}
	if m.ConnectTimeout <= 0 {
		k.errorf(p+".connect_timeout", "must be more than 0")
	}
}

func (k *checker) kafka(p string, kb *KafkaBridge) {
	if len(kb.Brokers) == 0 {
		k.errorf(p+".brokers", "at least one broker is required")
	}
	for i, b := range kb.Brokers {
		k.hostPort(fmt.Sprintf("%s.brokers[%d]", p, i), b, true)
	}
	k.clientTLS(p+".tls", kb.TLS, "")
	if s := kb.SASL; s != nil {
		k.oneOf(p+".sasl.mechanism", s.Mechanism, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
		if s.Username == "" {
			k.errorf(p+".sasl.username", "required")
		}
		if s.PasswordFile == "" {
			k.errorf(p+".sasl.password_file", "required")
		}
	}
	k.oneOf(p+".compression", kb.Compression, "none", "gzip", "snappy", "lz4", "zstd")
}

// route checks a route and parses its templates.
func (k *checker) route(p string, r *Route, kafka bool) {
	if r.From == "" {
		k.errorf(p+".from", "required")
	} else {
		k.filter(p+".from", r.From)
	}
	parse := func(key, s string, t *route.Template) bool {
		var err error
		if *t, err = route.ParseTemplate(s); err != nil {
			k.errorf(p+"."+key, "%v", err)
		}
		return err == nil
	}
	// The literal text of a template is its expansion for an empty topic.
	literal := func(t route.Template) string { return t.Expand("", "") }

	if !kafka {
		for _, key := range []string{"topic", "key"} {
			if k.c.has(p + "." + key) {
				k.errorf(p+"."+key, "only for kafka bridges (MQTT routes use to)")
			}
		}
		if parse("to", r.To, &r.ToTemplate) && strings.ContainsAny(literal(r.ToTemplate), "+#\x00") {
			k.errorf(p+".to", "%q: a topic name cannot contain + or #", r.To)
		}
		if r.QoS < 0 || r.QoS > 2 {
			k.errorf(p+".qos", "%d is not 0, 1 or 2", r.QoS)
		}
		return
	}
	for _, key := range []string{"to", "qos"} {
		if k.c.has(p + "." + key) {
			k.errorf(p+"."+key, "not used by kafka bridges (kafka routes use topic and key)")
		}
	}
	if r.Topic == "" {
		k.errorf(p+".topic", "required for kafka bridges")
	} else if parse("topic", r.Topic, &r.TopicTemplate) {
		if bad := strings.IndexFunc(literal(r.TopicTemplate), func(c rune) bool {
			return !(c == '.' || c == '_' || c == '-' || c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c)))
		}); bad >= 0 {
			k.errorf(p+".topic", "%q: a Kafka topic name may contain only a-z, A-Z, 0-9, ., _ and -", r.Topic)
		} else if lit := literal(r.TopicTemplate); len(lit) > 249 {
			k.errorf(p+".topic", "%q: a Kafka topic name is at most 249 characters", r.Topic)
		} else if r.TopicTemplate.String() == "." || r.TopicTemplate.String() == ".." {
			k.errorf(p+".topic", "%q is not a valid Kafka topic name", r.Topic)
		}
	}
	if r.Key != "" {
		parse("key", r.Key, &r.KeyTemplate)
	}
}

func (k *checker) device(p string, d *Device, names, bridges map[string]string) {
	k.unique(p+".name", d.Name, "name", names)
	keys, ok := driverKeys[d.Driver]
	if !ok {
		k.errorf(p+".driver", "%q is not one of: bme280, bmp280, ads1115, gpio_in, gpio_out", d.Driver)
		return
	}
	for _, key := range keysOf(reflect.TypeFor[Device]()) {
		if key != "name" && key != "driver" && !slices.Contains(keys, key) && k.c.has(p+"."+key) {
			k.errorf(p+"."+key, "not used by driver %s", d.Driver)
		}
	}
	use := func(key string) bool { return slices.Contains(keys, key) }
	if use("i2c") {
		switch {
		case d.I2C == nil:
			k.errorf(p+".i2c", "required for driver %s (bus and address)", d.Driver)
		case d.I2C.Address < 1 || d.I2C.Address > 0x7f:
			k.errorf(p+".i2c.address", "%#x is not a 7-bit address (0x01 to 0x7f)", d.I2C.Address)
		case !slices.Contains(i2cAddresses[d.Driver], d.I2C.Address):
			k.errorf(p+".i2c.address", "%#x: a %s answers only at %s", d.I2C.Address, d.Driver, hexList(i2cAddresses[d.Driver]))
		}
		if d.I2C != nil && !i2cBus.MatchString(d.I2C.Bus) {
			k.errorf(p+".i2c.bus", "%q is not a bus name or number (such as \"1\" for /dev/i2c-1)", d.I2C.Bus)
		}
	}
	switch {
	case use("pin") && d.Pin == "":
		k.errorf(p+".pin", "required for driver %s", d.Driver)
	case use("pin") && !pinName.MatchString(d.Pin):
		k.errorf(p+".pin", "%q is not a pin name: GPIO<n> (GPIO17), a header pin (P1_11) or a number; names are case-sensitive", d.Pin)
	}
	if use("deadband") && k.c.has(p+".deadband") && !d.OnlyOnChange {
		k.errorf(p+".deadband", "only used with only_on_change: true")
	}
	if d.Driver == "gpio_in" && d.OnlyOnChange && d.Edge != "none" {
		k.errorf(p+".only_on_change", "only used with edge: none (polling); edges publish changes only")
	}
	if use("topic") {
		if d.Topic == "" {
			k.errorf(p+".topic", "required for driver %s", d.Driver)
		} else {
			k.topic(p+".topic", d.Topic)
		}
	}
	if use("show") {
		name, isBridge := strings.CutPrefix(d.Show, "bridge:")
		switch {
		case d.Show == "":
			k.errorf(p+".show", `required for driver gpio_out ("bridge:<name>" or "queue:backlog")`)
		case isBridge && bridges[name] == "":
			k.errorf(p+".show", "there is no bridge named %q", name)
		case !isBridge && d.Show != "queue:backlog":
			k.errorf(p+".show", `%q is neither "bridge:<name>" nor "queue:backlog"`, d.Show)
		}
	}
	if d.Driver == "gpio_in" {
		k.oneOf(p+".pull", d.Pull, "up", "down", "none")
		k.oneOf(p+".edge", d.Edge, "rising", "falling", "both", "none")
		if d.Edge != "none" && k.c.has(p+".every") {
			k.errorf(p+".every", "only used with edge: none (polling)")
		}
	}
	if polls(d) && d.Every <= 0 {
		k.errorf(p+".every", "must be more than 0")
	}
	if d.Deadband < 0 {
		k.errorf(p+".deadband", "must not be negative")
	}
	if d.Driver == "ads1115" {
		if len(d.Channels) == 0 {
			k.errorf(p+".channels", "at least one channel is required")
		}
		chans, chanNames := map[int]bool{}, map[string]bool{}
		for i, ch := range d.Channels {
			cp := fmt.Sprintf("%s.channels[%d]", p, i)
			switch {
			case ch.Channel < 0 || ch.Channel > 3:
				k.errorf(cp+".channel", "%d is not 0 to 3", ch.Channel)
			case chans[ch.Channel]:
				k.errorf(cp+".channel", "channel %d is listed twice", ch.Channel)
			}
			chans[ch.Channel] = true
			switch {
			case ch.Name == "":
				k.errorf(cp+".name", "required")
			case chanNames[ch.Name]:
				k.errorf(cp+".name", "%q is listed twice", ch.Name)
			case route.ValidTopic(ch.Name) != nil || strings.Contains(ch.Name, "/"):
				k.errorf(cp+".name", "%q must be a single topic level", ch.Name)
			}
			chanNames[ch.Name] = true
			if s := ch.Scale; s != nil && s.In[0] == s.In[1] {
				k.errorf(cp+".scale.in", "the two ends must differ")
			}
			if s := ch.Scale; s != nil && max(s.In[0], s.In[1], -s.In[0], -s.In[1]) > 6.144 {
				k.errorf(cp+".scale.in", "the ADS1115 reads at most ±6.144 V (and no more than its supply voltage)")
			}
			switch {
			case ch.Scale != nil && ch.Unit == "":
				k.errorf(cp+".unit", "required with a scale (the unit of scale.out, such as bar)")
			case ch.Scale == nil && ch.Unit != "" && ch.Unit != "V":
				k.errorf(cp+".unit", "%q, but without a scale the channel reads volts (V)", ch.Unit)
			}
		}
	}
}

// isBcrypt reports whether h looks like a bcrypt hash: $2a$, $2b$ or $2y$,
// a cost of 04 to 31, "$", and 53 characters of bcrypt's base64.
func isBcrypt(h string) bool {
	if len(h) != 60 || !slices.Contains([]string{"$2a$", "$2b$", "$2y$"}, h[:4]) || h[6] != '$' {
		return false
	}
	if cost, err := strconv.Atoi(h[4:6]); err != nil || cost < 4 || cost > 31 {
		return false
	}
	return strings.Trim(h[7:], "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == ""
}
