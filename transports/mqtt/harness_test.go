package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const mosquittoBin = "/usr/sbin/mosquitto"

// ---- brokers ----------------------------------------------------------------

// testBroker is a broker the functional suite runs against.
type testBroker interface {
	URL() string
	Kill()    // stop it abruptly
	Restart() // start it again on the same address
}

// mosquitto runs /usr/sbin/mosquitto with a generated configuration.
type mosquitto struct {
	t      testing.TB
	dir    string
	port   int
	scheme string
	conf   string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
}

func needMosquitto(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Skipf("mosquitto is not installed (%s missing): install the Debian package mosquitto to run the tests against a real broker", mosquittoBin)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMosquitto starts Mosquitto on a free loopback port; extra is added to
// the configuration (TLS, password_file ...). allow_anonymous is true unless
// extra sets it.
func startMosquitto(t testing.TB, scheme, extra string) *mosquitto {
	t.Helper()
	needMosquitto(t)
	dir, port := t.TempDir(), freePort(t)
	anon := "allow_anonymous true\n"
	if strings.Contains(extra, "allow_anonymous") {
		anon = ""
	}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nset_tcp_nodelay true\npersistence false\nuser root\n%slog_dest file %s\nlog_type all\n%s\n",
		port, anon, filepath.Join(dir, "mosquitto.log"), extra)
	return runMosquitto(t, dir, port, scheme, conf)
}

// runMosquitto runs Mosquitto with the configuration conf, whose first
// listener is port (URL uses it with scheme).
func runMosquitto(t testing.TB, dir string, port int, scheme, conf string) *mosquitto {
	t.Helper()
	m := &mosquitto{t: t, dir: dir, port: port, scheme: scheme, conf: filepath.Join(dir, "mosquitto.conf")}
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Restart()
	t.Cleanup(m.Kill)
	return m
}

func (m *mosquitto) URL() string { return fmt.Sprintf("%s://127.0.0.1:%d", m.scheme, m.port) }

