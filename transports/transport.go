// Package transports defines how the module core reaches devices: a small
// Transport interface that MQTT, serial and the in-memory test transport
// implement, and the Sink through which a transport reports what devices say.
//
// A transport owns the goroutines it starts: Start starts them, Close stops
// them and waits. Sink methods are called from the transport's goroutines and
// must not block for long (the core hands work to its own bounded queues).
package transports

import (
	"context"
	"errors"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// Errors a transport returns from Send. Callers match them with errors.Is.
var (
	// ErrOffline: the device cannot be reached now (link down, device absent,
	// broker unreachable). The command was not sent; keep it queued and retry
	// when Presence reports the device online.
	ErrOffline = errors.New("device offline")
	// ErrUnknownDevice: the transport has no endpoint for this device id.
	// Check devices.yaml: the device must name this transport.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("transport closed")
	// ErrTooLarge: the encoded command exceeds the link's frame or message size.
	ErrTooLarge = errors.New("command too large for the link")
)

// Endpoint says where one device is. Exactly one of the per-kind fields is
// used, the one for the transport the device names.
type Endpoint struct {
	DeviceID string // the device's id on the wire (topics, envelopes)
	Serial   *SerialPort
}

// SerialPort describes a device's serial port. Either Path, or a USB identity
// (resolved again at every reconnect, since /dev/ttyUSBn names move).
type SerialPort struct {
	Path       string // e.g. /dev/serial/by-id/usb-...; a pty path in tests
	USBVendor  string // hex, e.g. "2341"
	USBProduct string // hex
	USBSerial  string
	Baud       int    // default 115200
	DataBits   int    // 5..8, default 8
	Parity     string // none|odd|even|mark|space, default none
	StopBits   string // "1", "1.5", "2", default "1"
	DTR        *bool  // initial DTR; nil leaves the driver default
	RTS        *bool  // initial RTS; nil leaves the driver default
}

// Presence is what the link says about a device being reachable.
type Presence struct {
	Online bool
	// Seq is monotonic per device: a report with a Seq below the last one
	// seen is stale and must be ignored. A report with the last Seq repeats
	// it (a retained state seen again after the link came back): it tells
	// that the device did not change meanwhile.
	Seq            uint64
	Boot           uint64 // device boot counter when known (a change means state was lost)
	Firmware       string
	Profile        string
	ProfileVersion string
	Reason         string // why, for logs: "last will", "hello", "silence 5s", "port closed"
	At             time.Time
}

// Sink receives what a transport hears. Implementations must be safe for
// concurrent use and must not block.
type Sink interface {
	// Reply is a device's answer to a command, attributed to dev.
	Reply(dev string, r *wire.Reply)
	// Telemetry is a device's measurement, attributed to dev.
	Telemetry(dev string, t *wire.Telemetry)
	// Presence reports the device reachable or not.
	Presence(dev string, p Presence)
	// Dropped reports device data that was malformed, spoofed or over a limit
	// and was dropped (dev is "" when the source is unknown).
	Dropped(dev string, reason error)
	// Link reports the transport's own connection (broker, port) going up or down.
	Link(transport string, up bool, detail string)
}

// Transport moves commands to devices and their answers back.
type Transport interface {
	// Name is the transport instance's name from the configuration.
	Name() string
	// Kind is "mqtt", "serial" or "memory" (a bounded metrics label).
	Kind() string
	// Start connects and starts the transport's goroutines. It returns once
	// they run; connection failures are retried in the background and
	// reported through Sink.Link.
	Start(ctx context.Context, sink Sink) error
	// SetEndpoints replaces the set of devices this transport serves. It is
	// called before Start and on every reload.
	SetEndpoints(eps []Endpoint) error
	// Send hands cmd to the link and returns nil once the link has taken it
	// (MQTT PUBACK, serial link ack), or an error: ErrOffline (keep queued),
	// ErrUnknownDevice, ErrTooLarge, ErrClosed, or ctx's error. It never waits
	// beyond ctx.
	Send(ctx context.Context, dev string, cmd *wire.Command) error
	// Close stops every goroutine the transport started and waits for them.
	Close() error
}

// InterestSetter is implemented by transports that share telemetry between
// several bridges (MQTT shared subscriptions): the core tells it which
// devices have watchers on this bridge, so telemetry another bridge takes
// for those devices is forwarded here.
type InterestSetter interface {
	SetInterest(deviceIDs []string)
}
