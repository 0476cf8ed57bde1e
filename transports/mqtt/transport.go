package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt/rttrace"
)

// Reasons passed to Sink.Dropped (wrapped with detail; match with errors.Is).
// Oversize payloads are reported with wire.ErrTooLarge and undecodable ones
// with the wire error (wire.ErrMalformed, wire.ErrVersion, ...).
var (
	// ErrSpoofed: the payload names another device than the topic it came on.
	ErrSpoofed = errors.New("payload names another device than its topic")
	// ErrNotEndpoint: the topic's device is not in the devices file for the
	// mqtt transport.
	ErrNotEndpoint = errors.New("device is not in the devices file for the mqtt transport")
	// ErrWrongKind: the envelope is not of the kind the topic carries.
	ErrWrongKind = errors.New("wrong envelope kind for the topic")
	// ErrQueueFull: telemetry arrived faster than the core takes it.
	ErrQueueFull = errors.New("inbound queue full")
)

const (
	numShards  = 4   // inbound workers; a device always goes to the same one
	shardQueue = 128 // messages waiting per worker
)

// Transport is the MQTT transport. Create it with New.
type Transport struct {
	opts  Options
	tp    topics
	codec *wire.Codec
	tls   *tls.Config
	log   logger

	mu         sync.Mutex
	started    bool
	closed     bool
	sink       transports.Sink
	endpoints  map[string]bool
	conn       *connection // the live connection; nil while down
	presSeq    map[string]uint64
	presOnline map[string]bool
	want       map[string]bool            // devices with watchers on this bridge (SetInterest)
	published  map[string]bool            // interest topics set on the broker during connection pubGen
	pubGen     uint64                     // connection generation published describes
	staleOwn   map[string]bool            // our interest topics on the broker that we do not want
	remote     map[string]map[string]bool // device → other bridge → has watchers
	bridges    map[string]bridgeInfo      // other bridges' last state
	lastSeq    uint64                     // last bridge state Seq used

	brokers []string // URLs connected to (the embedded broker's when Embedded)
	broker  *Broker  // the embedded broker, if started

	ctx     context.Context // cancelled by Close once the supervisor has stopped
	cancel  context.CancelFunc
	stop    chan struct{} // closed by Close: the supervisor says goodbye and returns
	supDone chan struct{} // closed when the supervisor returned
	wg      sync.WaitGroup
	shards  []chan inbound
	kick    chan struct{} // maintenance: bring interest topics up to date
	resub   chan struct{} // maintenance: subscribe to device states again

	dialMu   sync.Mutex
	stopping bool
	dialing  net.Conn // a connection being set up (closed by Close to abort it)
	dialURL  string   // broker of the last successful dial
	dialCtx  context.Context
	dialStop context.CancelFunc

	crashForTest bool   // Close without goodbye: the broker sends our last will
	gen          uint64 // last connection generation (the supervisor's)
}

type bridgeInfo struct {
	online bool
	seq    uint64
}

// New checks opts, loads the TLS files and returns a transport that is not
// yet connected (see Start).
func New(opts Options) (*Transport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	codec, err := wire.NewCodec(wire.Limits{MaxMessage: o.MaxMessage})
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	t := &Transport{
		opts:       o,
		tp:         topics{prefix: o.TopicPrefix, bridge: o.BridgeID, share: o.ShareGroup},
		codec:      codec,
		log:        logger(o.Logf),
		endpoints:  map[string]bool{},
		presSeq:    map[string]uint64{},
		presOnline: map[string]bool{},
		want:       map[string]bool{},
		published:  map[string]bool{},
		staleOwn:   map[string]bool{},
		remote:     map[string]map[string]bool{},
		bridges:    map[string]bridgeInfo{},
		stop:       make(chan struct{}),
		supDone:    make(chan struct{}),
		kick:       make(chan struct{}, 1),
		resub:      make(chan struct{}, 1),
	}
	if needsTLS(o.Brokers) {
		if t.tls, err = o.tlsConfig(); err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
	} else if o.CAFile != "" || o.CertFile != "" {
		return nil, errors.New("mqtt: mqtt_ca_file / mqtt_cert_file are set but no broker URL uses TLS (ssl:// or wss://)")
	}
	rttrace.SetName("bridge")
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.dialCtx, t.dialStop = context.WithCancel(context.Background())
	for i := 0; i < numShards; i++ {
		t.shards = append(t.shards, make(chan inbound, shardQueue))
	}
	return t, nil
}

