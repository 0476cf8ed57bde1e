package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

var _ transports.Transport = (*Transport)(nil)
var _ transports.InterestSetter = (*Transport)(nil)

// ---- configuration ----------------------------------------------------------

func TestOptionsFromConfig(t *testing.T) {
	o, err := OptionsFromConfig(map[string]string{"serial_port": "/dev/ttyUSB0", "address": "iot"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Embedded || len(o.Brokers) != 0 {
		t.Errorf("default must be the embedded broker, got %+v", o)
	}
	full, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	fo := full.Options()
	if fo.EmbeddedListen != "127.0.0.1:1883" || fo.TopicPrefix != "mesibo-iot" || fo.MaxMessage != 64<<10 ||
		fo.Keepalive != 30*time.Second || fo.ClientID != "mesibo-iot-"+fo.BridgeID || !validID(fo.BridgeID) || fo.ShareGroup != "" {
		t.Errorf("defaults: %+v", fo)
	}
	_ = full.Close()

	o, err = OptionsFromConfig(map[string]string{
		"mqtt_broker": "ssl://broker.example:8883, tcp://backup.example", "mqtt_username": "bridge", "mqtt_password": "hunter2",
		"mqtt_keepalive": "15s", "mqtt_bridge_id": "edge-1", "mqtt_share_group": "bridges", "mqtt_topic_prefix": "site1/iot",
		"mqtt_max_message": "4096", "mqtt_insecure_skip_verify": "off", "mqtt_publish_timeout": "2s", "mqtt_connect_timeout": "3s",
		"MQTT_CLIENT_ID": "x-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ssl://broker.example:8883", "tcp://backup.example:1883"}
	if o.Embedded || fmt.Sprint(o.Brokers) != fmt.Sprint(want) || o.Username != "bridge" || o.Password != "hunter2" ||
		o.Keepalive != 15*time.Second || o.BridgeID != "edge-1" || o.ShareGroup != "bridges" || o.TopicPrefix != "site1/iot" ||
		o.MaxMessage != 4096 || o.PublishTimeout != 2*time.Second || o.ConnectTimeout != 3*time.Second || o.ClientID != "x-1" {
		t.Errorf("parsed: %+v", o)
	}

	bad := []struct {
		kv   map[string]string
		want []string
	}{
		{map[string]string{"mqtt_brokr": "tcp://x"}, []string{`"mqtt_brokr"`, "mqtt_broker,", "mqtt_share_group"}},
		{map[string]string{"mqtt_broker": "http://x"}, []string{"mqtt_broker", "tcp"}},
		{map[string]string{"mqtt_broker": "tcp://u:secretpw@x:1883"}, []string{"mqtt_broker", "mqtt_username"}},
		{map[string]string{"mqtt_keepalive": "1ms"}, []string{"mqtt_keepalive", "2s"}},
		{map[string]string{"mqtt_bridge_id": "a/b"}, []string{"mqtt_bridge_id", "letters"}},
		{map[string]string{"mqtt_topic_prefix": "a/#"}, []string{"mqtt_topic_prefix", "'#'"}},
		{map[string]string{"mqtt_topic_prefix": "$SYS"}, []string{"mqtt_topic_prefix", "'$'"}},
		{map[string]string{"mqtt_max_message": "10"}, []string{"mqtt_max_message", "256"}},
		{map[string]string{"mqtt_insecure_skip_verify": "maybe"}, []string{"mqtt_insecure_skip_verify", "on or off"}},
		{map[string]string{"mqtt_broker": "tcp://x", "mqtt_listen": "127.0.0.1:1"}, []string{"mqtt_listen", "embedded"}},
		{map[string]string{"mqtt_ca_file": "/ca.pem"}, []string{"mqtt_ca_file", "embedded"}},
		{map[string]string{"mqtt_broker": "ssl://x", "mqtt_cert_file": "/c.pem"}, []string{"mqtt_cert_file", "mqtt_key_file"}},
		{map[string]string{"mqtt_password": ""}, []string{"mqtt_password"}},
	}
	for _, c := range bad {
		_, err := OptionsFromConfig(c.kv)
		if err == nil {
			t.Errorf("%v: no error", c.kv)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", c.kv, err, w)
			}
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("error shows the password: %v", err)
		}
	}

	// files are read by New, with the key named
	o, _ = OptionsFromConfig(map[string]string{"mqtt_broker": "ssl://x:8883", "mqtt_ca_file": "/nonexistent/ca.pem"})
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "mqtt_ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
	if got := sanitiseID("my host.local/x"); got != "my-host.local-x" {
		t.Errorf("sanitiseID: %q", got)
	}
	if keys := ConfigKeys(); len(keys) != len(configKeys) || keys[0].Name != "mqtt_bridge_id" {
		t.Errorf("ConfigKeys: %v", keys)
	}
}

func TestTopics(t *testing.T) {
	tp := topics{prefix: "p/q", bridge: "B", share: "g"}
	cases := []struct {
		topic       string
		kind        inKind
		dev, bridge string
		handled     bool
	}{
		{"p/q/dev/d1/reply", inReply, "d1", "", true},
		{"p/q/dev/d1/telemetry", inTelemetry, "d1", "", true},
		{"p/q/dev/d1/state", inState, "d1", "", true},
		{"p/q/dev/d1/cmd", 0, "", "", false},
		{"p/q/bridge/B/reply/d1", inReply, "d1", "B", true},
		{"p/q/bridge/C/reply/d1", 0, "", "", false},
		{"p/q/bridge/B/telemetry/d1", inForwarded, "d1", "B", true},
		{"p/q/bridge/C/telemetry/d1", 0, "", "", false},
		{"p/q/bridge/C/interest/d1", inInterest, "d1", "C", true},
		{"p/q/bridge/C/state", inBridgeState, "", "C", true},
		{"other/dev/d1/reply", 0, "", "", false},
		{"p/q/dev//reply", 0, "", "", false},
		{"p/q/dev/d1/reply/x", 0, "", "", false},
	}
	for _, c := range cases {
		k, d, b, ok := tp.parse(c.topic)
		if ok != c.handled || k != c.kind || d != c.dev || b != c.bridge {
			t.Errorf("%s: got %v %q %q %v", c.topic, k, d, b, ok)
		}
	}
	if got := tp.subTelemetry(); got != "$share/g/p/q/dev/+/telemetry" {
		t.Errorf("shared telemetry filter %q", got)
	}
	if len(tp.subscriptions()) != 7 || len((topics{prefix: "p", bridge: "B"}).subscriptions()) != 4 {
		t.Errorf("subscriptions: %v", tp.subscriptions())
	}
}

// ---- the functional suite, on each broker -----------------------------------

type brokerMaker struct {
	name string
	make func(t *testing.T) testBroker
}

var brokerMakers = []brokerMaker{
	{"mosquitto", func(t *testing.T) testBroker { return startMosquitto(t, "tcp", "") }},
	{"embedded", func(t *testing.T) testBroker { return startEmbedded(t, BrokerOptions{}) }},
}

func forEachBroker(t *testing.T, f func(t *testing.T, br testBroker)) {
	for _, m := range brokerMakers {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f(t, m.make(t))
		})
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitOnline(t *testing.T, s *fakeSink, dev string, online bool, n int) event {
	t.Helper()
	evs := s.waitFor(t, fmt.Sprintf("presence %s online=%v", dev, online), "presence", func(evs []event) bool {
		c := 0
		for _, e := range evs {
			if e.dev == dev && e.pres.Online == online {
				c++
			}
		}
		return c >= n
	})
	var last event
	for _, e := range evs {
		if e.dev == dev && e.pres.Online == online {
			last = e
		}
	}
	return last
}

func repliesFor(s *fakeSink, id uint64) []event {
	var out []event
	for _, e := range s.all("reply") {
		if e.reply.ID == id {
			out = append(out, e)
		}
	}
	return out
}

func waitReplies(t *testing.T, s *fakeSink, id uint64, n int) []event {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%d replies to command %d", n, id), "reply", func([]event) bool { return len(repliesFor(s, id)) >= n })
	return repliesFor(s, id)
}

// TestRoundTrip: Send reaches the device with Device and ReplyTo set, and
// its replies (to the bridge's reply topic and to the device's own) reach
// the Sink attributed to the device.
func TestRoundTrip(t *testing.T) {
	forEachBroker(t, func(t *testing.T, br testBroker) {
		tr, sink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "rt"}, "d1")
		sink.waitLink(t, true, 1)
		dev := newTestDevice(t, br.URL(), "rt", "d1")
		waitOnline(t, sink, "d1", true, 1)
		cmd := &wire.Command{ID: 7, Verb: "ping", IdemKey: "alice/1", Args: map[string]any{"n": int64(3)}}
		if err := tr.Send(ctxT(t), "d1", cmd); err != nil {
			t.Fatal(err)
		}
		if cmd.Device != "" || cmd.ReplyTo != "" {
			t.Errorf("Send modified the caller's command: %+v", cmd)
		}
		rs := waitReplies(t, sink, 7, 2)
		for _, e := range rs {
			if e.dev != "d1" || e.reply.Device != "d1" {
				t.Errorf("reply attributed to %q: %+v", e.dev, e.reply)
			}
		}
		if rs[0].reply.Outcome != wire.OutcomeAccepted || rs[1].reply.Outcome != wire.OutcomeDone {
			t.Logf("replies arrived as %v, %v (order is not guaranteed with OrderMatters off)", rs[0].reply.Outcome, rs[1].reply.Outcome)
		}
		got := dev.Commands()
		if len(got) != 1 || got[0].ReplyTo != "b1" || got[0].Device != "d1" || got[0].Verb != "ping" || got[0].Args["n"] != int64(3) {
			t.Errorf("device got %+v", got)
		}
		// a reply without ReplyTo comes on the device's own reply topic
		b, _ := wire.MarshalReply(&wire.Reply{ID: 8, Device: "d1", Outcome: wire.OutcomeDone})
		if err := dev.publish("rt/dev/d1/reply", b, 1, false); err != nil {
			t.Fatal(err)
		}
		waitReplies(t, sink, 8, 1)
	})
}

