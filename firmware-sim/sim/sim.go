// Package sim simulates mesibo-iot devices (rovers, environment sensors,
// relay boards) that speak the device protocol of docs/protocol.md exactly,
// over MQTT (a paho client per device) and over serial (a pty per device
// with a stable symlink, and the link layer with the Device role). It is
// used by CI, the module's integration tests and the demo.
//
// Start runs a Scenario; Sim.Device returns a device whose methods inject
// faults at run time (GoOffline, Unplug, Reboot, SendGarbage, SetFaults,
// Set...). Every command a device executes is recorded (Sim.Executions), so
// a test can prove nothing ran twice. Behaviour is deterministic under
// Scenario.Seed: each device draws its values from its own source.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt"
)

// Options configure how a Sim reports.
type Options struct {
	// Logf receives the event log (commands, replies, state changes,
	// injected faults) and errors. Nil: the Sim writes to Out itself — a
	// table redrawn every second if Out is a terminal, else one line per
	// event.
	Logf func(format string, args ...any)
	// Quiet reports errors only (to Logf, or to stderr).
	Quiet bool
	// Out is where the terminal view or line log goes when Logf is nil,
	// default os.Stdout.
	Out io.Writer
}

// Sim is a running set of simulated devices.
type Sim struct {
	sc       Scenario
	opts     Options
	profiles map[string]*schema.Profile

	ctx    context.Context
	cancel context.CancelFunc

	broker    *mqtt.Broker
	brokerURL string
	embedded  bool

	devices []*Device
	byID    map[string]*Device

	wgMu    sync.Mutex
	wg      sync.WaitGroup
	closing bool

	execMu sync.Mutex
	execs  []Execution

	closeOnce  sync.Once
	closeErr   error
	stopParent func() bool
	started    time.Time

	view *view
}

var errClosed = errors.New("simulator closed")

// Start starts the devices of sc. It returns once every serial device has
// its pty and symlink and every MQTT device is connecting (use WaitReady to
// wait until they are online). The simulator stops when ctx ends or Close
// is called.
func Start(ctx context.Context, sc Scenario, opts Options) (*Sim, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sc, err := sc.withDefaults()
	if err != nil {
		return nil, err
	}
	profiles, perr := schema.LoadProfileDir(sc.Profiles)
	if profiles == nil && perr != nil {
		return nil, fmt.Errorf("profiles: %w", perr)
	}
	for _, d := range sc.Devices {
		if profiles[d.Type] == nil {
			if perr != nil {
				return nil, fmt.Errorf("no %q profile in %s: %w", d.Type, sc.Profiles, perr)
			}
			return nil, fmt.Errorf("no %q profile in %s", d.Type, sc.Profiles)
		}
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	s := &Sim{sc: sc, opts: opts, profiles: profiles, byID: map[string]*Device{}, started: time.Now()}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if opts.Logf == nil && !opts.Quiet {
		s.view = newView(s, opts.Out)
	}

	if sc.Broker == "" {
		b, err := mqtt.StartBroker(context.WithoutCancel(ctx), mqtt.BrokerOptions{
			Listen: sc.BrokerListen,
			Users:  sc.BrokerUsers,
			Logf: func(level int, msg string) {
				if level <= 0 {
					s.errorf("%s", msg)
				}
			},
		})
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.broker, s.embedded = b, true
		s.brokerURL = "tcp://" + b.Addr()
	} else {
		s.brokerURL = sc.Broker
	}

	for _, spec := range sc.Devices {
		if spec.Transport == TransportSerial {
			if err := os.MkdirAll(sc.PtyDir, 0o755); err != nil {
				_ = s.Close()
				return nil, fmt.Errorf("pty dir: %w", err)
			}
			break
		}
	}
	for _, spec := range sc.Devices {
		d := newDevice(s, spec, profiles[spec.Type])
		if spec.Transport == TransportSerial {
			d.tr = newSerialTr(d)
		} else {
			d.tr = newMQTTTr(d)
		}
		s.devices = append(s.devices, d)
		s.byID[spec.ID] = d
	}
	for _, d := range s.devices {
		d.mu.Lock()
		d.powerOnLocked()
		d.mu.Unlock()
		s.goSafe(d.spec.ID+" sender", func() { d.sender(s.ctx) })
		if err := d.tr.start(s.ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	s.wgMu.Lock()
	s.stopParent = stop
	s.wgMu.Unlock()
	if s.view != nil {
		s.view.start()
	}
	s.logf("simulator started: %d devices, broker %s, seed %d", len(s.devices), s.brokerURL, sc.Seed)
	return s, nil
}

// Close stops every device (MQTT devices publish their offline state and
// disconnect cleanly; serial ptys are closed and their symlinks removed),
// then the embedded broker. It waits for every goroutine the Sim started.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		s.wgMu.Lock()
		s.closing = true
		stop := s.stopParent
		s.wgMu.Unlock()
		if stop != nil {
			stop()
		}
		s.cancel()
		for _, d := range s.devices {
			d.tr.close()
		}
		s.wg.Wait()
		if s.view != nil {
			s.view.stop()
		}
		if s.broker != nil {
			s.closeErr = s.broker.Close()
		}
	})
	return s.closeErr
}

