package sim

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const prefix = "simtest"

// startSim starts sc with test defaults and stops it at the end of the test.
func startSim(t *testing.T, sc Scenario) *Sim {
	t.Helper()
	if sc.TopicPrefix == "" {
		sc.TopicPrefix = prefix
	}
	if sc.PtyDir == "" {
		sc.PtyDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, sc, Options{Logf: t.Logf, Quiet: !testing.Verbose()})
	if err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		cancel()
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	return s
}

func within(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mqttMsg is one message a test client received.
type mqttMsg struct {
	topic    string
	env      *wire.Envelope
	err      error
	raw      []byte
	retained bool
}

// tclient is a test-side MQTT client standing in for the bridge.
type tclient struct {
	t    *testing.T
	c    paho.Client
	msgs chan mqttMsg
}

var clientN atomic.Int64

func newClient(t *testing.T, url string, subs ...string) *tclient {
	t.Helper()
	tc := &tclient{t: t, msgs: make(chan mqttMsg, 4096)}
	opts := paho.NewClientOptions().AddBroker(url).
		SetClientID("test-bridge-" + time.Now().Format("150405.000000") + "-" + itoa(int(clientN.Add(1)))).
		SetAutoReconnect(false).SetCleanSession(true)
	tc.c = paho.NewClient(opts)
	if tok := tc.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test client connect: %v", tok.Error())
	}
	t.Cleanup(func() { tc.c.Disconnect(50) })
	for _, s := range subs {
		tok := tc.c.Subscribe(s, 1, func(_ paho.Client, m paho.Message) {
			env, err := wire.Unmarshal(m.Payload())
			select {
			case tc.msgs <- mqttMsg{topic: m.Topic(), env: env, err: err, raw: append([]byte(nil), m.Payload()...), retained: m.Retained()}:
			default:
			}
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", s, tok.Error())
		}
	}
	return tc
}

func (tc *tclient) send(dev string, cmd *wire.Command) {
	tc.t.Helper()
	b, err := wire.MarshalCommand(cmd)
	if err != nil {
		tc.t.Fatalf("marshal command: %v", err)
	}
	tok := tc.c.Publish(prefix+"/dev/"+dev+"/cmd", 1, false, b)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		tc.t.Fatalf("publish command: %v", tok.Error())
	}
}

// next returns the next message for which keep is true.
func (tc *tclient) next(timeout time.Duration, keep func(mqttMsg) bool) mqttMsg {
	tc.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-tc.msgs:
			if keep == nil || keep(m) {
				return m
			}
		case <-deadline:
			tc.t.Fatalf("no matching message within %v", timeout)
			return mqttMsg{}
		}
	}
}

// reply waits for the next reply to command id on topic.
func (tc *tclient) reply(topic string, id uint64, timeout time.Duration) *wire.Reply {
	tc.t.Helper()
	m := tc.next(timeout, func(m mqttMsg) bool {
		return m.topic == topic && m.env != nil && m.env.Reply != nil && m.env.Reply.ID == id
	})
	return m.env.Reply
}

// tbridge is a bridge-side serial link opened on a device's symlink.
type tbridge struct {
	l      *link.Link
	hellos chan *wire.Hello
	envs   chan *wire.Envelope
	drops  chan error
	done   chan error
	cancel context.CancelFunc
}

func openBridge(t *testing.T, path string) *tbridge {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	b := &tbridge{hellos: make(chan *wire.Hello, 16), envs: make(chan *wire.Envelope, 1024),
		drops: make(chan error, 1024), done: make(chan error, 1)}
	b.l = link.New(f, link.Options{
		Role:       link.Bridge,
		OnUp:       func(h *wire.Hello) { b.hellos <- h },
		OnEnvelope: func(e *wire.Envelope) { b.envs <- e },
		OnDrop: func(err error) {
			select {
			case b.drops <- err:
			default:
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- b.l.Run(ctx) }()
	t.Cleanup(b.close)
	return b
}

func (b *tbridge) close() {
	b.cancel()
	<-b.l.Done()
}

func (b *tbridge) hello(t *testing.T, timeout time.Duration) *wire.Hello {
	t.Helper()
	select {
	case h := <-b.hellos:
		return h
	case <-time.After(timeout):
		t.Fatalf("no hello within %v", timeout)
	}
	return nil
}

func (b *tbridge) reply(t *testing.T, id uint64, timeout time.Duration) *wire.Reply {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-b.envs:
			if e.Reply != nil && e.Reply.ID == id {
				return e.Reply
			}
		case <-deadline:
			t.Fatalf("no reply to #%d within %v", id, timeout)
			return nil
		}
	}
}

func (b *tbridge) send(t *testing.T, cmd *wire.Command) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := b.l.Send(ctx, &wire.Envelope{Kind: wire.KindCommand, Command: cmd}); err != nil {
		t.Fatalf("bridge send: %v", err)
	}
}

func countKey(ex []Execution, key string) int {
	n := 0
	for _, e := range ex {
		if e.IdemKey == key {
			n++
		}
	}
	return n
}
