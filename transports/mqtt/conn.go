package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt/rttrace"
)

// connection is one MQTT session (one paho client). A new one is made for
// every attempt: paho's own reconnect loop sleeps without a way to stop it,
// so the supervisor reconnects itself and Close never waits on a sleep.
type connection struct {
	c    paho.Client
	gen  uint64
	seq  uint64   // Seq of this connection's online state; the last will has seq+1
	raw  net.Conn // the network connection under paho (nil for a failed attempt)
	url  string   // the broker connected to
	lost chan struct{}
	once sync.Once
	err  error // why it was lost; read after lost is closed
}

func (cn *connection) markLost(err error) {
	cn.once.Do(func() {
		if err == nil {
			err = errors.New("connection closed")
		}
		cn.err = err
		close(cn.lost)
	})
}

var (
	errStopping = errors.New("transport closing")
	errLost     = errors.New("connection lost")
)

// backoff yields growing waits with jitter, capped.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	// ±20% so that bridges and devices do not retry in step
	j := time.Duration(rand.Int64N(int64(b.cur)/5+1)) - b.cur/10
	return b.cur + j
}

func (b *backoff) reset() { b.cur = 0 }

// supervise connects, keeps the connection, reconnects with backoff (capped
// at 10 s) and says goodbye when Close is called. A panic in it is logged,
// the connection (if any) dropped, and it starts again a second later.
func (t *Transport) supervise() {
	defer close(t.supDone)
	for !t.superviseSafe() {
		if !t.sleep(time.Second) {
			return
		}
	}
}

// superviseSafe runs the supervisor until Close; false if it panicked.
func (t *Transport) superviseSafe() (stopped bool) {
	defer func() {
		if r := recover(); r != nil {
			t.log.printf(LevelError, "recovered panic in connection supervisor (restarting it): %v\n%s", r, debug.Stack())
			t.mu.Lock()
			cn := t.conn
			t.conn = nil
			t.mu.Unlock()
			if cn != nil {
				t.drop(cn)
				t.link(false, "internal error in the connection supervisor; reconnecting")
			}
			stopped = false
		}
	}()
	t.superviseLoop()
	return true
}

func (t *Transport) superviseLoop() {
	bo := backoff{min: 250 * time.Millisecond, max: 10 * time.Second}
	lastDetail := ""
	for {
		select {
		case <-t.stop:
			return
		default:
		}
		t.gen++ // connection generations stay unique across a restart after a panic
		t.fault("mqtt.supervisor")
		cn, err := t.connect(t.gen)
		if errors.Is(err, errStopping) {
			if cn != nil {
				t.goodbye(cn)
			}
			return
		}
		if err != nil {
			detail, level := t.describe(err)
			if detail != lastDetail {
				t.log.printf(level, "%s", detail)
				t.link(false, detail)
				lastDetail = detail
			} else {
				t.log.printf(LevelDebug, "%s (again)", detail)
			}
			if !t.sleep(bo.next()) {
				return
			}
			continue
		}
		t.mu.Lock()
		t.conn = cn
		t.mu.Unlock()
		detail := "connected to " + cn.url + " as " + t.opts.ClientID
		t.log.printf(LevelInfo, "%s (bridge %s, topics %s/...)", detail, t.opts.BridgeID, t.opts.TopicPrefix)
		t.link(true, detail)
		lastDetail = ""
		notify(t.kick)
		began := time.Now()
		select {
		case <-cn.lost:
			t.mu.Lock()
			t.conn = nil
			t.mu.Unlock()
			detail := fmt.Sprintf("connection to %s lost: %v", cn.url, cn.err)
			t.log.printf(LevelWarn, "%s; reconnecting", detail)
			t.link(false, detail)
			lastDetail = detail
			if time.Since(began) > 30*time.Second {
				bo.reset()
			}
			if !t.sleep(bo.next()) {
				return
			}
		case <-t.stop:
			t.mu.Lock()
			t.conn = nil
			t.mu.Unlock()
			t.goodbye(cn)
			return
		}
	}
}

// sleep waits d; false if Close was called meanwhile.
func (t *Transport) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.stop:
		return false
	}
}

