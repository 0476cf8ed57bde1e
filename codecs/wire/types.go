// Package wire defines what travels between the bridge and a device: the CBOR
// envelopes (docs/protocol.md gives their CDDL), the serial frame format
// (COBS + CRC) and the streaming frame decoder.
//
// The package imports nothing of the project. Every decoder enforces explicit
// limits (see Limits) and returns typed errors (see Error).
package wire

// ProtocolVersion is the version this package writes in every envelope.
// A receiver accepts envelopes of the same major version and ignores unknown
// map keys; it refuses other versions with ErrVersion.
const ProtocolVersion = 1

// Kind tells which envelope a CBOR message is (map key 1).
type Kind uint8

// Envelope kinds. The numbers are part of the wire protocol.
const (
	KindCommand   Kind = 1
	KindReply     Kind = 2
	KindTelemetry Kind = 3
	KindState     Kind = 4
	KindHello     Kind = 5
	KindHeartbeat Kind = 6
)

func (k Kind) String() string {
	switch k {
	case KindCommand:
		return "command"
	case KindReply:
		return "reply"
	case KindTelemetry:
		return "telemetry"
	case KindState:
		return "state"
	case KindHello:
		return "hello"
	case KindHeartbeat:
		return "heartbeat"
	}
	return "unknown"
}

// Value is one typed argument, result or telemetry value. Only these Go types
// are allowed: int64, uint64, float64, string, bool, []byte. Decoders produce
// exactly these types (never int or float32): an integer decodes as int64 when
// it fits and as uint64 only above math.MaxInt64 (so a uint64(5) comes back as
// int64(5)); a float of any width decodes as float64. NaN and infinities are
// not allowed (omit a value that has no reading).
type Value = any

// Command asks a device to do something. Sent bridge → device.
type Command struct {
	// ID correlates replies with the command. Unique per bridge for the
	// lifetime of the command.
	ID uint64
	// Device is the target device id (for attribution checks; optional on serial).
	Device string
	// Verb is the command name from the device profile, lower case.
	Verb string
	// Args are the typed arguments, by name.
	Args map[string]Value
	// Deadline is the absolute time (Unix milliseconds) after which the device
	// must not start the command. 0 means none.
	Deadline int64
	// IdemKey identifies the command across retransmissions and resends
	// (the sender's address and message id): a device runs a key once.
	IdemKey string
	// ReplyTo names the bridge that holds the command when several bridges
	// share a broker (the device publishes its replies there). Empty on serial.
	ReplyTo string
	// Boot is the device's boot counter (Hello.Boot; on MQTT the high 32
	// bits of its online state's seq) that the bridge knew when it first
	// handed the command to the link, 0 if it knew none. A device whose boot
	// counter is another one must not run the command and answers failed
	// with ReplyRestarted: the command was meant for an earlier boot, which
	// may have run it already (docs/protocol.md §4).
	Boot uint64
}

// Outcome of a command as reported by the device.
type Outcome uint8

// Outcomes. The numbers are part of the wire protocol.
const (
	OutcomeAccepted Outcome = 1 // the device took the command and will run it
	OutcomeDone     Outcome = 2 // finished successfully; terminal
	OutcomeFailed   Outcome = 3 // failed with Code and Text; terminal
)

func (o Outcome) String() string {
	switch o {
	case OutcomeAccepted:
		return "accepted"
	case OutcomeDone:
		return "done"
	case OutcomeFailed:
		return "failed"
	}
	return "unknown"
}

// Terminal reports whether no further reply follows this outcome.
func (o Outcome) Terminal() bool { return o == OutcomeDone || o == OutcomeFailed }

// Reply answers a command. Sent device → bridge.
type Reply struct {
	ID      uint64 // the command's ID
	Device  string // the replying device's id
	Outcome Outcome
	Code    int64  // error code when Outcome is OutcomeFailed: a ReplyCode (see docs/protocol.md)
	Text    string // human-readable detail
	Result  map[string]Value
}

// Telemetry is a set of measurements. Sent device → bridge.
type Telemetry struct {
	Device string
	Seq    uint64 // per-device, increasing; resets on reboot
	TS     int64  // device time, Unix milliseconds; 0 if the device has no clock
	Values map[string]Value
}

// State is the device's presence and identity. On MQTT it is retained, and the
// device's last will is a State with Online false.
type State struct {
	Device         string
	Online         bool
	Seq            uint64 // monotonic per device (boot counter << 32 | counter is fine)
	Firmware       string
	Profile        string
	ProfileVersion string
}

// Hello opens a link (serial) or announces a (re)boot.
type Hello struct {
	Device         string
	Firmware       string
	Profile        string
	ProfileVersion string
	Boot           uint64 // boot counter; a new value means state was lost
	MaxFrame       uint32 // the largest frame payload (bytes) the device accepts, 0 = MaxFramePayload
	// Window (serial): the device implements the windowed link rules of
	// docs/protocol.md §8.6 and accepts up to this many DATA frames
	// outstanding toward it. 0 = stop-and-wait (one frame, §8.2).
	Window uint32
}

// Heartbeat keeps a link alive.
type Heartbeat struct {
	Device string
	Seq    uint64
	Uptime uint64 // milliseconds since boot
}

// Envelope is a decoded message of any kind: exactly one field is non-nil,
// the one Kind names.
type Envelope struct {
	Kind      Kind
	Command   *Command
	Reply     *Reply
	Telemetry *Telemetry
	State     *State
	Hello     *Hello
	Heartbeat *Heartbeat
}

// DeviceID returns the device id the envelope claims, or "".
func (e *Envelope) DeviceID() string {
	switch {
	case e.Command != nil:
		return e.Command.Device
	case e.Reply != nil:
		return e.Reply.Device
	case e.Telemetry != nil:
		return e.Telemetry.Device
	case e.State != nil:
		return e.State.Device
	case e.Hello != nil:
		return e.Hello.Device
	case e.Heartbeat != nil:
		return e.Heartbeat.Device
	}
	return ""
}