// TestPresence: presence from a retained state published before the bridge
// started, from the last will when the device's connection dies, and again
// online after it reconnects; Send refuses a device that said it is offline.
func TestPresence(t *testing.T) {
	forEachBroker(t, func(t *testing.T, br testBroker) {
		dev := newTestDevice(t, br.URL(), "pr", "d1")
		tr, sink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "pr"}, "d1")
		on := waitOnline(t, sink, "d1", true, 1)
		// mochi acknowledges a publication before passing it on, so a bridge
		// that subscribes at once may get it live before the retained copy
		_, isMochi := br.(*embedded)
		if on.pres.Seq != 102 || on.pres.Firmware != "test-1.0" || (on.pres.Reason != "retained state" && !(isMochi && on.pres.Reason == "state")) {
			t.Errorf("retained presence: %+v", on.pres)
		}
		dev.Kill()
		off := waitOnline(t, sink, "d1", false, 1)
		if off.pres.Seq != 103 || !strings.Contains(off.pres.Reason, "last will") {
			t.Errorf("last will presence: %+v", off.pres)
		}
		if err := tr.Send(ctxT(t), "d1", &wire.Command{ID: 1, Verb: "ping"}); !errors.Is(err, transports.ErrOffline) {
			t.Errorf("Send to a device that is offline: %v", err)
		}
		dev.Reconnect()
		again := waitOnline(t, sink, "d1", true, 2)
		if again.pres.Seq != 104 || again.pres.Reason != "state" {
			t.Errorf("presence after reconnect: %+v", again.pres)
		}
		if err := tr.Send(ctxT(t), "d1", &wire.Command{ID: 2, Verb: "ping"}); err != nil {
			t.Errorf("Send after reconnect: %v", err)
		}
		waitReplies(t, sink, 2, 2)
		// presence reports are not repeated for the same Seq
		if n := len(sink.all("presence")); n != 3 {
			t.Errorf("%d presence reports, want 3: %s", n, describeEvents(sink.all("presence")))
		}
	})
}