// connect makes one connection attempt: connect, subscribe, publish the
// bridge's online state. With errStopping, a non-nil connection is
// connected and needs a goodbye.
func (t *Transport) connect(gen uint64) (*connection, error) {
	cn := &connection{gen: gen, seq: t.nextSeq(), lost: make(chan struct{})}
	will, err := t.codec.Marshal(&wire.Envelope{Kind: wire.KindState, State: &wire.State{Device: t.opts.BridgeID, Online: false, Seq: cn.seq + 1, Firmware: "mesibo-iot"}})
	if err != nil {
		return nil, err
	}
	online, err := t.codec.Marshal(&wire.Envelope{Kind: wire.KindState, State: &wire.State{Device: t.opts.BridgeID, Online: true, Seq: cn.seq, Firmware: "mesibo-iot"}})
	if err != nil {
		return nil, err
	}
	o := paho.NewClientOptions()
	for _, b := range t.brokers {
		o.AddBroker(b)
	}
	o.SetClientID(t.opts.ClientID)
	if t.opts.Username != "" {
		o.SetUsername(t.opts.Username)
		o.SetPassword(t.opts.Password)
	}
	o.SetProtocolVersion(4) // 3.1.1, no fallback to 3.1 (that would dial twice)
	o.SetCleanSession(true)
	o.SetOrderMatters(false)
	o.SetAutoReconnect(false) // the supervisor reconnects
	o.SetConnectRetry(false)
	o.SetStore(paho.NewMemoryStore())
	o.SetKeepAlive(t.opts.Keepalive)
	o.SetPingTimeout(min(t.opts.Keepalive, 10*time.Second))
	o.SetConnectTimeout(t.opts.ConnectTimeout)
	o.SetWriteTimeout(t.opts.PublishTimeout)
	if t.tls != nil {
		o.SetTLSConfig(t.tls)
	}
	o.SetBinaryWill(t.tp.bridgeState(t.opts.BridgeID), will, 1, true)
	o.SetDefaultPublishHandler(t.onMessage)
	o.SetConnectionLostHandler(func(_ paho.Client, err error) { cn.markLost(err) })
	o.SetCustomOpenConnectionFn(t.openConn)
	cn.c = paho.NewClient(o)

	tok := cn.c.Connect()
	select {
	case <-tok.Done():
	case <-t.stop:
		t.abortDial()
		if !waitDone(tok, t.opts.ConnectTimeout*time.Duration(len(t.brokers))+2*time.Second) || tok.Error() != nil {
			t.takeDialed(cn)
			return nil, errStopping
		}
		t.takeDialed(cn)
		return cn, errStopping
	}
	t.takeDialed(cn)
	if err := tok.Error(); err != nil {
		return nil, err
	}
	sub := cn.c.SubscribeMultiple(t.tp.subscriptions(), nil)
	if err := t.waitToken(sub, cn); err != nil {
		if errors.Is(err, errStopping) {
			return cn, err
		}
		t.drop(cn)
		return nil, fmt.Errorf("subscribing at %s: %w", cn.url, err)
	}
	if st, ok := sub.(*paho.SubscribeToken); ok {
		for filter, code := range st.Result() {
			if code >= 0x80 {
				t.log.printf(LevelError, "the broker refused the subscription to %s (code %#x): check the ACL of user %q; the bridge misses those messages", filter, code, t.opts.Username)
			}
		}
	}
	pub := cn.c.Publish(t.tp.bridgeState(t.opts.BridgeID), 1, true, online)
	if err := t.waitToken(pub, cn); err != nil {
		if errors.Is(err, errStopping) {
			return cn, err
		}
		t.drop(cn)
		return nil, fmt.Errorf("publishing the bridge state at %s: %w", cn.url, err)
	}
	return cn, nil
}

// nextSeq returns a Seq above every one this bridge used, from the clock so
// that a restarted bridge goes above its previous life's last will.
func (t *Transport) nextSeq() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := uint64(time.Now().UnixMicro())
	if s <= t.lastSeq+1 {
		s = t.lastSeq + 2
	}
	t.lastSeq = s + 1
	return s
}

// waitToken waits for tok until the publish timeout, the loss of cn, or Close.
func (t *Transport) waitToken(tok paho.Token, cn *connection) error {
	timer := time.NewTimer(t.opts.PublishTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-cn.lost:
		return errLost
	case <-t.stop:
		return errStopping
	case <-timer.C:
		return fmt.Errorf("no answer from the broker within %v (mqtt_publish_timeout)", t.opts.PublishTimeout)
	}
}

func waitDone(tok paho.Token, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-tok.Done():
		return true
	case <-timer.C:
		return false
	}
}

// drop ends cn without a DISCONNECT, so that the broker publishes the last
// will. (paho ignores a connection closed under it; Disconnect then stops
// its goroutines, its DISCONNECT packet can no longer be written.)
func (t *Transport) drop(cn *connection) {
	if cn.raw != nil {
		_ = cn.raw.Close()
	}
	cn.c.Disconnect(250)
}

