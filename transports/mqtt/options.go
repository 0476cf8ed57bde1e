package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Log levels passed to Options.Logf (the module's levels).
const (
	LevelError = 0
	LevelWarn  = 1
	LevelInfo  = 2
	LevelDebug = 3
)

// Defaults of Options.
const (
	DefaultTopicPrefix    = "mesibo-iot"
	DefaultMaxMessage     = 64 << 10
	DefaultKeepalive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultPublishTimeout = 10 * time.Second
	DefaultEmbeddedListen = "127.0.0.1:1883"
)

// Options configure a Transport. Zero fields take their defaults in New.
type Options struct {
	// Brokers are broker URLs: tcp://host:1883, ssl://host:8883 (also tls://,
	// mqtts://), ws://host/path or wss://host/path. They are tried in order.
	Brokers []string
	// Username and Password authenticate the bridge. The password never
	// appears in logs or errors.
	Username, Password string
	// ClientID defaults to "mesibo-iot-" + BridgeID. It must be unique on the
	// broker: two clients with one id disconnect each other.
	ClientID string
	// CAFile is a PEM file of the CAs that may sign the broker's certificate
	// (default: the system's roots). CertFile and KeyFile are the bridge's
	// client certificate and key (PEM), both or neither.
	CAFile, CertFile, KeyFile string
	// InsecureSkipVerify turns off verification of the broker's certificate.
	// Only for tests: anyone on the path can then read and forge traffic.
	InsecureSkipVerify bool
	// Keepalive is the MQTT keepalive (default 30s). ConnectTimeout bounds one
	// connection attempt (default 10s). PublishTimeout bounds the wait for a
	// PUBACK or SUBACK (default 10s).
	Keepalive, ConnectTimeout, PublishTimeout time.Duration
	// TopicPrefix is the first topic level(s), default "mesibo-iot".
	TopicPrefix string
	// BridgeID names this bridge in topics (default: the host name, with
	// characters other than letters, digits, '-', '_', '.' replaced by '-').
	// Bridges sharing a broker must have different ids.
	BridgeID string
	// ShareGroup, when set, makes the bridges share device telemetry through
	// $share/<ShareGroup>/... and forward it to each other by interest.
	ShareGroup string
	// MaxMessage is the largest payload accepted or sent (default 64 KiB).
	MaxMessage int
	// Embedded starts an embedded broker (mochi-mqtt) listening on
	// EmbeddedListen (default 127.0.0.1:1883) and connects to it. Brokers must
	// then be empty. With Username set the embedded broker accepts only that
	// username and password (from the bridge and the devices alike).
	Embedded       bool
	EmbeddedListen string
	// Logf receives the transport's log lines (0 error, 1 warn, 2 info,
	// 3 debug). Nil discards them.
	Logf func(level int, msg string)
	// Fault, for tests only (nil in production), is called at named points
	// of the transport's goroutines so that a test can make them panic:
	// mqtt.supervisor (each connection attempt), mqtt.handler (paho's
	// message callback), mqtt.worker (each inbound message, in a worker
	// or, for a reply, in the handler), mqtt.maintain
	// (each maintenance round).
	Fault func(point string)
}

// configKey is one mqtt_* key of mesibo.conf.
type configKey struct {
	name    string
	def     string // default, as documented
	allowed string
	doc     string
	set     func(o *Options, v string) error
}

var idChars = "letters, digits, '-', '_' and '.', 1 to 64 of them"

var configKeys = []configKey{
	{"mqtt_broker", "embedded", "embedded, or comma-separated broker URLs (tcp://host:1883, ssl://host:8883, ws://host/path, wss://host/path)",
		"Where the broker is. `embedded` starts a broker inside the module (mochi-mqtt) on mqtt_listen.",
		func(o *Options, v string) error {
			if strings.EqualFold(strings.TrimSpace(v), "embedded") {
				o.Embedded = true
				o.Brokers = nil
				return nil
			}
			o.Embedded = false
			o.Brokers = nil
			for _, s := range strings.Split(v, ",") {
				s = strings.TrimSpace(s)
				if s == "" {
					continue
				}
				u, err := parseBrokerURL(s)
				if err != nil {
					return err
				}
				o.Brokers = append(o.Brokers, u)
			}
			if len(o.Brokers) == 0 {
				return errors.New("must be embedded or at least one broker URL")
			}
			return nil
		}},
	{"mqtt_listen", "127.0.0.1:1883", "host:port (only with mqtt_broker = embedded)",
		"Address the embedded broker listens on. Default 127.0.0.1:1883; keep it on loopback unless devices connect from other hosts.",
		func(o *Options, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return errors.New("must be host:port, e.g. 127.0.0.1:1883")
			}
			o.EmbeddedListen = v
			return nil
		}},
	{"mqtt_username", "(none)", "a user name (1 to 1024 bytes)", "User name the bridge authenticates with.",
		func(o *Options, v string) error {
			if v == "" || len(v) > 1024 || !utf8.ValidString(v) {
				return errors.New("must be 1 to 1024 bytes of UTF-8")
			}
			o.Username = v
			return nil
		}},
	{"mqtt_password", "(none)", "a password (1 to 1024 bytes)", "Password the bridge authenticates with; never logged.",
		func(o *Options, v string) error {
			if v == "" || len(v) > 1024 {
				return errors.New("must be 1 to 1024 bytes (the value is not shown)")
			}
			o.Password = v
			return nil
		}},
	{"mqtt_client_id", "mesibo-iot-<bridge id>", "1 to 128 printable characters", "MQTT client id; default mesibo-iot-<bridge id>. Unique per broker.",
		func(o *Options, v string) error {
			if !printable(v, 128) {
				return errors.New("must be 1 to 128 printable characters without spaces")
			}
			o.ClientID = v
			return nil
		}},
	{"mqtt_ca_file", "(system roots)", "a path to a PEM file", "CAs that may sign the broker's certificate (default: the system's roots).",
		pathSetter(func(o *Options, v string) { o.CAFile = v })},
	{"mqtt_cert_file", "(none)", "a path to a PEM file", "The bridge's client certificate (with mqtt_key_file).",
		pathSetter(func(o *Options, v string) { o.CertFile = v })},
	{"mqtt_key_file", "(none)", "a path to a PEM file", "The bridge's client key (with mqtt_cert_file).",
		pathSetter(func(o *Options, v string) { o.KeyFile = v })},
	{"mqtt_insecure_skip_verify", "off", "on or off", "Do not verify the broker's TLS certificate. Default off; tests only.",
		func(o *Options, v string) error {
			b, err := parseBool(v)
			o.InsecureSkipVerify = b
			return err
		}},
	{"mqtt_keepalive", "30s", "a duration 2s..30m", "MQTT keepalive; a dead connection is noticed within 1.5 times this. Default 30s.",
		durSetter(2*time.Second, 30*time.Minute, func(o *Options, d time.Duration) { o.Keepalive = d })},
	{"mqtt_connect_timeout", "10s", "a duration 1s..5m", "Bound on one connection attempt (TCP, TLS and MQTT handshakes). Default 10s.",
		durSetter(time.Second, 5*time.Minute, func(o *Options, d time.Duration) { o.ConnectTimeout = d })},
	{"mqtt_publish_timeout", "10s", "a duration 100ms..5m", "Bound on waiting for the broker's PUBACK or SUBACK. Default 10s.",
		durSetter(100*time.Millisecond, 5*time.Minute, func(o *Options, d time.Duration) { o.PublishTimeout = d })},
	{"mqtt_topic_prefix", "mesibo-iot", "topic levels without wildcards, not starting with '$' or '/', e.g. mesibo-iot or site1/iot",
		"First topic level(s) of every topic. Default mesibo-iot.",
		func(o *Options, v string) error {
			if err := checkPrefix(v); err != nil {
				return err
			}
			o.TopicPrefix = v
			return nil
		}},
	{"mqtt_bridge_id", "(host name)", idChars, "This bridge's id in topics; default the host name. Unique among bridges on one broker.",
		func(o *Options, v string) error {
			if !validID(v) {
				return errors.New("must be " + idChars)
			}
			o.BridgeID = v
			return nil
		}},
	{"mqtt_share_group", "(none)", idChars + ", or empty for none", "Share group of the bridges that share device telemetry; empty (default) = every bridge takes all telemetry.",
		func(o *Options, v string) error {
			if v == "" || v == "off" {
				o.ShareGroup = ""
				return nil
			}
			if !validID(v) {
				return errors.New("must be " + idChars + ", or empty")
			}
			o.ShareGroup = v
			return nil
		}},
	{"mqtt_max_message", "65536", "bytes, 256..16777216", "Largest MQTT payload sent or accepted; larger ones are dropped. Default 65536.",
		func(o *Options, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 256 || n > 16<<20 {
				return errors.New("must be an integer from 256 to 16777216")
			}
			o.MaxMessage = n
			return nil
		}},
}