func (m *mosquitto) Restart() {
	m.t.Helper()
	cmd := exec.Command(mosquittoBin, "-c", m.conf)
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
			m.t.Fatalf("mosquitto exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto does not accept connections on port %d: %v", m.port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *mosquitto) Kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// embedded is the package's own broker.
type embedded struct {
	t    testing.TB
	addr string
	mu   sync.Mutex
	b    *Broker
	opts BrokerOptions
}

func startEmbedded(t testing.TB, opts BrokerOptions) *embedded {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	b, err := StartBroker(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &embedded{t: t, addr: b.Addr(), b: b, opts: opts}
	e.opts.Listen = b.Addr()
	t.Cleanup(e.Kill)
	return e
}

func (e *embedded) URL() string { return "tcp://" + e.addr }

func (e *embedded) Kill() {
	e.mu.Lock()
	b := e.b
	e.b = nil
	e.mu.Unlock()
	if b != nil {
		_ = b.Close()
	}
}

func (e *embedded) Restart() {
	e.t.Helper()
	var err error
	var b *Broker
	for i := 0; i < 50; i++ {
		if b, err = StartBroker(context.Background(), e.opts); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.b = b
	e.mu.Unlock()
}

// ---- certificates -----------------------------------------------------------

type testPKI struct {
	dir                   string
	caFile, rogueCAFile   string
	serverCert, serverKey string
	clientCert, clientKey string
	caPool                *x509.CertPool
	client                tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	ca, caKey := makeCA(t, "mesibo-iot test CA")
	rogue, _ := makeCA(t, "rogue CA")
	p.caFile = writePEM(t, p.dir, "ca.pem", "CERTIFICATE", ca.Raw)
	p.rogueCAFile = writePEM(t, p.dir, "rogue.pem", "CERTIFICATE", rogue.Raw)
	srv, srvKey := makeLeaf(t, ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	p.serverCert = writePEM(t, p.dir, "server.pem", "CERTIFICATE", srv)
	p.serverKey = writeKey(t, p.dir, "server.key", srvKey)
	cl, clKey := makeLeaf(t, ca, caKey, "bridge", x509.ExtKeyUsageClientAuth)
	p.clientCert = writePEM(t, p.dir, "client.pem", "CERTIFICATE", cl)
	p.clientKey = writeKey(t, p.dir, "client.key", clKey)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)
	var err error
	if p.client, err = tls.LoadX509KeyPair(p.clientCert, p.clientKey); err != nil {
		t.Fatal(err)
	}
	return p
}

func makeCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func makeLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeKey(t testing.TB, dir, name string, key *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "PRIVATE KEY", der)
}

// ---- a Sink that records ----------------------------------------------------

type event struct {
	kind   string // reply, telemetry, presence, dropped, link
	dev    string
	reply  *wire.Reply
	tel    *wire.Telemetry
	pres   transports.Presence
	err    error
	up     bool
	detail string
}

type fakeSink struct {
	mu     sync.Mutex
	events []event
	gate   chan struct{} // when set, Reply and Telemetry wait until it is closed
	panics atomic.Int32  // Telemetry panics this many times first
}

func (s *fakeSink) wait() {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (s *fakeSink) add(e event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

func (s *fakeSink) Reply(dev string, r *wire.Reply) {
	s.wait()
	s.add(event{kind: "reply", dev: dev, reply: r})
}
func (s *fakeSink) Telemetry(dev string, tm *wire.Telemetry) {
	s.wait()
	if s.panics.Add(-1) >= 0 {
		panic("sink panic for the test")
	}
	s.add(event{kind: "telemetry", dev: dev, tel: tm})
}
func (s *fakeSink) Presence(dev string, p transports.Presence) {
	s.add(event{kind: "presence", dev: dev, pres: p})
}
func (s *fakeSink) Dropped(dev string, reason error) {
	s.add(event{kind: "dropped", dev: dev, err: reason})
}
func (s *fakeSink) Link(name string, up bool, detail string) {
	s.add(event{kind: "link", up: up, detail: detail})
}

func (s *fakeSink) all(kind string) []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []event
	for _, e := range s.events {
		if kind == "" || e.kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls until f holds for the sink's events of kind.
func (s *fakeSink) waitFor(t testing.TB, what, kind string, f func([]event) bool) []event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := s.all(kind)
		if f(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; %s events: %s", what, kind, describeEvents(evs))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func describeEvents(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		switch e.kind {
		case "reply":
			fmt.Fprintf(&b, "\n  reply %s id=%d %v", e.dev, e.reply.ID, e.reply.Outcome)
		case "telemetry":
			fmt.Fprintf(&b, "\n  telemetry %s seq=%d", e.dev, e.tel.Seq)
		case "presence":
			fmt.Fprintf(&b, "\n  presence %s online=%v seq=%d (%s)", e.dev, e.pres.Online, e.pres.Seq, e.pres.Reason)
		case "dropped":
			fmt.Fprintf(&b, "\n  dropped %s: %v", e.dev, e.err)
		case "link":
			fmt.Fprintf(&b, "\n  link up=%v %s", e.up, e.detail)
		}
	}
	return b.String()
}

func (s *fakeSink) waitLink(t testing.TB, up bool, n int) event {
	t.Helper()
	evs := s.waitFor(t, fmt.Sprintf("link up=%v #%d", up, n), "link", func(evs []event) bool {
		c := 0
		for _, e := range evs {
			if e.up == up {
				c++
			}
		}
		return c >= n
	})
	c := 0
	for _, e := range evs {
		if e.up == up {
			c++
			if c == n {
				return e
			}
		}
	}
	return event{}
}

func (s *fakeSink) waitDropped(t testing.TB, target error) event {
	t.Helper()
	evs := s.waitFor(t, fmt.Sprintf("a drop for %v", target), "dropped", func(evs []event) bool {
		for _, e := range evs {
			if errors.Is(e.err, target) {
				return true
			}
		}
		return false
	})
	for _, e := range evs {
		if errors.Is(e.err, target) {
			return e
		}
	}
	return event{}
}

// ---- a log that records -----------------------------------------------------

type logBuf struct {
	mu    sync.Mutex
	lines []string
	t     testing.TB
}

func (l *logBuf) logf(level int, msg string) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf("%d %s", level, msg))
	l.mu.Unlock()
}

func (l *logBuf) find(level int, sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.HasPrefix(s, fmt.Sprintf("%d ", level)) && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// ---- a test device ----------------------------------------------------------

// testDevice is a minimal device: it answers commands (accepted, done by
// default), keeps a retained state with a last will, sends telemetry.
type testDevice struct {
	t      testing.TB
	id     string
	prefix string
	url    string
	tlsCfg *tls.Config
	user   string
	pass   string

	mu      sync.Mutex
	c       paho.Client
	raw     net.Conn
	cmds    []wire.Command
	answer  func(cmd *wire.Command) []wire.Reply
	seq     uint64
	telSeq  atomic.Uint64
	noState bool
}

type devOpt func(*testDevice)

func withTLS(c *tls.Config) devOpt { return func(d *testDevice) { d.tlsCfg = c } }
func withAuth(u, p string) devOpt  { return func(d *testDevice) { d.user, d.pass = u, p } }

func acceptedDone(cmd *wire.Command) []wire.Reply {
	return []wire.Reply{{ID: cmd.ID, Outcome: wire.OutcomeAccepted}, {ID: cmd.ID, Outcome: wire.OutcomeDone}}
}

func newTestDevice(t testing.TB, url, prefix, id string, opts ...devOpt) *testDevice {
	t.Helper()
	d := &testDevice{t: t, id: id, prefix: prefix, url: url, answer: acceptedDone, seq: 100}
	for _, o := range opts {
		o(d)
	}
	if err := d.connect(); err != nil {
		t.Fatalf("device %s: %v", id, err)
	}
	t.Cleanup(d.Close)
	return d
}

func (d *testDevice) topic(s string) string { return d.prefix + "/dev/" + d.id + "/" + s }

func (d *testDevice) connect() error {
	d.mu.Lock()
	d.seq += 2
	seq := d.seq
	d.mu.Unlock()
	will, err := wire.MarshalState(&wire.State{Device: d.id, Online: false, Seq: seq + 1})
	if err != nil {
		return err
	}
	o := paho.NewClientOptions().AddBroker(d.url).SetClientID("dev-"+d.id).
		SetCleanSession(true).SetOrderMatters(false).SetAutoReconnect(false).
		SetProtocolVersion(4).SetConnectTimeout(2*time.Second).SetWriteTimeout(2*time.Second).
		SetBinaryWill(d.topic("state"), will, 1, true).SetKeepAlive(30 * time.Second)
	if d.tlsCfg != nil {
		o.SetTLSConfig(d.tlsCfg)
	}
	if d.user != "" {
		o.SetUsername(d.user).SetPassword(d.pass)
	}
	o.SetCustomOpenConnectionFn(func(u *url.URL, co paho.ClientOptions) (net.Conn, error) {
		var c net.Conn
		var err error
		if u.Scheme == "ssl" {
			c, err = tls.Dial("tcp", u.Host, co.TLSConfig)
		} else {
			c, err = net.Dial("tcp", u.Host)
		}
		if err == nil {
			d.mu.Lock()
			d.raw = c
			d.mu.Unlock()
		}
		return c, err
	})
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("connect: %v", tok.Error())
	}
	if tok := c.Subscribe(d.topic("cmd"), 1, d.onCommand); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	d.mu.Lock()
	d.c = c
	d.mu.Unlock()
	if !d.noState {
		st, _ := wire.MarshalState(&wire.State{Device: d.id, Online: true, Seq: seq, Firmware: "test-1.0"})
		if err := d.publish(d.topic("state"), st, 1, true); err != nil {
			return err
		}
	}
	return nil
}

func (d *testDevice) onCommand(_ paho.Client, m paho.Message) {
	env, err := wire.Unmarshal(m.Payload())
	if err != nil || env.Command == nil {
		d.t.Errorf("device %s: bad command: %v", d.id, err)
		return
	}
	cmd := env.Command
	d.mu.Lock()
	d.cmds = append(d.cmds, *cmd)
	answer := d.answer
	d.mu.Unlock()
	topic := d.topic("reply")
	if cmd.ReplyTo != "" {
		topic = d.prefix + "/bridge/" + cmd.ReplyTo + "/reply/" + d.id
	}
	for _, r := range answer(cmd) {
		r.Device = d.id
		b, err := wire.MarshalReply(&r)
		if err != nil {
			d.t.Errorf("device %s: %v", d.id, err)
			return
		}
		_ = d.publish(topic, b, 1, false)
	}
}

func (d *testDevice) client() paho.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.c
}

