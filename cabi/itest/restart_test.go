package itest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	gosync "sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// TestDeviceRestartedWhileBridgeCutOff is the path of the soak's one double
// execution: the bridge loses the broker while a command is unfinished, the
// device restarts meanwhile (its idempotency cache is gone), and the broker
// still holds the device's retained state of the earlier boot. When the
// bridge is back, that state is all it sees, so it sends the command again;
// the restarted device, already subscribed but not yet announced, must be
// able to tell that the command was meant for its earlier boot. The command
// names that boot (key 17) and the device answers "restarted" without running
// it: the user learns that it may or may not have run, once. A real
// Mosquitto, the module in the C host; the bridge reaches the broker through
// a proxy the test cuts; the device is played here, step by step.
func TestDeviceRestartedWhileBridgeCutOff(t *testing.T) {
	dir := buildDir(t)
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Skipf("mosquitto is not installed (%s): install the Debian package mosquitto to run this test", mosquittoBin)
	}
	work := t.TempDir()
	broker, err := startSoakBroker(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	px, err := newCutProxy(fmt.Sprintf("127.0.0.1:%d", broker.port))
	if err != nil {
		t.Fatal(err)
	}
	defer px.close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := stack.Start(ctx, stack.Options{
		Build: dir, Scenario: sim.Scenario{Seed: 1, Broker: "tcp://" + px.addr(), TimeScale: 1},
		Devices: "version: 1\nprofiles: [\"{{profiles}}/*.yaml\"]\ndevices:\n" +
			"  - {address: robot1, id: rover-9, profile: rover, transport: mqtt, owners: [alice], operators: [bob]}\n",
		Conf:    []string{"log_level = debug", "reload_interval = off", "command_ttl = 1m"},
		WorkDir: work,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := st.Host
	defer func() {
		if t.Failed() {
			t.Logf("host:\n%s", tail(h, 80))
		}
	}()
	logged := func(from int, what string) {
		t.Helper()
		if _, err := h.WaitForAfter(ctx, from, func(e hostproc.Event) bool {
			return e.Kind == "log" && strings.Contains(e.Text, what)
		}); err != nil {
			t.Fatalf("waiting for the log line %q: %v", what, err)
		}
	}
	answer := func(id string) hostproc.Event {
		t.Helper()
		ev, err := h.WaitFor(ctx, func(e hostproc.Event) bool {
			return e.Kind == "deliver" && e.Arg(0) == "bob" && e.Field("refid") == id && e.Field("flags") == "1"
		})
		if err != nil {
			t.Fatalf("bob's answer to %s: %v", id, err)
		}
		return ev
	}

	dev := &handDevice{t: t, broker: broker.URL(), id: "rover-9", prefix: sim.DefaultTopicPrefix}
	dev.boot(1)
	dev.announce()
	defer dev.close()
	logged(0, "robot1 (rover-9) is online")
	_ = h.Login("bob")
	_ = h.Msg("bob", "robot1", 11, "stop")
	x := dev.next(ctx)
	if x.Boot != 1 {
		t.Fatalf("the command is meant for boot %d, want 1 (the device's)", x.Boot)
	}
	dev.reply(x, wire.OutcomeAccepted, 0) // takes it; the answer would come later

	// the bridge is cut off; the device restarts meanwhile and subscribes
	// again, but has not announced its new boot yet
	mark := h.Len()
	px.cut()
	logged(mark, "mqtt link down")
	dev.close()
	dev.boot(2)
	mark = h.Len()
	px.restore()
	logged(mark, "mqtt link up")

	again := dev.next(ctx)
	if again.ID != x.ID || again.IdemKey != x.IdemKey || again.Boot != 1 {
		t.Fatalf("after the cut the device got %+v, want command %d again, meant for boot 1", again, x.ID)
	}
	dev.reply(again, wire.OutcomeFailed, wire.ReplyRestarted) // what boot 2 answers: not run
	contains := func(ev hostproc.Event, sub string) {
		t.Helper()
		if !strings.Contains(ev.Text, sub) {
			t.Fatalf("got %q, want it to say %q", ev.Text, sub)
		}
	}
	contains(answer("11"), "robot1 restarted while stop was pending; it may or may not have run")

	// announced: a new command is meant for boot 2 and runs
	dev.announce()
	logged(mark, "robot1 restarted (boot 2, was 1)")
	_ = h.Msg("bob", "robot1", 12, "stop")
	y := dev.next(ctx)
	if y.Boot != 2 {
		t.Fatalf("the new command is meant for boot %d, want 2", y.Boot)
	}
	dev.reply(y, wire.OutcomeDone, 0)
	contains(answer("12"), "stop: done")
	if err := h.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	finals := 0
	for _, e := range h.Events() {
		if e.Kind == "deliver" && e.Arg(0) == "bob" && e.Field("refid") == "11" && e.Field("flags") == "1" {
			finals++
		}
	}
	if finals != 1 {
		t.Fatalf("bob got %d final answers to message 11, want 1", finals)
	}
	if n := dev.count(); n != 3 {
		t.Fatalf("the device got %d commands, want 3 (the first, its resend, the new one)", n)
	}
}

// handDevice plays a device over MQTT one step at a time (docs/protocol.md
// §6). It has no last will, so that the broker keeps its retained online
// state of the earlier boot while it is away.
type handDevice struct {
	t          *testing.T
	broker, id string
	prefix     string
	mu         gosync.Mutex
	c          paho.Client
	bootN      uint64
	cmds       chan *wire.Command
	n          int
}

// boot connects as boot n and subscribes to the command topic.
func (d *handDevice) boot(n uint64) {
	d.t.Helper()
	d.bootN = n
	d.cmds = make(chan *wire.Command, 16)
	cmds := d.cmds
	o := paho.NewClientOptions().AddBroker(d.broker).SetClientID(d.id).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(3 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("device connect: %v", tok.Error())
	}
	tok := c.Subscribe(d.prefix+"/dev/"+d.id+"/cmd", 1, func(_ paho.Client, m paho.Message) {
		env, err := wire.Unmarshal(m.Payload())
		if err != nil || env.Command == nil {
			d.t.Errorf("the device got an undecodable command: %v", err)
			return
		}
		d.mu.Lock()
		d.n++
		d.mu.Unlock()
		cmds <- env.Command
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("device subscribe: %v", tok.Error())
	}
	d.c = c
}

// announce publishes the retained online state of this boot.
func (d *handDevice) announce() {
	d.t.Helper()
	p, err := wire.MarshalState(&wire.State{Device: d.id, Online: true, Seq: d.bootN << 32})
	if err != nil {
		d.t.Fatal(err)
	}
	if tok := d.c.Publish(d.prefix+"/dev/"+d.id+"/state", 1, true, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("device state: %v", tok.Error())
	}
}

func (d *handDevice) next(ctx context.Context) *wire.Command {
	d.t.Helper()
	select {
	case c := <-d.cmds:
		return c
	case <-time.After(15 * time.Second):
	case <-ctx.Done():
	}
	d.t.Fatal("the device got no command")
	return nil
}

func (d *handDevice) reply(c *wire.Command, o wire.Outcome, code wire.ReplyCode) {
	d.t.Helper()
	topic := d.prefix + "/dev/" + d.id + "/reply"
	if c.ReplyTo != "" {
		topic = d.prefix + "/bridge/" + c.ReplyTo + "/reply/" + d.id
	}
	p, err := wire.Marshal(&wire.Envelope{Kind: wire.KindReply, Reply: &wire.Reply{ID: c.ID, Outcome: o, Code: int64(code)}})
	if err != nil {
		d.t.Fatal(err)
	}
	if tok := d.c.Publish(topic, 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("device reply: %v", tok.Error())
	}
}

func (d *handDevice) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// close disconnects (without a will, the broker publishes nothing).
func (d *handDevice) close() {
	if d.c != nil {
		d.c.Disconnect(0)
		d.c = nil
	}
}

// cutProxy forwards TCP connections to a broker until cut: then it closes
// them and refuses new ones until restored.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     gosync.Mutex
	down   bool
	conns  map[net.Conn]bool
	wg     gosync.WaitGroup
}

func newCutProxy(target string) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		p.wg.Add(2)
		go pipe(up, c)
		go pipe(c, up)
	}
}

// cut closes every forwarded connection and refuses new ones.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *cutProxy) close() {
	p.cut()
	p.ln.Close()
	p.wg.Wait()
}