func (s *Sim) isClosed() bool {
	s.wgMu.Lock()
	defer s.wgMu.Unlock()
	return s.closing
}

// goSafe runs f on a goroutine the Sim waits for in Close; a panic is
// recovered and reported. f must return when s.ctx ends.
func (s *Sim) goSafe(name string, f func()) {
	s.wgMu.Lock()
	if s.closing {
		s.wgMu.Unlock()
		return
	}
	s.wg.Add(1)
	s.wgMu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				s.errorf("panic in %s (recovered): %v\n%s", name, r, debug.Stack())
			}
		}()
		f()
	}()
}

// Scenario returns the scenario the Sim runs, with defaults filled in.
func (s *Sim) Scenario() Scenario { return s.sc }

// BrokerURL returns the MQTT broker's URL: the embedded broker's
// tcp://host:port, or Scenario.Broker.
func (s *Sim) BrokerURL() string { return s.brokerURL }

// Device returns the device with the given id, or nil.
func (s *Sim) Device(id string) *Device { return s.byID[id] }

// Devices returns every device, in scenario order.
func (s *Sim) Devices() []*Device { return append([]*Device(nil), s.devices...) }

// Executions returns every command the devices executed, in order.
func (s *Sim) Executions() []Execution {
	s.execMu.Lock()
	defer s.execMu.Unlock()
	return append([]Execution(nil), s.execs...)
}

func (s *Sim) record(e Execution) {
	s.execMu.Lock()
	s.execs = append(s.execs, e)
	s.execMu.Unlock()
}

// WaitReady blocks until every MQTT device is online (connected, its
// retained online state published) and every serial device is plugged in
// (pty and symlink in place; it is online only once a bridge opens it).
func (s *Sim) WaitReady(ctx context.Context) error {
	for _, d := range s.devices {
		cond := func(st DeviceState) bool { return st.Online }
		if d.spec.Transport == TransportSerial {
			cond = func(st DeviceState) bool { return st.Plugged }
		}
		if err := d.Wait(ctx, cond); err != nil {
			return err
		}
	}
	return nil
}

// WaitOnline blocks until every device (or those named) is online.
func (s *Sim) WaitOnline(ctx context.Context, ids ...string) error {
	devs := s.devices
	if len(ids) > 0 {
		devs = nil
		for _, id := range ids {
			d := s.byID[id]
			if d == nil {
				return fmt.Errorf("no device %q", id)
			}
			devs = append(devs, d)
		}
	}
	for _, d := range devs {
		if err := d.WaitOnline(ctx); err != nil {
			return err
		}
	}
	return nil
}

// States returns a snapshot of every device.
func (s *Sim) States() []DeviceState {
	out := make([]DeviceState, len(s.devices))
	for i, d := range s.devices {
		out[i] = d.State()
	}
	return out
}

// Logf adds a line to the simulator's event log (the terminal view's
// recent events, the line log, or Options.Logf); nothing in Quiet mode.
func (s *Sim) Logf(format string, args ...any) { s.logf(format, args...) }

func (s *Sim) logf(format string, args ...any) {
	if s.opts.Quiet {
		return
	}
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
		return
	}
	if s.view != nil {
		s.view.event(fmt.Sprintf(format, args...))
	}
}

func (s *Sim) errorf(format string, args ...any) {
	msg := "error: " + fmt.Sprintf(format, args...)
	if s.opts.Logf != nil {
		s.opts.Logf("%s", msg)
		return
	}
	if s.view != nil && s.view.table {
		s.view.event(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "firmware-sim: "+msg)
}

func itoa(n int) string { return strconv.Itoa(n) }

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