// TestRetainedStateReportedAgainAfterReconnect: when the bridge's
// connection comes back, the retained state it gets on subscribing again is
// reported even with the Seq it already has (it tells the core that the
// device did not restart while the bridge was cut off); a live duplicate of
// the last state is not.
func TestRetainedStateReportedAgainAfterReconnect(t *testing.T) {
	forEachBroker(t, func(t *testing.T, br testBroker) {
		dev := newTestDevice(t, br.URL(), "ra", "d1")
		_, sink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "ra"}, "d1")
		first := waitOnline(t, sink, "d1", true, 1)
		dup, err := wire.MarshalState(&wire.State{Device: "d1", Online: true, Seq: first.pres.Seq, Firmware: first.pres.Firmware})
		must(t, err)
		must(t, dev.publish("ra/dev/d1/state", dup, 1, false))
		time.Sleep(300 * time.Millisecond)
		if n := len(sink.all("presence")); n != 1 {
			t.Fatalf("a live duplicate of the state was reported: %s", describeEvents(sink.all("presence")))
		}
		// a client with the bridge's client id makes the broker drop the
		// bridge, which connects and subscribes again
		o := paho.NewClientOptions().AddBroker(br.URL()).SetClientID("mesibo-iot-b1").SetAutoReconnect(false)
		intruder := paho.NewClient(o)
		if tok := intruder.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("intruder: %v", tok.Error())
		}
		intruder.Disconnect(0)
		sink.waitLink(t, false, 1)
		sink.waitLink(t, true, 2)
		again := waitOnline(t, sink, "d1", true, 2)
		if again.pres.Seq != first.pres.Seq || again.pres.Reason != "retained state" {
			t.Fatalf("after the reconnection: %+v, want the retained state with seq %d again", again.pres, first.pres.Seq)
		}
	})
}