// goodbye clears this bridge's interest topics, publishes its offline state
// and disconnects, within a few seconds.
func (t *Transport) goodbye(cn *connection) {
	if t.crashForTest {
		t.drop(cn)
		return
	}
	timeout := min(t.opts.PublishTimeout, 3*time.Second)
	var toks []paho.Token
	t.mu.Lock()
	if t.pubGen == cn.gen {
		for dev := range t.published {
			toks = append(toks, cn.c.Publish(t.tp.interest(t.opts.BridgeID, dev), 1, true, []byte{}))
		}
		t.published = map[string]bool{}
	}
	t.mu.Unlock()
	off, err := t.codec.Marshal(&wire.Envelope{Kind: wire.KindState, State: &wire.State{Device: t.opts.BridgeID, Online: false, Seq: cn.seq + 1, Firmware: "mesibo-iot"}})
	if err == nil {
		toks = append(toks, cn.c.Publish(t.tp.bridgeState(t.opts.BridgeID), 1, true, off))
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
wait:
	for _, tok := range toks {
		select {
		case <-tok.Done():
		case <-cn.lost:
			break wait
		case <-deadline.C:
			t.log.printf(LevelWarn, "closing: the broker did not acknowledge the offline state within %v; its last will says it instead", timeout)
			break wait
		}
	}
	cn.c.Disconnect(250)
	t.log.printf(LevelInfo, "disconnected from %s", cn.url)
}

// openConn dials a broker for paho. The dial stops when Close is called, and
// the connection is remembered until the MQTT handshake is over so that Close
// can abort the handshake too.
func (t *Transport) openConn(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(t.dialCtx, o.ConnectTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	switch u.Scheme {
	case "tcp", "mqtt":
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	case "ssl", "tls", "mqtts", "tcps":
		d := tls.Dialer{Config: o.TLSConfig}
		if conn, err = d.DialContext(ctx, "tcp", u.Host); err != nil {
			err = &handshakeError{err}
		}
	case "ws", "wss":
		var tc *tls.Config
		if u.Scheme == "wss" {
			tc = o.TLSConfig
		}
		conn, err = paho.NewWebsocket(u.String(), tc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	default:
		err = fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	t.dialMu.Lock()
	defer t.dialMu.Unlock()
	if t.stopping {
		_ = conn.Close()
		return nil, errStopping
	}
	if t.dialing != nil {
		_ = t.dialing.Close() // an earlier broker of the list that failed the handshake
	}
	conn = rttrace.Conn(conn, rttrace.BrWrote) // conn itself when the trace is off
	conn = newBufConn(conn)                    // one read system call for many packets, not three a packet
	t.dialing = conn
	t.dialURL = u.Redacted()
	return conn, nil
}

// takeDialed moves the connection just set up to cn.
func (t *Transport) takeDialed(cn *connection) {
	t.dialMu.Lock()
	defer t.dialMu.Unlock()
	cn.raw, cn.url = t.dialing, t.dialURL
	t.dialing = nil
	if cn.url == "" {
		cn.url = strings.Join(t.brokers, ",")
	}
}

// describe turns a connection failure into one clear log line and the
// level to log it at.
func (t *Transport) describe(err error) (string, int) {
	where := strings.Join(t.brokers, ", ")
	// paho prefixes network errors with "network Error : "
	msg := strings.TrimPrefix(err.Error(), packets.ErrorNetworkError.Error()+" : ")
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	var ne net.Error
	var hs *handshakeError
	switch {
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return fmt.Sprintf("cannot connect to %s: the broker refused the connection: not authorized; check mqtt_username and mqtt_password (and the broker's password file / ACL)", where), LevelError
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return fmt.Sprintf("cannot connect to %s: the broker refused the connection: bad user name or password (not authorized); check mqtt_username and mqtt_password", where), LevelError
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Sprintf("cannot connect to %s: the broker rejected client id %q; set mqtt_client_id", where, t.opts.ClientID), LevelError
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return fmt.Sprintf("cannot connect to %s: the broker does not speak MQTT 3.1.1", where), LevelError
	case errors.As(err, &ua):
		return fmt.Sprintf("cannot connect to %s: %v; the broker's certificate is not signed by a trusted CA: set mqtt_ca_file to the CA that signed it", where, msg), LevelError
	case errors.As(err, &hn):
		return fmt.Sprintf("cannot connect to %s: %v; use the host name the broker's certificate names in mqtt_broker", where, msg), LevelError
	case errors.As(err, &ci), errors.As(err, &ve):
		return fmt.Sprintf("cannot connect to %s: %v; check the broker's certificate, mqtt_ca_file and the clock", where, msg), LevelError
	case errors.As(err, &rec):
		return fmt.Sprintf("cannot connect to %s: %v; the port may not speak TLS: use tcp:// or the broker's TLS port", where, msg), LevelError
	case isTLSAlert(err):
		return fmt.Sprintf("cannot connect to %s: %v; the broker refused the TLS handshake: it may require a client certificate (mqtt_cert_file, mqtt_key_file) or reject the one given", where, msg), LevelError
	case errors.As(err, &hs) && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)):
		return fmt.Sprintf("cannot connect to %s: %s; the broker closed the connection during the TLS handshake: the port may not speak TLS (use tcp:// or the broker's TLS port), or the broker refused the handshake", where, msg), LevelError
	case t.tls != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF)):
		return fmt.Sprintf("cannot connect to %s: %s; the broker closed the connection during or right after the TLS handshake: it may require a client certificate (mqtt_cert_file, mqtt_key_file) or refuse the one given; the broker's log says why", where, msg), LevelError
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("cannot connect to %s: connection refused; is the broker running and listening there?", where), LevelWarn
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("cannot connect to %s: %v (timeout %v)", where, msg, t.opts.ConnectTimeout), LevelWarn
	}
	return fmt.Sprintf("cannot connect to %s: %v", where, msg), LevelWarn
}

func isTLSAlert(err error) bool {
	return strings.Contains(err.Error(), "remote error: tls:")
}

// handshakeError marks a failure of the TLS dial (TCP connect or handshake).
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }
