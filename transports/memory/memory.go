// Package memory is an in-process Transport for unit tests of the module
// core: each device is a Go object whose behaviour the test scripts (answer,
// stay silent, fail, go offline) and which records every command it received.
package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

// Handler decides how a device answers a command: the replies it sends, in
// order. A nil or empty result means the device stays silent.
type Handler func(cmd *wire.Command) []wire.Reply

// Done is the default handler: accepted, then done.
func Done(cmd *wire.Command) []wire.Reply {
	return []wire.Reply{{ID: cmd.ID, Outcome: wire.OutcomeAccepted}, {ID: cmd.ID, Outcome: wire.OutcomeDone}}
}

// Transport is an in-memory transport.
type Transport struct {
	name string

	mu      sync.Mutex
	sink    transports.Sink
	devices map[string]*Device
	seq     uint64
	started bool
	closed  bool
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

// Device is a scripted device.
type Device struct {
	t       *Transport
	id      string
	online  bool
	handler Handler
	delay   time.Duration
	got     []wire.Command
	runs    map[string]int // idempotency key → times run
	cached  map[string][]wire.Reply
}

// New returns a transport named name.
func New(name string) *Transport {
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{name: name, devices: map[string]*Device{}, ctx: ctx, cancel: cancel}
}

// Name implements transports.Transport.
func (t *Transport) Name() string { return t.name }

// Kind implements transports.Transport.
func (t *Transport) Kind() string { return "memory" }

// Start implements transports.Transport.
func (t *Transport) Start(ctx context.Context, sink transports.Sink) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sink = sink
	t.started = true
	sink.Link(t.name, true, "memory transport started")
	return nil
}

// SetEndpoints implements transports.Transport: devices not yet known are
// created offline with the Done handler.
func (t *Transport) SetEndpoints(eps []transports.Endpoint) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ep := range eps {
		if _, ok := t.devices[ep.DeviceID]; !ok {
			t.devices[ep.DeviceID] = &Device{t: t, id: ep.DeviceID, handler: Done, runs: map[string]int{}, cached: map[string][]wire.Reply{}}
		}
	}
	return nil
}

// Device returns the device with id (created offline if unknown).
func (t *Transport) Device(id string) *Device {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.devices[id]
	if !ok {
		d = &Device{t: t, id: id, handler: Done, runs: map[string]int{}, cached: map[string][]wire.Reply{}}
		t.devices[id] = d
	}
	return d
}

// Send implements transports.Transport.
func (t *Transport) Send(ctx context.Context, dev string, cmd *wire.Command) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return transports.ErrClosed
	}
	d, ok := t.devices[dev]
	if !ok {
		t.mu.Unlock()
		return fmt.Errorf("%w: %s", transports.ErrUnknownDevice, dev)
	}
	if !d.online {
		t.mu.Unlock()
		return transports.ErrOffline
	}
	c := *cmd
	d.got = append(d.got, c)
	var replies []wire.Reply
	if prev, ok := d.cached[c.IdemKey]; ok && c.IdemKey != "" {
		replies = prev // a repeat: answer from the cache, do not run again
	} else {
		d.runs[c.IdemKey]++
		replies = d.handler(&c)
		if c.IdemKey != "" {
			d.cached[c.IdemKey] = replies
		}
	}
	delay := d.delay
	sink := t.sink
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		for _, r := range replies {
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-t.ctx.Done():
					return
				}
			}
			r := r
			r.Device = dev
			sink.Reply(dev, &r)
		}
	}()
	return nil
}

// Close implements transports.Transport.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	return nil
}

// SetOnline changes the device's presence and reports it.
func (d *Device) SetOnline(online bool, reason string) {
	t := d.t
	t.mu.Lock()
	d.online = online
	t.seq++
	p := transports.Presence{Online: online, Seq: t.seq, Reason: reason, At: time.Now()}
	sink := t.sink
	t.mu.Unlock()
	if sink != nil {
		sink.Presence(d.id, p)
	}
}

// SetHandler replaces how the device answers.
func (d *Device) SetHandler(h Handler) {
	d.t.mu.Lock()
	d.handler = h
	d.t.mu.Unlock()
}

// SetDelay makes the device wait before each reply.
func (d *Device) SetDelay(delay time.Duration) {
	d.t.mu.Lock()
	d.delay = delay
	d.t.mu.Unlock()
}

// Telemetry makes the device report values.
func (d *Device) Telemetry(values map[string]any) {
	d.t.mu.Lock()
	sink := d.t.sink
	d.t.seq++
	seq := d.t.seq
	d.t.mu.Unlock()
	if sink != nil {
		sink.Telemetry(d.id, &wire.Telemetry{Device: d.id, Seq: seq, TS: time.Now().UnixMilli(), Values: values})
	}
}

// Reply makes the device send an unsolicited reply (for tests of stray or
// spoofed replies).
func (d *Device) Reply(r wire.Reply) {
	d.t.mu.Lock()
	sink := d.t.sink
	d.t.mu.Unlock()
	if sink != nil {
		sink.Reply(d.id, &r)
	}
}

// Commands returns the commands the device received, resends included.
func (d *Device) Commands() []wire.Command {
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	return append([]wire.Command(nil), d.got...)
}

// Runs returns how many times the command with this idempotency key ran.
func (d *Device) Runs(key string) int {
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	return d.runs[key]
}