// TestTelemetryAndDrops: telemetry reaches the Sink; spoofed, undecodable,
// oversize, wrong-kind and unknown-device messages are dropped and reported
// with their reason, and never reach Telemetry or Reply.
func TestTelemetryAndDrops(t *testing.T) {
	forEachBroker(t, func(t *testing.T, br testBroker) {
		_, sink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "tl", MaxMessage: 1024}, "d1", "d2")
		sink.waitLink(t, true, 1)
		dev := newTestDevice(t, br.URL(), "tl", "d1")
		waitOnline(t, sink, "d1", true, 1)
		seq := dev.Telemetry(map[string]any{"temp": 21.5, "ok": true})
		evs := sink.waitFor(t, "telemetry", "telemetry", func(evs []event) bool { return len(evs) == 1 })
		if e := evs[0]; e.dev != "d1" || e.tel.Seq != seq || e.tel.Values["temp"] != 21.5 || e.tel.Values["ok"] != true {
			t.Errorf("telemetry: %s %+v", e.dev, e.tel)
		}

		spoof, _ := wire.MarshalTelemetry(&wire.Telemetry{Device: "d2", Seq: 99, Values: map[string]any{"temp": 99.0}})
		must(t, dev.publish("tl/dev/d1/telemetry", spoof, 0, false))
		if e := sink.waitDropped(t, ErrSpoofed); e.dev != "d1" {
			t.Errorf("spoof reported for %q", e.dev)
		}
		spoofReply, _ := wire.MarshalReply(&wire.Reply{ID: 5, Device: "d2", Outcome: wire.OutcomeDone})
		must(t, dev.publish("tl/bridge/b1/reply/d1", spoofReply, 1, false))
		sink.waitFor(t, "spoofed reply dropped", "dropped", func(evs []event) bool {
			n := 0
			for _, e := range evs {
				if errors.Is(e.err, ErrSpoofed) {
					n++
				}
			}
			return n == 2
		})

		must(t, dev.publish("tl/dev/d1/telemetry", []byte{0xff, 0x00, 0x13, 0x37}, 0, false))
		e := sink.waitDropped(t, wire.ErrMalformed)
		var we *wire.Error
		if !errors.As(e.err, &we) || e.dev != "d1" {
			t.Errorf("garbage: %s %v", e.dev, e.err)
		}

		must(t, dev.publish("tl/dev/d1/telemetry", bytes.Repeat([]byte{0xa1}, 2000), 0, false))
		if e := sink.waitDropped(t, wire.ErrTooLarge); !strings.Contains(e.err.Error(), "2000 bytes") {
			t.Errorf("oversize: %v", e.err)
		}

		rep, _ := wire.MarshalReply(&wire.Reply{ID: 1, Device: "d1", Outcome: wire.OutcomeDone})
		must(t, dev.publish("tl/dev/d1/telemetry", rep, 0, false))
		sink.waitDropped(t, ErrWrongKind)

		stranger, _ := wire.MarshalTelemetry(&wire.Telemetry{Device: "zz", Seq: 1})
		must(t, dev.publish("tl/dev/zz/telemetry", stranger, 0, false))
		if e := sink.waitDropped(t, ErrNotEndpoint); e.dev != "zz" {
			t.Errorf("unknown device reported as %q", e.dev)
		}

		time.Sleep(50 * time.Millisecond)
		if n := len(sink.all("telemetry")); n != 1 {
			t.Errorf("%d telemetry events, want 1: %s", n, describeEvents(sink.all("telemetry")))
		}
		if n := len(sink.all("reply")); n != 0 {
			t.Errorf("spoofed reply reached the sink: %s", describeEvents(sink.all("reply")))
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSendErrors: ErrUnknownDevice, ErrTooLarge, ErrOffline at once when
// not connected, the context's error, ErrClosed after Close.
func TestSendErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	tr, sink, lb := newBridge(t, Options{Brokers: []string{"tcp://" + addr}, MaxMessage: 1024}, "d1")
	down := sink.waitLink(t, false, 1)
	if !strings.Contains(down.detail, "connection refused") || !lb.find(LevelWarn, "connection refused") {
		t.Errorf("link detail %q; log:\n%s", down.detail, lb)
	}
	ctx := ctxT(t)
	if err := tr.Send(ctx, "nope", &wire.Command{ID: 1, Verb: "x"}); !errors.Is(err, transports.ErrUnknownDevice) {
		t.Errorf("unknown device: %v", err)
	}
	big := &wire.Command{ID: 1, Verb: "x", Args: map[string]any{"blob": strings.Repeat("a", 2000)}}
	if err := tr.Send(ctx, "d1", big); !errors.Is(err, transports.ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	start := time.Now()
	if err := tr.Send(ctx, "d1", &wire.Command{ID: 1, Verb: "x"}); !errors.Is(err, transports.ErrOffline) || time.Since(start) > 100*time.Millisecond {
		t.Errorf("not connected: %v after %v", err, time.Since(start))
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Send(cctx, "d1", &wire.Command{ID: 1, Verb: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	must(t, tr.Close())
	if err := tr.Send(ctx, "d1", &wire.Command{ID: 1, Verb: "x"}); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("closed: %v", err)
	}
	if err := tr.SetEndpoints([]transports.Endpoint{{DeviceID: "a/b"}}); err == nil {
		t.Error("a device id with '/' was accepted")
	}
}

// TestCloseAborts: Close returns promptly while the bridge is in the middle
// of an MQTT handshake with a broker that does not answer, and before Start.
func TestCloseAborts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // never answers CONNECT
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	defer func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	tr, _, _ := newBridge(t, Options{Brokers: []string{"tcp://" + l.Addr().String()}, ConnectTimeout: 30 * time.Second}, "d1")
	<-accepted
	start := time.Now()
	must(t, tr.Close())
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v during a handshake", d)
	}
	tr2, err := New(Options{Brokers: []string{"tcp://127.0.0.1:1"}})
	must(t, err)
	must(t, tr2.Close())
	if err := tr2.Start(context.Background(), &fakeSink{}); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}

// TestBrokerRestart: the broker dies in the middle of traffic: Link down is
// reported, Send returns ErrOffline (never hangs) while it is down, Link up
// after it is back, and the subscriptions are restored (a reply and
// telemetry published after the restart arrive).
func TestBrokerRestart(t *testing.T) {
	forEachBroker(t, func(t *testing.T, br testBroker) {
		tr, sink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "rs"}, "d1")
		sink.waitLink(t, true, 1)
		dev := newTestDevice(t, br.URL(), "rs", "d1")
		waitOnline(t, sink, "d1", true, 1)

		var mu sync.Mutex
		results := map[string]int{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := uint64(1000); ; id++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				err := tr.Send(ctx, "d1", &wire.Command{ID: id, Verb: "ping"})
				cancel()
				k := "ok"
				switch {
				case err == nil:
				case errors.Is(err, transports.ErrOffline):
					k = "offline"
				default:
					k = err.Error()
				}
				mu.Lock()
				results[k]++
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
		time.Sleep(50 * time.Millisecond)
		br.Kill()
		down := sink.waitLink(t, false, 1)
		if !strings.Contains(down.detail, "lost") {
			t.Errorf("link down detail: %q", down.detail)
		}
		if err := tr.Send(ctxT(t), "d1", &wire.Command{ID: 1, Verb: "ping"}); !errors.Is(err, transports.ErrOffline) {
			t.Errorf("Send while the broker is down: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
		br.Restart()
		sink.waitLink(t, true, 2)
		dev.Reconnect()
		waitOnline(t, sink, "d1", true, 2)
		time.Sleep(50 * time.Millisecond)
		close(stop)
		wg.Wait()
		mu.Lock()
		t.Logf("sends during the restart: %v", results)
		for k := range results {
			if k != "ok" && k != "offline" {
				t.Errorf("Send returned %q during the restart", k)
			}
		}
		if results["offline"] == 0 || results["ok"] == 0 {
			t.Errorf("expected both delivered and offline sends: %v", results)
		}
		mu.Unlock()
		must(t, tr.Send(ctxT(t), "d1", &wire.Command{ID: 1, Verb: "ping"}))
		waitReplies(t, sink, 1, 2)
		dev.Telemetry(map[string]any{"v": int64(1)})
		sink.waitFor(t, "telemetry after restart", "telemetry", func(evs []event) bool { return len(evs) == 1 })
	})
}

// ---- security ---------------------------------------------------------------

// TestTLS: with the test CA and a client certificate the bridge connects
// and commands go round; a broker certificate from an untrusted CA, and a
// missing client certificate, are refused with a clear Link detail and an
// error log line.
func TestTLS(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	pki := newTestPKI(t)
	br := startMosquitto(t, "ssl", fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
		pki.caFile, pki.serverCert, pki.serverKey))
	tr, sink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "tls",
		CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}, "d1")
	sink.waitLink(t, true, 1)
	newTestDevice(t, br.URL(), "tls", "d1", withTLS(&tls.Config{RootCAs: pki.caPool, Certificates: []tls.Certificate{pki.client}}))
	waitOnline(t, sink, "d1", true, 1)
	must(t, tr.Send(ctxT(t), "d1", &wire.Command{ID: 3, Verb: "ping"}))
	waitReplies(t, sink, 3, 2)

	_, rsink, rlog := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "tls", BridgeID: "b2",
		CAFile: pki.rogueCAFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}, "d1")
	down := rsink.waitLink(t, false, 1)
	const unknown = "x509: certificate signed by unknown authority"
	if !strings.Contains(down.detail, unknown) || !strings.Contains(down.detail, "mqtt_ca_file") || !rlog.find(LevelError, unknown) {
		t.Errorf("untrusted CA: detail %q; log:\n%s", down.detail, rlog)
	}

	_, nsink, nlog := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "tls", BridgeID: "b3", CAFile: pki.caFile}, "d1")
	down = nsink.waitLink(t, false, 1)
	if !strings.Contains(down.detail, "client certificate") || !nlog.find(LevelError, "client certificate") {
		t.Errorf("no client certificate: detail %q; log:\n%s", down.detail, nlog)
	}
	plain := startEmbedded(t, BrokerOptions{})
	_, psink, _ := newBridge(t, Options{Brokers: []string{"ssl://" + plain.addr}, TopicPrefix: "tls", BridgeID: "b4", CAFile: pki.caFile}, "d1")
	pdown := psink.waitLink(t, false, 1)
	if !strings.Contains(pdown.detail, "may not speak TLS") {
		t.Errorf("TLS to a plain port: detail %q", pdown.detail)
	}
	t.Logf("TLS to a plain port: %s", pdown.detail)
	t.Logf("untrusted CA: %s", rsink.all("link")[0].detail)
	t.Logf("no client certificate: %s", down.detail)
}

// TestWrongPassword: a wrong password is refused with "not authorized" in
// the Link detail and an error log line, and the password appears nowhere;
// the right one connects. On Mosquitto (password_file) and on the embedded
// broker (Users).
func TestWrongPassword(t *testing.T) {
	makers := []brokerMaker{
		{"mosquitto", func(t *testing.T) testBroker {
			needMosquitto(t)
			pw := filepath.Join(t.TempDir(), "passwd")
			if out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, "bridge", "s3cret-pw").CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v %s", err, out)
			}
			return startMosquitto(t, "tcp", "allow_anonymous false\npassword_file "+pw+"\n")
		}},
		{"embedded", func(t *testing.T) testBroker {
			return startEmbedded(t, BrokerOptions{Users: map[string]string{"bridge": "s3cret-pw"}})
		}},
	}
	for _, m := range makers {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			br := m.make(t)
			_, sink, lb := newBridge(t, Options{Brokers: []string{br.URL()}, Username: "bridge", Password: "wr0ng-pw"}, "d1")
			down := sink.waitLink(t, false, 1)
			if !strings.Contains(down.detail, "not authorized") || !strings.Contains(down.detail, "mqtt_password") || !lb.find(LevelError, "not authorized") {
				t.Errorf("detail %q; log:\n%s", down.detail, lb)
			}
			if strings.Contains(lb.String(), "wr0ng-pw") || strings.Contains(down.detail, "wr0ng-pw") {
				t.Error("the password appears in the log")
			}
			t.Logf("wrong password: %s", down.detail)
			_, okSink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, Username: "bridge", Password: "s3cret-pw", BridgeID: "b2"}, "d1")
			okSink.waitLink(t, true, 1)
		})
	}
}

// TestEmbeddedTransport: Options.Embedded starts a broker, connects to it,
// commands go round, and Close stops the broker.
func TestEmbeddedTransport(t *testing.T) {
	t.Parallel()
	tr, sink, _ := newBridge(t, Options{Embedded: true, EmbeddedListen: "127.0.0.1:0", TopicPrefix: "em"}, "d1")
	sink.waitLink(t, true, 1)
	url := "tcp://" + tr.broker.Addr()
	newTestDevice(t, url, "em", "d1")
	waitOnline(t, sink, "d1", true, 1)
	must(t, tr.Send(ctxT(t), "d1", &wire.Command{ID: 4, Verb: "ping"}))
	waitReplies(t, sink, 4, 2)
	must(t, tr.Close())
	if c, err := net.DialTimeout("tcp", tr.broker.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("the embedded broker still listens after Close")
	}
}

// ---- several bridges --------------------------------------------------------

// TestBridges: three bridges A, B, C share one broker and a share group.
// Each command's replies reach only the bridge that sent it. Each telemetry
// message of a device that A and B watch reaches A and B exactly once
// (whichever bridge took it) and C at most once (only when C took it); a
// device nobody watches reaches exactly one bridge. When B dies (its last
// will says offline) its retained interest stays on the broker but no
// telemetry is forwarded to it any more.
func TestBridges(t *testing.T) {
	forEachBroker(t, func(t *testing.T, br testBroker) {
		mk := func(id string) (*Transport, *fakeSink) {
			tr, s, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "sh", BridgeID: id, ShareGroup: "g"}, "d1", "d2")
			s.waitLink(t, true, 1)
			return tr, s
		}
		a, sa := mk("A")
		b, sb := mk("B")
		c, sc := mk("C")
		d1 := newTestDevice(t, br.URL(), "sh", "d1")
		d2 := newTestDevice(t, br.URL(), "sh", "d2")
		for _, s := range []*fakeSink{sa, sb, sc} {
			waitOnline(t, s, "d1", true, 1)
		}

		// replies go back to the sender only
		must(t, a.Send(ctxT(t), "d1", &wire.Command{ID: 1001, Verb: "ping"}))
		must(t, b.Send(ctxT(t), "d1", &wire.Command{ID: 2001, Verb: "ping"}))
		must(t, c.Send(ctxT(t), "d2", &wire.Command{ID: 3001, Verb: "ping"}))
		waitReplies(t, sa, 1001, 2)
		waitReplies(t, sb, 2001, 2)
		waitReplies(t, sc, 3001, 2)
		time.Sleep(100 * time.Millisecond)
		if len(sa.all("reply")) != 2 || len(sb.all("reply")) != 2 || len(sc.all("reply")) != 2 {
			t.Errorf("replies leaked to other bridges:\nA:%s\nB:%s\nC:%s", describeEvents(sa.all("reply")),
				describeEvents(sb.all("reply")), describeEvents(sc.all("reply")))
		}

		// telemetry by interest
		a.SetInterest([]string{"d1"})
		b.SetInterest([]string{"d1"})
		waitUntil(t, "interest known everywhere", func() bool {
			return a.remoteInterest("d1", "B") && b.remoteInterest("d1", "A") && c.remoteInterest("d1", "A") && c.remoteInterest("d1", "B")
		})
		const n = 30
		for i := 0; i < n; i++ {
			d1.Telemetry(map[string]any{"i": int64(i)})
			d2.Telemetry(map[string]any{"i": int64(i)})
		}
		count := func(s *fakeSink, dev string) map[uint64]int {
			m := map[uint64]int{}
			for _, e := range s.all("telemetry") {
				if e.dev == dev {
					m[e.tel.Seq]++
				}
			}
			return m
		}
		total := func(dev string) int {
			n := 0
			for _, s := range []*fakeSink{sa, sb, sc} {
				for _, k := range count(s, dev) {
					n += k
				}
			}
			return n
		}
		waitUntil(t, "telemetry delivered", func() bool {
			return len(count(sa, "d1")) == n && len(count(sb, "d1")) == n && total("d2") >= n
		})
		time.Sleep(200 * time.Millisecond) // late duplicates would show now
		ca, cb, cc := count(sa, "d1"), count(sb, "d1"), count(sc, "d1")
		for seq := uint64(1); seq <= n; seq++ {
			if ca[seq] != 1 || cb[seq] != 1 || cc[seq] > 1 {
				t.Errorf("d1 seq %d delivered A×%d B×%d C×%d; want 1, 1, ≤1", seq, ca[seq], cb[seq], cc[seq])
			}
		}
		d2all := map[uint64]int{}
		for _, s := range []*fakeSink{sa, sb, sc} {
			for seq, k := range count(s, "d2") {
				d2all[seq] += k
			}
		}
		for seq := uint64(1); seq <= n; seq++ {
			if d2all[seq] != 1 {
				t.Errorf("d2 seq %d delivered %d times in all; want exactly 1", seq, d2all[seq])
			}
		}
		t.Logf("d1 taken by C: %d of %d; d2 spread A/B/C: %d/%d/%d", len(cc), n, len(count(sa, "d2")), len(count(sb, "d2")), len(count(sc, "d2")))

		// B dies: its last will marks it offline, forwarding to it stops
		fwd := newSpy(t, br.URL(), "sh/bridge/B/telemetry/+", nil)
		b.crashForTest = true
		must(t, b.Close())
		waitUntil(t, "B offline at A and C", func() bool {
			ao, ak := a.bridgeOnline("B")
			co, ck := c.bridgeOnline("B")
			return ak && !ao && ck && !co
		})
		left := newSpy(t, br.URL(), "sh/bridge/B/interest/+", nil)
		waitUntil(t, "B's retained interest", func() bool { return len(left.got()) == 1 })
		if m := left.got()[0]; !m.Retained() || !bytes.Equal(m.Payload(), []byte{1}) {
			t.Errorf("B's interest topic: retained=%v %x", m.Retained(), m.Payload())
		}
		before := len(count(sa, "d1"))
		for i := 0; i < 10; i++ {
			d1.Telemetry(map[string]any{"i": int64(i)})
		}
		waitUntil(t, "telemetry after B died", func() bool { return len(count(sa, "d1")) == before+10 })
		time.Sleep(100 * time.Millisecond)
		if got := fwd.got(); len(got) != 0 {
			t.Errorf("%d telemetry messages were forwarded to the dead bridge B", len(got))
		}
	})
}

// TestCleanCloseClearsInterest: a bridge that closes normally removes its
// retained interest topics and publishes its offline state.
func TestCleanCloseClearsInterest(t *testing.T) {
	t.Parallel()
	br := startEmbedded(t, BrokerOptions{})
	tr, sink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "cc", BridgeID: "X", ShareGroup: "g"}, "d1")
	sink.waitLink(t, true, 1)
	tr.SetInterest([]string{"d1"})
	interest := newSpy(t, br.URL(), "cc/bridge/X/interest/+", nil)
	waitUntil(t, "interest published", func() bool { return len(interest.got()) >= 1 })
	must(t, tr.Close())
	after := newSpy(t, br.URL(), "cc/bridge/X/#", nil)
	time.Sleep(100 * time.Millisecond)
	last := map[string][]byte{} // mochi may also pass on a publication live just after Close
	for _, m := range after.got() {
		last[m.Topic()] = m.Payload()
	}
	for topic, p := range last {
		if topic != "cc/bridge/X/state" && len(p) != 0 {
			t.Errorf("still retained after Close: %s %x", topic, p)
		}
	}
	env, err := wire.Unmarshal(last["cc/bridge/X/state"])
	if err != nil || env.State == nil || env.State.Online || env.State.Device != "X" {
		t.Errorf("bridge state after Close: %+v %v", env, err)
	}
}

// TestBackpressure: while the core does not take messages, telemetry beyond
// the bounded queue is dropped and reported (ErrQueueFull) but no reply is
// lost: the handlers wait (delaying the PUBACK) and every reply arrives once
// the core takes them again. A panicking Sink does not stop the worker.
func TestBackpressure(t *testing.T) {
	forEachBroker(t, func(t *testing.T, br testBroker) {
		gate := make(chan struct{})
		s := &fakeSink{gate: gate}
		s.panics.Store(1)
		nextSink.Store(t, s)
		_, sink, lb := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "bp"}, "d1")
		sink.waitLink(t, true, 1)
		dev := newTestDevice(t, br.URL(), "bp", "d1")
		const replies, tels = 300, 600
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // QoS 1: the broker holds back what we do not acknowledge
			defer wg.Done()
			for i := 1; i <= replies; i++ {
				b, _ := wire.MarshalReply(&wire.Reply{ID: uint64(i), Device: "d1", Outcome: wire.OutcomeDone})
				tok := dev.client().Publish("bp/bridge/b1/reply/d1", 1, false, b)
				_ = tok // not waited: the bridge delays its PUBACKs
			}
		}()
		for i := 0; i < tels; i++ {
			dev.Telemetry(map[string]any{"i": int64(i)})
		}
		sink.waitDropped(t, ErrQueueFull)
		close(gate)
		wg.Wait()
		sink.waitFor(t, "every reply", "reply", func(evs []event) bool { return len(evs) == replies })
		seen := map[uint64]bool{}
		for _, e := range sink.all("reply") {
			if seen[e.reply.ID] {
				t.Errorf("reply %d twice", e.reply.ID)
			}
			seen[e.reply.ID] = true
		}
		counts := func() (got, dropped int) {
			got = len(sink.all("telemetry"))
			for _, e := range sink.all("dropped") {
				if errors.Is(e.err, ErrQueueFull) {
					dropped++
				}
			}
			return got, dropped
		}
		waitUntil(t, "every telemetry message delivered or dropped", func() bool {
			got, dropped := counts()
			return got+dropped >= tels-1
		})
		time.Sleep(50 * time.Millisecond)
		got, dropped := counts()
		if got+dropped != tels-1 || got == 0 || dropped == 0 {
			t.Errorf("telemetry delivered %d + dropped %d, want %d in all", got, dropped, tels-1)
		}
		if !lb.find(LevelError, "recovered panic in Sink.Telemetry") {
			t.Errorf("the Sink's panic was not logged:\n%s", lb)
		}
		t.Logf("telemetry delivered %d, dropped %d (queue full); replies %d, none lost", got, dropped, replies)
	})
}

// TestEndpointsAdded: a device added by SetEndpoints (a reload) gets its
// presence from its retained state; before that its messages were dropped
// as not ours.
func TestEndpointsAdded(t *testing.T) {
	forEachBroker(t, func(t *testing.T, br testBroker) {
		tr, sink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "ea"}, "d1")
		sink.waitLink(t, true, 1)
		newTestDevice(t, br.URL(), "ea", "d2")
		d2 := newTestDevice(t, br.URL(), "ea", "d3")
		d2.Telemetry(map[string]any{"x": int64(1)})
		sink.waitDropped(t, ErrNotEndpoint)
		must(t, tr.SetEndpoints([]transports.Endpoint{{DeviceID: "d1"}, {DeviceID: "d2"}}))
		on := waitOnline(t, sink, "d2", true, 1)
		if on.pres.Reason != "retained state" {
			t.Errorf("presence of the added device: %+v", on.pres)
		}
		if err := tr.Send(ctxT(t), "d3", &wire.Command{ID: 1, Verb: "x"}); !errors.Is(err, transports.ErrUnknownDevice) {
			t.Errorf("Send to a device not added: %v", err)
		}
	})
}

// TestStaleInterestCleared: a bridge that crashed left its retained
// interest topic; started again with no watchers, it clears it.
func TestStaleInterestCleared(t *testing.T) {
	t.Parallel()
	br := startEmbedded(t, BrokerOptions{})
	opts := Options{Brokers: []string{br.URL()}, TopicPrefix: "si", BridgeID: "X", ShareGroup: "g"}
	tr, sink, _ := newBridge(t, opts, "d1")
	sink.waitLink(t, true, 1)
	tr.SetInterest([]string{"d1"})
	first := newSpy(t, br.URL(), "si/bridge/X/interest/+", nil)
	waitUntil(t, "interest published", func() bool { return len(first.got()) >= 1 })
	tr.crashForTest = true
	must(t, tr.Close())
	_, sink2, _ := newBridge(t, opts, "d1")
	sink2.waitLink(t, true, 1)
	waitUntil(t, "stale interest cleared", func() bool {
		got := first.got()
		return len(got) >= 2 && len(got[len(got)-1].Payload()) == 0
	})
	after := newSpy(t, br.URL(), "si/bridge/X/interest/+", nil)
	time.Sleep(100 * time.Millisecond)
	if n := len(after.got()); n != 0 {
		t.Errorf("%d interest topics still retained", n)
	}
}