// ConfigKey describes one mqtt_* key of mesibo.conf.
type ConfigKey struct {
	Name, Default, Allowed, Doc string
}

// ConfigKeys lists the mqtt_* keys, sorted by name.
func ConfigKeys() []ConfigKey {
	out := make([]ConfigKey, 0, len(configKeys))
	for _, k := range configKeys {
		out = append(out, ConfigKey{Name: k.name, Default: k.def, Allowed: k.allowed, Doc: k.doc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func knownKeys() string {
	names := make([]string, 0, len(configKeys))
	for _, k := range configKeys {
		names = append(names, k.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// OptionsFromConfig reads the mqtt_* keys of kv (other keys, such as
// serial_*, are ignored). An unknown mqtt_* key is an error that lists the
// known ones; a bad value is an error naming the key and what is allowed.
// Files named by the keys are read by New.
func OptionsFromConfig(kv map[string]string) (Options, error) {
	o := Options{Embedded: true}
	names := make([]string, 0, len(kv))
	for k := range kv {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic errors
	listenGiven := false
	for _, raw := range names {
		name := strings.ToLower(strings.TrimSpace(raw))
		if !strings.HasPrefix(name, "mqtt_") {
			continue
		}
		var key *configKey
		for i := range configKeys {
			if configKeys[i].name == name {
				key = &configKeys[i]
				break
			}
		}
		if key == nil {
			return Options{}, fmt.Errorf("unknown key %q; known mqtt keys: %s", raw, knownKeys())
		}
		v := strings.TrimSpace(kv[raw])
		if err := key.set(&o, v); err != nil {
			if name == "mqtt_password" {
				return Options{}, fmt.Errorf("%s: %v", name, err)
			}
			return Options{}, fmt.Errorf("%s = %q: %v (allowed: %s)", name, redactURLs(v), err, key.allowed)
		}
		if name == "mqtt_listen" {
			listenGiven = true
		}
	}
	if listenGiven && !o.Embedded {
		return Options{}, errors.New("mqtt_listen is only used with mqtt_broker = embedded; remove it or set mqtt_broker = embedded")
	}
	if o.Embedded && (o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.InsecureSkipVerify) {
		return Options{}, errors.New("mqtt_ca_file, mqtt_cert_file, mqtt_key_file and mqtt_insecure_skip_verify are for a TLS broker URL; the embedded broker (mqtt_broker = embedded, the default) listens on plain TCP")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return Options{}, errors.New("mqtt_cert_file and mqtt_key_file go together: give both or neither")
	}
	return o, nil
}

// withDefaults checks o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Embedded && len(o.Brokers) > 0 {
		return o, errors.New("Embedded and Brokers exclude each other")
	}
	if !o.Embedded && len(o.Brokers) == 0 {
		return o, errors.New("no broker: give a broker URL (mqtt_broker) or use the embedded broker")
	}
	o.Brokers = append([]string(nil), o.Brokers...)
	for i, b := range o.Brokers {
		u, err := parseBrokerURL(b)
		if err != nil {
			return o, fmt.Errorf("broker %q: %v", redactURLs(b), err)
		}
		o.Brokers[i] = u
	}
	if o.Embedded && o.EmbeddedListen == "" {
		o.EmbeddedListen = DefaultEmbeddedListen
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = DefaultTopicPrefix
	}
	if err := checkPrefix(o.TopicPrefix); err != nil {
		return o, fmt.Errorf("topic prefix %q: %v", o.TopicPrefix, err)
	}
	if o.BridgeID == "" {
		o.BridgeID = defaultBridgeID()
	}
	if !validID(o.BridgeID) {
		return o, fmt.Errorf("bridge id %q must be %s", o.BridgeID, idChars)
	}
	if o.ShareGroup != "" && !validID(o.ShareGroup) {
		return o, fmt.Errorf("share group %q must be %s", o.ShareGroup, idChars)
	}
	if o.ClientID == "" {
		o.ClientID = "mesibo-iot-" + o.BridgeID
	}
	if !printable(o.ClientID, 128) {
		return o, fmt.Errorf("client id %q must be 1 to 128 printable characters", o.ClientID)
	}
	if o.MaxMessage == 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.MaxMessage < 256 || o.MaxMessage > 16<<20 {
		return o, fmt.Errorf("MaxMessage %d must be from 256 to 16777216", o.MaxMessage)
	}
	if o.Keepalive == 0 {
		o.Keepalive = DefaultKeepalive
	}
	if o.Keepalive < time.Second {
		return o, fmt.Errorf("keepalive %v must be at least 1s", o.Keepalive)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return o, errors.New("CertFile and KeyFile go together: give both or neither")
	}
	return o, nil
}

// tlsConfig builds the client TLS configuration from the files in o.
func (o Options) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt_ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt_ca_file %s: no PEM certificate in it", o.CAFile)
		}
		c.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt_cert_file / mqtt_key_file: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func parseBrokerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", errors.New("not a broker URL; use tcp://host:1883, ssl://host:8883, ws://host:port/path or wss://host:port/path")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch u.Scheme {
	case "tcp", "mqtt":
		u.Scheme = "tcp"
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "1883")
		}
	case "ssl", "tls", "mqtts":
		u.Scheme = "ssl"
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "8883")
		}
	case "ws", "wss":
	default:
		return "", fmt.Errorf("scheme %q is not supported; use tcp, ssl, ws or wss", u.Scheme)
	}
	if u.User != nil {
		return "", errors.New("put credentials in mqtt_username and mqtt_password, not in the URL")
	}
	return u.String(), nil
}

