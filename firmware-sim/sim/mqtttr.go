package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt/rttrace"
)

// mqttTr is an MQTT device's connection (docs/protocol.md §6.2): one paho
// client per connection, client id = device id, a last will state{online:
// false} with seq s+1, the retained online state with seq s =
// boot<<32 | n (n = 0, 2, 4... within a boot).
type mqttTr struct {
	d *Device
	s *Sim

	kick chan struct{}

	mu        sync.Mutex
	client    paho.Client
	conn      net.Conn
	up        bool
	want      bool
	connN     uint64
	holdUntil time.Time
	drop      chan struct{} // closed to drop the current connection uncleanly
	nvmDone   bool
}

func newMQTTTr(d *Device) *mqttTr {
	return &mqttTr{d: d, s: d.s, kick: make(chan struct{}, 1), want: true}
}

func (m *mqttTr) where() (bool, string, string) { return true, "", "" }

func (m *mqttTr) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *mqttTr) start(ctx context.Context) error {
	rttrace.SetName("sim")
	m.s.goSafe(m.d.spec.ID+" mqtt", func() { m.run(ctx) })
	return nil
}

func (m *mqttTr) close() {}

func (m *mqttTr) goOffline() {
	m.mu.Lock()
	m.want = false
	m.dropLocked()
	m.mu.Unlock()
	m.poke()
}

func (m *mqttTr) goOnline() {
	m.mu.Lock()
	m.want = true
	m.mu.Unlock()
	m.poke()
}

func (m *mqttTr) reboot() {
	m.mu.Lock()
	m.connN = 0
	m.holdUntil = time.Now().Add(DefaultBootDelay)
	m.dropLocked()
	m.mu.Unlock()
	m.poke()
}

func (m *mqttTr) dropLocked() {
	if m.drop != nil {
		close(m.drop)
		m.drop = nil
	}
}

// sleep waits d, or until kicked or ctx ends.
func (m *mqttTr) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-m.kick:
	case <-t.C:
	}
}

func (m *mqttTr) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		m.mu.Lock()
		want, hold := m.want, time.Until(m.holdUntil)
		m.mu.Unlock()
		if !want {
			m.sleep(ctx, time.Hour)
			continue
		}
		if hold > 0 {
			m.sleep(ctx, hold)
			continue
		}
		err := m.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.s.logf("%s mqtt: %v; retrying in %v", m.d.spec.ID, err, backoff)
			m.sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

var errRestart = errors.New("restart")

// session runs one connection until it is lost, dropped or ctx ends.
func (m *mqttTr) session(ctx context.Context) error {
	d := m.d
	id := d.spec.ID
	boot := d.Boot()
	m.mu.Lock()
	n := m.connN
	m.connN += 2
	drop := make(chan struct{})
	m.drop = drop
	m.mu.Unlock()
	seq := boot<<32 | n

	will, err := wire.MarshalState(&wire.State{Device: id, Online: false, Seq: seq + 1})
	if err != nil {
		return err
	}
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker(m.s.brokerURL).
		SetClientID(id).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(10*time.Second).
		SetPingTimeout(5*time.Second).
		SetConnectTimeout(5*time.Second).
		SetWriteTimeout(5*time.Second).
		SetOrderMatters(true).
		SetBinaryWill(d.topic("state"), will, 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		}).
		SetCustomOpenConnectionFn(func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
			c, err := dialBroker(u, o)
			if err == nil {
				c = rttrace.Conn(c, rttrace.SimWrote) // c itself when the trace is off
				m.mu.Lock()
				m.conn = c
				m.mu.Unlock()
			}
			return c, err
		})
	if d.spec.Username != "" {
		opts.SetUsername(d.spec.Username).SetPassword(d.spec.Password)
	}
	c := paho.NewClient(opts)
	if err := waitToken(ctx, c.Connect(), 10*time.Second); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("connect to %s: %w", m.s.brokerURL, err)
	}
	// Emulated non-volatile memory: on an external broker, a previous run
	// of this device may have left a retained state with a higher seq;
	// continue its boot counter so that our states are not taken as stale.
	m.mu.Lock()
	check := !m.nvmDone && !m.s.embedded
	m.nvmDone = true
	m.mu.Unlock()
	if check {
		if prev := m.retainedSeq(ctx, c); prev>>32 >= boot {
			d.mu.Lock()
			d.bootBase += prev>>32 - boot + 1
			d.mu.Unlock()
			m.mu.Lock()
			m.connN = 0
			m.mu.Unlock()
			c.Disconnect(100) // clean: cancels the will with the old seq
			return nil        // reconnect at once with the new boot counter
		}
	}
	if err := waitToken(ctx, c.Subscribe(d.topic("cmd"), 1, m.onMessage), 10*time.Second); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("subscribe: %w", err)
	}
	online, err := wire.MarshalState(&wire.State{Device: id, Online: true, Seq: seq,
		Firmware: Firmware, Profile: d.prof.Name, ProfileVersion: d.prof.Version})
	if err != nil {
		c.Disconnect(0)
		return err
	}
	if err := waitToken(ctx, c.Publish(d.topic("state"), 1, true, online), 10*time.Second); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("publish online state: %w", err)
	}
	m.mu.Lock()
	m.client, m.up = c, true
	m.mu.Unlock()
	d.setOnline(true)

	down := func() {
		m.mu.Lock()
		m.up = false
		m.client = nil
		m.mu.Unlock()
		d.setOnline(false)
	}
	select {
	case err := <-lost:
		down()
		c.Disconnect(0)
		return fmt.Errorf("connection lost: %w", err)
	case <-ctx.Done():
		// Clean shutdown (§6.2.5): offline state with seq s+1, then DISCONNECT.
		down()
		if off, err := wire.MarshalState(&wire.State{Device: id, Online: false, Seq: seq + 1}); err == nil {
			tctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = waitToken(tctx, c.Publish(d.topic("state"), 1, true, off), time.Second)
			cancel()
		}
		c.Disconnect(250)
		return nil
	case <-drop:
		// Unclean: close the socket without DISCONNECT; the broker
		// publishes the last will.
		down()
		m.mu.Lock()
		conn := m.conn
		m.conn = nil
		m.mu.Unlock()
		if conn != nil {
			_ = conn.Close()
		}
		// paho takes a locally closed socket as a normal end (no
		// connection-lost callback); its DISCONNECT cannot reach the
		// broker any more, this only stops the client.
		c.Disconnect(0)
		return nil
	}
}