// TestExampleMosquittoConfig runs the shipped examples/mosquitto/
// mosquitto.conf and acl (paths and ports made local): bridges
// authenticate, share telemetry and get replies; devices log in with their
// id, reach the bridge over TLS or TCP, and the ACL stops a device from
// publishing as another device or reading its commands.
func TestExampleMosquittoConfig(t *testing.T) {
	needMosquitto(t)
	t.Parallel()
	dir := t.TempDir()
	pki := newTestPKI(t)
	pw := filepath.Join(dir, "passwd")
	for i, u := range [][2]string{{"mesibo-iot", "bridge-pw"}, {"d1", "d1-pw"}, {"d2", "d2-pw"}} {
		args := []string{"-b", pw, u[0], u[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
	}
	acl, err := filepath.Abs("../../examples/mosquitto/acl")
	must(t, err)
	raw, err := os.ReadFile("../../examples/mosquitto/mosquitto.conf")
	must(t, err)
	port, tlsPort := freePort(t), freePort(t)
	repl := strings.NewReplacer(
		"#persistence_location /var/lib/mosquitto/", "persistence_location "+dir+"/",
		"/etc/mosquitto/passwd", pw,
		"/etc/mosquitto/acl", acl,
		"listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1", port),
		"listener 8883", fmt.Sprintf("listener %d 127.0.0.1", tlsPort),
		"/etc/mosquitto/certs/server.pem", pki.serverCert,
		"/etc/mosquitto/certs/server.key", pki.serverKey,
		"/etc/mosquitto/certs/ca.pem", pki.caFile,
	)
	conf := repl.Replace(string(raw)) + "\nuser root\nlog_dest file " + filepath.Join(dir, "mosquitto.log") + "\n"
	if !strings.Contains(conf, "set_tcp_nodelay true") {
		t.Fatal("the example configuration lacks set_tcp_nodelay true")
	}
	br := runMosquitto(t, dir, port, "tcp", conf)
	tlsURL := fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort)

	mk := func(id string) (*Transport, *fakeSink) {
		tr, s, lb := newBridge(t, Options{Brokers: []string{br.URL()}, Username: "mesibo-iot", Password: "bridge-pw",
			BridgeID: id, ShareGroup: "g"}, "d1", "d2")
		s.waitLink(t, true, 1)
		if lb.find(LevelError, "refused the subscription") {
			t.Errorf("bridge %s: the ACL refused a subscription:\n%s", id, lb)
		}
		return tr, s
	}
	a, sa := mk("A")
	b, sb := mk("B")
	d1 := newTestDevice(t, tlsURL, "mesibo-iot", "d1", withAuth("d1", "d1-pw"),
		withTLS(&tls.Config{RootCAs: pki.caPool}))
	d2 := newTestDevice(t, br.URL(), "mesibo-iot", "d2", withAuth("d2", "d2-pw"))
	waitOnline(t, sa, "d1", true, 1)
	waitOnline(t, sb, "d2", true, 1)
	must(t, a.Send(ctxT(t), "d1", &wire.Command{ID: 11, Verb: "ping"}))
	must(t, b.Send(ctxT(t), "d2", &wire.Command{ID: 12, Verb: "ping"}))
	waitReplies(t, sa, 11, 2)
	waitReplies(t, sb, 12, 2)

	a.SetInterest([]string{"d1"})
	b.SetInterest([]string{"d1"})
	waitUntil(t, "interest", func() bool { return a.remoteInterest("d1", "B") && b.remoteInterest("d1", "A") })
	for i := 0; i < 10; i++ {
		d1.Telemetry(map[string]any{"i": int64(i)})
	}
	for _, s := range []*fakeSink{sa, sb} {
		s.waitFor(t, "d1 telemetry on both bridges", "telemetry", func(evs []event) bool { return len(evs) == 10 })
	}

	// d1 may not speak for d2, nor read d2's commands
	fake, _ := wire.MarshalTelemetry(&wire.Telemetry{Seq: 1, Values: map[string]any{"x": int64(1)}})
	must(t, d1.publish("mesibo-iot/dev/d2/telemetry", fake, 1, false))
	var peeked sync.Mutex
	peeks := 0
	tok := d1.client().Subscribe("mesibo-iot/dev/d2/cmd", 1, func(paho.Client, paho.Message) {
		peeked.Lock()
		peeks++
		peeked.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	must(t, b.Send(ctxT(t), "d2", &wire.Command{ID: 13, Verb: "ping"}))
	waitReplies(t, sb, 13, 2)
	time.Sleep(200 * time.Millisecond)
	for _, s := range []*fakeSink{sa, sb} {
		for _, e := range s.all("telemetry") {
			if e.dev == "d2" {
				t.Errorf("telemetry published by d1 as d2 got through the ACL")
			}
		}
	}
	peeked.Lock()
	if peeks != 0 {
		t.Errorf("d1 read %d commands of d2", peeks)
	}
	peeked.Unlock()
	_ = d2
}