// redactURLs hides the password of any URL in s. A value with an '@' that
// does not parse as URLs (a password with a space, '/', ',' ...) is not
// shown at all: no part of a password may reach a log line.
func redactURLs(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || (u.User == nil && strings.Contains(p, "@")) {
			return "(not shown: it holds an '@', perhaps a password)"
		}
		if u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

func pathSetter(set func(*Options, string)) func(*Options, string) error {
	return func(o *Options, v string) error {
		if v == "" {
			return errors.New("must be a path")
		}
		set(o, v)
		return nil
	}
}

func durSetter(lo, hi time.Duration, set func(*Options, time.Duration)) func(*Options, string) error {
	return func(o *Options, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			return fmt.Errorf("must be a duration from %v to %v", lo, hi)
		}
		set(o, d)
		return nil
	}
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, errors.New("must be on or off")
}

func checkPrefix(p string) error {
	if p == "" || len(p) > 128 || !utf8.ValidString(p) {
		return errors.New("must be 1 to 128 bytes of UTF-8")
	}
	if p[0] == '$' || p[0] == '/' || p[len(p)-1] == '/' {
		return errors.New("must not start with '$' or '/' nor end with '/'")
	}
	for _, lvl := range strings.Split(p, "/") {
		if lvl == "" {
			return errors.New("must not contain empty levels ('//')")
		}
	}
	if strings.ContainsAny(p, "+#\x00") {
		return errors.New("must not contain '+', '#' or NUL")
	}
	return nil
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// validDeviceID reports whether s can be one topic level.
func validDeviceID(s string) bool {
	if s == "" || len(s) > 128 || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsAny(s, "/+#\x00")
}

func printable(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// defaultBridgeID is the host name made a valid id.
func defaultBridgeID() string {
	h, _ := os.Hostname()
	return sanitiseID(h)
}

func sanitiseID(h string) string {
	var b strings.Builder
	for i := 0; i < len(h) && b.Len() < 64; i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			b.WriteByte(c)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "bridge"
	}
	return b.String()
}
