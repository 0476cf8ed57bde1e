package module

import "fmt"

// Result is what a callback returns to mesibo.
type Result int

// Callback results (MESIBO_RESULT_*).
const (
	Pass     Result = 0
	Consumed Result = 1
)

// Message flags (MESIBO_FLAG_*), as mesibo defines them.
const (
	FlagDeliveryReceipt uint64 = 0x1
	FlagReadReceipt     uint64 = 0x2
	FlagTransient       uint64 = 0x4
	FlagPresence        uint64 = 0x8
	FlagMedia           uint64 = 0x100
)

// Message statuses reported through on_message_status.
const (
	StatusDelivered   uint64 = 2
	StatusRead        uint64 = 3
	StatusFail        uint64 = 0x80
	StatusNotActive   uint64 = 0x81
	StatusInboxFull   uint64 = 0x82
	StatusInvalidDest uint64 = 0x83
	StatusExpired     uint64 = 0x84
	StatusNoIncoming  uint64 = 0x86
	StatusBlocked     uint64 = 0x88
)

// Params are a message's parameters in one neutral form, whatever ABI
// revision the host speaks. In callbacks, To and From alias host memory and
// are valid only during the call: use Clone to keep them.
type Params struct {
	AID, ID, RefID, GroupID uint64
	Flags, Type, Expiry     uint64
	Status                  uint64 // on_message_status only
	To, From                string
}

// Clone returns a copy that owns its strings.
func (p *Params) Clone() Params {
	c := *p
	c.To = cloneString(p.To)
	c.From = cloneString(p.From)
	return c
}

func cloneString(s string) string {
	if s == "" {
		return ""
	}
	b := make([]byte, len(s))
	copy(b, s)
	return string(b)
}

// Level is a log level. mesibo always prints level 0.
type Level int

// Log levels.
const (
	LevelError Level = 0
	LevelWarn  Level = 1
	LevelInfo  Level = 2
	LevelDebug Level = 3
)

func (l Level) String() string {
	switch l {
	case LevelError:
		return "error"
	case LevelWarn:
		return "warn"
	case LevelInfo:
		return "info"
	case LevelDebug:
		return "debug"
	}
	return "level?"
}

// Host is what the module needs of mesibo. Implementations must be safe for
// use from any goroutine and must copy params and body before returning.
type Host interface {
	// Send sends a message as a module (mesibo's send_message).
	Send(p *Params, body []byte) error
	// Log writes one line to mesibo's log.
	Log(level Level, msg string)
}

func statusName(s uint64) string {
	switch s {
	case StatusDelivered:
		return "delivered"
	case StatusRead:
		return "read"
	case StatusFail:
		return "failed"
	case StatusNotActive:
		return "not active"
	case StatusInboxFull:
		return "inbox full"
	case StatusInvalidDest:
		return "invalid destination"
	case StatusExpired:
		return "expired"
	case StatusNoIncoming:
		return "no incoming"
	case StatusBlocked:
		return "blocked"
	}
	return fmt.Sprintf("status %d", s)
}