func needsTLS(brokers []string) bool {
	for _, b := range brokers {
		if len(b) >= 4 && (b[:4] == "ssl:" || b[:4] == "wss:") {
			return true
		}
	}
	return false
}

// Name implements transports.Transport.
func (t *Transport) Name() string { return "mqtt" }

// Kind implements transports.Transport.
func (t *Transport) Kind() string { return "mqtt" }

// BridgeID returns this bridge's id (from the options or the host name).
func (t *Transport) BridgeID() string { return t.opts.BridgeID }

// Options returns the options in force (defaults filled in).
func (t *Transport) Options() Options {
	o := t.opts
	o.Password = ""
	return o
}

// Start starts the embedded broker if configured, the workers and the
// connection supervisor, and returns; connecting happens in the background
// and is reported through sink.Link. ctx is not used after Start returns:
// Close stops the transport.
func (t *Transport) Start(ctx context.Context, sink transports.Sink) error {
	if sink == nil {
		return errors.New("mqtt: Start needs a Sink")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return transports.ErrClosed
	}
	if t.started {
		t.mu.Unlock()
		return errors.New("mqtt: already started")
	}
	t.started = true
	t.sink = sink
	t.mu.Unlock()

	brokers := t.opts.Brokers
	if t.opts.Embedded {
		var users map[string]string
		if t.opts.Username != "" {
			users = map[string]string{t.opts.Username: t.opts.Password}
		}
		b, err := StartBroker(context.Background(), BrokerOptions{Listen: t.opts.EmbeddedListen, Users: users, Logf: t.opts.Logf})
		if err != nil {
			return fmt.Errorf("mqtt: cannot start the embedded broker (mqtt_broker = embedded) on %s: %v; set mqtt_listen to a free address, or mqtt_broker to your broker's URL", t.opts.EmbeddedListen, err)
		}
		t.broker = b
		brokers = []string{"tcp://" + b.Addr()}
		if host, _, _ := net.SplitHostPort(b.Addr()); !isLoopback(host) && users == nil {
			t.log.printf(LevelWarn, "the embedded broker listens on %s without authentication: anyone who can reach it can command devices; set mqtt_username and mqtt_password or listen on 127.0.0.1", b.Addr())
		}
		t.log.printf(LevelInfo, "embedded broker listening on %s", b.Addr())
	}
	t.brokers = brokers
	for _, q := range t.shards {
		t.wg.Add(1)
		go t.worker(q)
	}
	t.wg.Add(1)
	go t.maintain()
	go t.supervise()
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SetEndpoints implements transports.Transport. Device ids must be valid
// topic levels (no '/', '+', '#').
func (t *Transport) SetEndpoints(eps []transports.Endpoint) error {
	m := make(map[string]bool, len(eps))
	for _, ep := range eps {
		if !validDeviceID(ep.DeviceID) {
			return fmt.Errorf("mqtt: device id %q cannot be an MQTT topic level: use 1 to 128 bytes without '/', '+', '#'", ep.DeviceID)
		}
		m[ep.DeviceID] = true
	}
	t.mu.Lock()
	added := false
	for id := range m {
		if !t.endpoints[id] {
			added = true
		}
	}
	t.endpoints = m
	live := t.conn != nil
	t.mu.Unlock()
	if added && live {
		// new devices: the broker sends their retained states again
		notify(t.resub)
	}
	return nil
}

// SetInterest implements transports.InterestSetter: deviceIDs have watchers
// on this bridge. With a share group, the bridge publishes its interest so
// that telemetry other bridges take for these devices is forwarded here.
func (t *Transport) SetInterest(deviceIDs []string) {
	m := make(map[string]bool, len(deviceIDs))
	for _, id := range deviceIDs {
		if validDeviceID(id) {
			m[id] = true
		}
	}
	t.mu.Lock()
	t.want = m
	t.mu.Unlock()
	if t.tp.share != "" {
		notify(t.kick)
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Send implements transports.Transport: it publishes cmd to the device's
// command topic at QoS 1 and waits for the broker's PUBACK, at most until
// ctx is done or the publish timeout. The caller's cmd is not modified; the
// published copy carries Device = dev and ReplyTo = this bridge.
func (t *Transport) Send(ctx context.Context, dev string, cmd *wire.Command) error {
	if cmd == nil {
		return errors.New("mqtt: nil command")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	closed, known, cn := t.closed, t.endpoints[dev], t.conn
	online, presKnown := t.presOnline[dev]
	t.mu.Unlock()
	if closed {
		return transports.ErrClosed
	}
	if !known {
		return fmt.Errorf("%w: %q is not an mqtt device in the devices file", transports.ErrUnknownDevice, dev)
	}
	c := *cmd
	c.Device = dev
	c.ReplyTo = t.opts.BridgeID
	payload, err := t.codec.Marshal(&wire.Envelope{Kind: wire.KindCommand, Command: &c})
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			return fmt.Errorf("%w: %v", transports.ErrTooLarge, err)
		}
		return fmt.Errorf("mqtt: cannot encode the command: %w", err)
	}
	if cn == nil {
		return fmt.Errorf("%w: not connected to the MQTT broker", transports.ErrOffline)
	}
	if presKnown && !online {
		return fmt.Errorf("%w: %s reported itself offline", transports.ErrOffline, dev)
	}
	rttrace.Stamp(rttrace.BrPublish, cmd.ID)
	tok := cn.c.Publish(t.tp.cmd(dev), 1, false, payload)
	rttrace.Stamp(rttrace.BrPublished, cmd.ID)
	timer := time.NewTimer(t.opts.PublishTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("%w: %v", transports.ErrOffline, err)
		}
		rttrace.Stamp(rttrace.BrPuback, cmd.ID)
		return nil
	case <-cn.lost:
		return fmt.Errorf("%w: connection to the broker lost", transports.ErrOffline)
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("%w: no PUBACK from the broker within %v", transports.ErrOffline, t.opts.PublishTimeout)
	case <-t.ctx.Done():
		return transports.ErrClosed
	}
}

// Close publishes the bridge's offline state, clears its interest topics,
// disconnects, stops every goroutine it started and waits for them, and
// stops the embedded broker. It may be called more than once.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	started := t.started
	t.mu.Unlock()

	close(t.stop)
	t.abortDial()
	var err error
	if started {
		// every wait of the supervisor has a timeout; only a Sink call that
		// never returns could hold it longer
		limit := t.opts.ConnectTimeout*time.Duration(len(t.brokers)+1) + t.opts.PublishTimeout + 10*time.Second
		if !waitChan(t.supDone, limit) {
			err = errors.New("mqtt: the connection supervisor did not stop: a Sink call is blocked")
			t.log.printf(LevelError, "%v", err)
		}
	}
	t.cancel()
	t.dialStop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.wg.Wait()
	}()
	if !waitChan(done, 10*time.Second) {
		err = errors.New("mqtt: inbound workers did not stop within 10s: a Sink call is blocked")
		t.log.printf(LevelError, "%v", err)
	}
	if t.broker != nil {
		_ = t.broker.Close()
	}
	return err
}

func waitChan(c <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c:
		return true
	case <-timer.C:
		return false
	}
}

// abortDial makes a connection attempt in progress fail at once.
func (t *Transport) abortDial() {
	t.dialMu.Lock()
	t.stopping = true
	if t.dialing != nil {
		_ = t.dialing.Close()
	}
	t.dialMu.Unlock()
	t.dialStop()
}

// Sink calls, each protected so that a panic in the core does not stop a
// worker.

func (t *Transport) getSink() transports.Sink {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sink
}

func (t *Transport) callSink(where string, f func(s transports.Sink)) {
	s := t.getSink()
	if s == nil {
		return
	}
	defer t.log.recoverLog("Sink." + where)
	f(s)
}

func (t *Transport) dropped(dev string, reason error) {
	if len(dev) > 64 {
		dev = dev[:64] + "…"
	}
	t.log.printf(LevelDebug, "dropped data from %q: %v", dev, reason)
	t.callSink("Dropped", func(s transports.Sink) { s.Dropped(dev, reason) })
}

func (t *Transport) link(up bool, detail string) {
	t.callSink("Link", func(s transports.Sink) { s.Link(t.Name(), up, detail) })
}
