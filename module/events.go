package module

import (
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/devices"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

type eventKind uint8

const (
	evChat eventKind = iota + 1
	evTooLong
	evStatus
	evLogin
	evReply
	evTelemetry
	evPresence
	evDropped
	evLink
	evSendResult
	evReload
	evShutdown
)

func (k eventKind) String() string {
	switch k {
	case evChat:
		return "message"
	case evTooLong:
		return "oversized message"
	case evStatus:
		return "status"
	case evLogin:
		return "login"
	case evReply:
		return "reply"
	case evTelemetry:
		return "telemetry"
	case evPresence:
		return "presence"
	case evDropped:
		return "dropped"
	case evLink:
		return "link"
	case evSendResult:
		return "send result"
	case evReload:
		return "reload"
	case evShutdown:
		return "shutdown"
	}
	return "event"
}

// event is everything the core goroutine handles.
type event struct {
	kind   eventKind
	at     time.Time
	p      Params // chat, status, login (From = user)
	body   []byte
	online bool

	dev       string // device id (transport events)
	transport string
	reply     *wire.Reply
	telemetry *wire.Telemetry
	presence  transports.Presence
	err       error
	cmdID     uint64
	detail    string

	devs      *devices.Config // reload
	reloadBy  *Params         // who asked (nil: file change)
	reloadErr error

	done chan struct{}
}

// sink adapts the Sink interface of one transport to core events.
type sink struct {
	m    *Module
	name string
}

func (s sink) Reply(dev string, r *wire.Reply) {
	// replies are never dropped: the transport goroutine waits for room
	s.m.postWait(event{kind: evReply, dev: dev, reply: r, transport: s.name, at: s.m.now()})
}

func (s sink) Telemetry(dev string, t *wire.Telemetry) {
	s.m.metrics.telemetryIn.WithLabelValues(s.name).Inc()
	select {
	case s.m.events <- event{kind: evTelemetry, dev: dev, telemetry: t, transport: s.name, at: s.m.now()}:
	default:
		s.m.metrics.telemetryDropped.WithLabelValues("queue_full").Inc()
	}
}

func (s sink) Presence(dev string, p transports.Presence) {
	s.m.postWait(event{kind: evPresence, dev: dev, presence: p, transport: s.name, at: s.m.now()})
}

func (s sink) Dropped(dev string, reason error) {
	s.m.metrics.decodeErrors.WithLabelValues(s.name).Inc()
	select {
	case s.m.events <- event{kind: evDropped, dev: dev, err: reason, transport: s.name}:
	default:
	}
}

func (s sink) Link(transport string, up bool, detail string) {
	v := 0.0
	if up {
		v = 1
	}
	s.m.metrics.linkUp.WithLabelValues(transport).Set(v)
	s.m.postWait(event{kind: evLink, transport: transport, online: up, detail: detail, at: s.m.now()})
}