// retainedSeq reads the device's own retained state, if any, within a short
// time, and returns its seq (0 if none).
func (m *mqttTr) retainedSeq(ctx context.Context, c paho.Client) uint64 {
	got := make(chan uint64, 1)
	topic := m.d.topic("state")
	tok := c.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) {
		defer m.s.recoverLog("retained state handler")
		if env, err := wire.Unmarshal(msg.Payload()); err == nil && env.State != nil {
			select {
			case got <- env.State.Seq:
			default:
			}
		}
	})
	if waitToken(ctx, tok, 5*time.Second) != nil {
		return 0
	}
	var seq uint64
	t := time.NewTimer(300 * time.Millisecond)
	select {
	case seq = <-got:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	_ = waitToken(ctx, c.Unsubscribe(topic), 5*time.Second)
	return seq
}

func (m *mqttTr) onMessage(_ paho.Client, msg paho.Message) {
	defer m.s.recoverLog(m.d.spec.ID + " command handler")
	var at int64
	if rttrace.On() {
		at = rttrace.Now()
	}
	env, err := wire.Unmarshal(msg.Payload())
	if err != nil {
		m.d.badInput("undecodable payload on %s: %v", msg.Topic(), err)
		return
	}
	if env.Kind != wire.KindCommand {
		m.d.badInput("%s envelope on the command topic", env.Kind)
		return
	}
	if dev := env.Command.Device; dev != "" && dev != m.d.spec.ID {
		m.d.badInput("command #%d names device %q", env.Command.ID, dev)
		return
	}
	if rttrace.On() {
		rttrace.StampAt(rttrace.SimHandler, env.Command.ID, at)
		rttrace.Stamp(rttrace.SimDecoded, env.Command.ID)
	}
	id := env.Command.ID
	m.d.onCommand(env.Command)
	rttrace.Stamp(rttrace.SimQueued, id)
	// A reply onCommand queued made the device's sender runnable on this
	// thread: yield so that it publishes now, as firmware answering from
	// its handler would, rather than after paho's PUBACK for the command
	// (this handler runs in paho's router goroutine: OrderMatters).
	runtime.Gosched()
}

func (m *mqttTr) deliver(ctx context.Context, msg outMsg) error {
	m.mu.Lock()
	c, up := m.client, m.up
	m.mu.Unlock()
	if !up || c == nil {
		return errOffline
	}
	var id uint64
	if rttrace.On() && msg.env != nil && msg.env.Reply != nil {
		id = msg.env.Reply.ID
		rttrace.Stamp(rttrace.SimDeliver, id)
	}
	payload := msg.raw
	if msg.env != nil {
		var err error
		if payload, err = wire.Marshal(msg.env); err != nil {
			return err
		}
	}
	rttrace.Stamp(rttrace.SimPublish, id)
	tok := c.Publish(msg.topic, msg.qos, false, payload)
	rttrace.Stamp(rttrace.SimPublished, id)
	return waitToken(ctx, tok, 5*time.Second)
}

// waitToken waits for a paho token, ctx or a timeout.
func waitToken(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("timed out")
	}
}

// dialBroker opens the network connection for paho, so that the simulator
// can later close it without DISCONNECT.
func dialBroker(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: o.ConnectTimeout}
	switch u.Scheme {
	case "tcp", "mqtt":
		return dialer.Dial("tcp", u.Host)
	case "ssl", "tls", "mqtts", "tcps":
		cfg := o.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{}
		}
		return tls.DialWithDialer(dialer, "tcp", u.Host, cfg)
	case "unix":
		if u.Host != "" {
			return dialer.Dial("unix", u.Host)
		}
		return dialer.Dial("unix", u.Path)
	}
	return nil, fmt.Errorf("broker URL scheme %q not supported by the simulator (tcp, mqtt, ssl, tls, mqtts, unix)", u.Scheme)
}

func (s *Sim) recoverLog(where string) {
	if r := recover(); r != nil {
		s.errorf("panic in %s (recovered): %v\n%s", where, r, debug.Stack())
	}
}