func (d *testDevice) publish(topic string, payload []byte, qos byte, retained bool) error {
	tok := d.client().Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("publish timeout")
	}
	return tok.Error()
}

// Telemetry sends one telemetry message and returns its Seq.
func (d *testDevice) Telemetry(values map[string]any) uint64 {
	seq := d.telSeq.Add(1)
	b, err := wire.MarshalTelemetry(&wire.Telemetry{Device: d.id, Seq: seq, Values: values})
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.publish(d.topic("telemetry"), b, 0, false); err != nil {
		d.t.Errorf("device %s telemetry: %v", d.id, err)
	}
	return seq
}

func (d *testDevice) Commands() []wire.Command {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]wire.Command(nil), d.cmds...)
}

// Kill drops the connection without DISCONNECT: the broker sends the will.
func (d *testDevice) Kill() {
	d.mu.Lock()
	raw, c := d.raw, d.c
	d.c = nil
	d.mu.Unlock()
	if raw != nil {
		_ = raw.Close()
	}
	if c != nil {
		c.Disconnect(50) // stops paho; its DISCONNECT cannot be written any more
	}
}

// Reconnect connects again (after a Kill or a broker restart), retrying for
// a few seconds.
func (d *testDevice) Reconnect() {
	d.t.Helper()
	if c := d.client(); c != nil {
		c.Disconnect(0)
	}
	var err error
	for i := 0; i < 100; i++ {
		if err = d.connect(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("device %s: reconnect: %v", d.id, err)
}

func (d *testDevice) Close() {
	if c := d.client(); c != nil {
		c.Disconnect(50)
	}
}

// ---- bridges ----------------------------------------------------------------

func newBridge(t testing.TB, opts Options, eps ...string) (*Transport, *fakeSink, *logBuf) {
	t.Helper()
	lb := &logBuf{t: t}
	if opts.Logf == nil {
		opts.Logf = lb.logf
	}
	if opts.BridgeID == "" {
		opts.BridgeID = "b1"
	}
	if opts.PublishTimeout == 0 {
		opts.PublishTimeout = 3 * time.Second
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 3 * time.Second
	}
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var list []transports.Endpoint
	for _, id := range eps {
		list = append(list, transports.Endpoint{DeviceID: id})
	}
	if err := tr.SetEndpoints(list); err != nil {
		t.Fatal(err)
	}
	s := sinkFor(t)
	if err := tr.Start(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr, s, lb
}

func (t *Transport) remoteInterest(dev, bridge string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remote[dev][bridge]
}

func (t *Transport) bridgeOnline(b string) (online, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.bridges[b]
	return i.online, ok
}

func waitUntil(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// spy subscribes a plain client to filter and records what arrives.
type spy struct {
	mu   sync.Mutex
	msgs []paho.Message
	c    paho.Client
}

func newSpy(t testing.TB, url, filter string, tc *tls.Config) *spy {
	t.Helper()
	s := &spy{}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("spy-%d", time.Now().UnixNano())).
		SetOrderMatters(false).SetAutoReconnect(false).SetProtocolVersion(4)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	s.c = paho.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("spy connect: %v", tok.Error())
	}
	if tok := s.c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("spy subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { s.c.Disconnect(50) })
	return s
}

func (s *spy) got() []paho.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]paho.Message(nil), s.msgs...)
}

// nextSink, when set, is the sink newBridge uses (tests that script it).
var nextSink sync.Map // testing.TB → *fakeSink

func sinkFor(t testing.TB) *fakeSink {
	if s, ok := nextSink.LoadAndDelete(t); ok {
		return s.(*fakeSink)
	}
	return &fakeSink{}
}
