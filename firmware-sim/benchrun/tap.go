package benchrun

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// tap reads the host's output as it is printed (mesibo-host --stamp) and
// keeps, per chat message id, when the module was called and when it sent
// its final answer. It is the Echo of the host; the lines themselves are
// discarded (a load step prints hundreds of thousands).
type tap struct {
	module string // "iot"

	mu      sync.Mutex
	in      map[uint64]int64 // message id → CLOCK_MONOTONIC ns of the on_message call
	out     map[uint64]int64 // refid → ns of the final answer's send_message
	texts   map[string]int   // final answers by first word (done, failed...), for the report
	finals  int
	notes   int // transient messages (progress notes, "queued")
	changed chan struct{}
}

func newTap(module string) *tap {
	return &tap{module: module, in: map[uint64]int64{}, out: map[uint64]int64{}, texts: map[string]int{}, changed: make(chan struct{}, 1)}
}

// fields returns the value of key= in a line's head (before " -- ").
func field(head, key string) (string, bool) {
	i := strings.Index(head, " "+key+"=")
	if i < 0 {
		return "", false
	}
	v := head[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v, true
}

func fieldU(head, key string) uint64 {
	v, _ := field(head, key)
	n, _ := strconv.ParseUint(v, 10, 64)
	return n
}

func (t *tap) line(l string) {
	switch {
	case strings.HasPrefix(l, "decision "+t.module+" "):
		if !strings.Contains(l, "result=CONSUMED") {
			return
		}
		id, ts := fieldU(l, "id"), fieldU(l, "t")
		t.mu.Lock()
		t.in[id] = int64(ts)
		t.mu.Unlock()
	case strings.HasPrefix(l, "send "+t.module+" "):
		head, text, _ := strings.Cut(l, " -- ")
		if fieldU(head, "flags")&4 != 0 { // TRANSIENT: a progress note, not the answer
			t.mu.Lock()
			t.notes++
			t.mu.Unlock()
			return
		}
		ref, ts := fieldU(head, "refid"), fieldU(head, "t")
		word, _, _ := strings.Cut(text, " ")
		t.mu.Lock()
		if _, dup := t.out[ref]; !dup {
			t.out[ref] = int64(ts)
			t.finals++
		}
		t.texts[word]++
		t.mu.Unlock()
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

// discard keeps only the lines stack.Start and error reporting need.
func discardBulk(l string) bool {
	return strings.HasPrefix(l, "decision ") || strings.HasPrefix(l, "send ") ||
		strings.HasPrefix(l, "deliver ") || strings.HasPrefix(l, "queued ") || strings.HasPrefix(l, "expired ")
}

// latency returns the round trip of message id in µs, if it is complete.
func (t *tap) latency(id uint64) (float64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok1 := t.in[id]
	b, ok2 := t.out[id]
	if !ok1 || !ok2 {
		return 0, false
	}
	return float64(b-a) / 1e3, true
}

func (t *tap) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finals
}

func (t *tap) noteCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.notes
}

func (t *tap) answered(id uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.out[id]
	return ok
}

// waitCount waits until n final answers have been seen in all.
func (t *tap) waitCount(ctx context.Context, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for t.count() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d answers after %v", t.count(), n, timeout)
		case <-t.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// forget drops what the tap holds (between steps).
func (t *tap) forget() {
	t.mu.Lock()
	t.in, t.out = map[uint64]int64{}, map[uint64]int64{}
	t.mu.Unlock()
}

func (t *tap) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var parts []string
	for w, n := range t.texts {
		parts = append(parts, fmt.Sprintf("%q×%d", w, n))
	}
	return strings.Join(parts, ", ")
}

// stackOpts is a stack with n simulated MQTT devices on the run's
// Mosquitto, the module at log level warn, no rate limits, and the host
// stamping its lines.
type stackOpts struct {
	n         int
	simType   string // rover, envsensor, relay
	profile   string
	telemetry time.Duration
	scale     float64
	users     int // user1..userN log in
	conf      []string
}

func (r *runner) startStack(ctx context.Context, o stackOpts, tp *tap) (*stack.Stack, error) {
	br, err := r.broker()
	if err != nil {
		return nil, err
	}
	sc := sim.Scenario{Seed: 1, Broker: br.URL(), TopicPrefix: "bench", TimeScale: o.scale,
		Devices: []sim.DeviceSpec{{ID: o.simType + "-%d", Type: o.simType, Transport: "mqtt", Count: o.n, Armed: true, Telemetry: o.telemetry}}}
	if o.n == 1 {
		sc.Devices[0].ID, sc.Devices[0].Count = o.simType+"-1", 0
	}
	var devs strings.Builder
	devs.WriteString("version: 1\nprofiles: [\"{{profiles}}/*.yaml\"]\ndevices:\n")
	for i := 1; i <= o.n; i++ {
		fmt.Fprintf(&devs, "  - {address: dev%d, id: %s-%d, profile: %s, transport: mqtt, owners: [root], operators: [\"*\"]}\n", i, o.simType, i, o.profile)
	}
	conf := append([]string{"log_level = warn", "rate_user = off", "rate_device = off", "metrics_listen = off",
		"reload_interval = 0", "queue_size = 10000", "mqtt_bridge_id = bench"}, o.conf...)
	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	st, err := stack.Start(sctx, stack.Options{Build: r.cfg.Build, Scenario: sc, Devices: devs.String(), Conf: conf,
		LogLevel: 1, HostArgs: []string{"--stamp"}, Echo: tp.line, Discard: discardBulk})
	if err != nil {
		return nil, err
	}
	// the people who chat are online: answers are delivered (and receipted
	// back to the module), not queued in the host
	var logins strings.Builder
	for i := 1; i <= o.users; i++ {
		if i > 1 {
			logins.WriteByte('\n')
		}
		fmt.Fprintf(&logins, "login user%d", i)
	}
	if o.users > 0 {
		if err := st.Host.Send(logins.String()); err != nil {
			closeStack(st)
			return nil, err
		}
		if err := st.Host.Sync(sctx); err != nil {
			closeStack(st)
			return nil, err
		}
	}
	return st, nil
}

func closeStack(st *stack.Stack) {
	if st != nil {
		_ = st.Close()
	}
}
