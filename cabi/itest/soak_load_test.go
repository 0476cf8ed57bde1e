package itest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
)

// What users send, and the record the audit checks answers against.

type msgKind uint8

const (
	kCommand  msgKind = iota + 1 // a command the sender may run
	kDenied                      // a command the sender may not run (viewer, stranger)
	kBad                         // a command the grammar refuses
	kQuery                       // status, help
	kWatch                       // watch, unwatch
	kArm                         // dangerous command (followed by "yes")
	kConfirm                     // the "yes": answered TRANSIENT, or "Nothing to confirm."
	kBridge                      // to the bridge address: devices, ping
	kOversize                    // longer than max_message
)

var kindNames = map[msgKind]string{kCommand: "command", kDenied: "denied command", kBad: "malformed command",
	kQuery: "status/help", kWatch: "watch/unwatch", kArm: "dangerous command", kConfirm: "confirmation",
	kBridge: "bridge request", kOversize: "oversized message"}

type soakMsg struct {
	id   uint64
	from string
	to   string
	text string
	kind msgKind
	at   time.Time
	dup  bool // sent a second time with the same id
}

// soakHost serialises writes to the host's stdin (a line over PIPE_BUF could
// otherwise interleave with another) and records every message.
type soakHost struct {
	h    *hostproc.Host
	wmu  gosync.Mutex
	next atomic.Uint64

	mu   gosync.Mutex
	msgs map[uint64]*soakMsg
	last time.Time

	online map[string]bool // users logged in (guarded by mu)
}

func newSoakHost(h *hostproc.Host) *soakHost {
	s := &soakHost{h: h, msgs: map[uint64]*soakMsg{}, online: map[string]bool{}}
	s.next.Store(100000)
	return s
}

func (s *soakHost) send(line string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.h.Send(line)
}

// say sends text from user to addr (expiry 20 s, so that every command
// ends within the run) and records it.
func (s *soakHost) say(from, to, text string, kind msgKind) *soakMsg {
	m := &soakMsg{id: s.next.Add(1), from: from, to: to, text: text, kind: kind, at: time.Now()}
	s.mu.Lock()
	s.msgs[m.id] = m
	s.last = m.at
	s.mu.Unlock()
	_ = s.send(fmt.Sprintf("msg %s %s %d expiry=20 -- %s", from, to, m.id, hostproc.Escape(text)))
	return m
}

// again sends m a second time with the same id (a client retry): it must
// not run twice nor get a second answer.
func (s *soakHost) again(m *soakMsg) {
	s.mu.Lock()
	m.dup = true
	s.mu.Unlock()
	_ = s.send(fmt.Sprintf("msg %s %s %d expiry=20 -- %s", m.from, m.to, m.id, hostproc.Escape(m.text)))
}

func (s *soakHost) login(user string, on bool) {
	s.mu.Lock()
	s.online[user] = on
	s.mu.Unlock()
	if on {
		_ = s.send("login " + user)
	} else {
		_ = s.send("logout " + user)
	}
}

func (s *soakHost) isOnline(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.online[user]
}

func (s *soakHost) messages() map[uint64]*soakMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]*soakMsg, len(s.msgs))
	for k, v := range s.msgs {
		c := *v
		out[k] = &c
	}
	return out
}

func (s *soakHost) lastSend() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// ---- users ------------------------------------------------------------------

// runUser sends messages as u, one every interval on average, until ctx
// ends; nothing while u is logged out.
func runUser(ctx context.Context, w *soakWorld, sh *soakHost, u *soakUser, interval time.Duration, seed uint64, maxMessage int) {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	lists := w.devicesOf[u.name]
	pick := func(ds []*soakDevice) *soakDevice {
		if len(ds) == 0 {
			return w.devices[rng.IntN(len(w.devices))]
		}
		return ds[rng.IntN(len(ds))]
	}
	notMine := func(min int) *soakDevice { // a device where u's role is below min
		for range 20 {
			d := w.devices[rng.IntN(len(w.devices))]
			if w.role(u.name, d.addr) < min {
				return d
			}
		}
		return nil
	}
	for {
		wait := time.Duration(float64(interval) * (0.5 + rng.Float64()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !sh.isOnline(u.name) {
			continue
		}
		x := rng.IntN(100)
		switch u.kind {
		case "admin", "owner", "operator":
			switch {
			case x < 70:
				d := pick(lists[roleOperator])
				m := sh.say(u.name, d.addr, soakCommand(rng, d), kCommand)
				if rng.IntN(40) == 0 {
					sh.again(m)
				}
			case x < 76 && u.kind != "operator":
				if d := pickType(rng, lists[roleOwner], "rover"); d != nil {
					sh.say(u.name, d.addr, "arm", kArm)
					sh.say(u.name, d.addr, "yes", kConfirm)
				}
			case x < 80 && u.kind == "operator":
				if d := pickType(rng, lists[roleOperator], "rover"); d != nil && w.role(u.name, d.addr) < roleOwner {
					sh.say(u.name, d.addr, "arm", kDenied) // dangerous: owners only
				}
			case x < 84:
				d := pick(lists[roleOperator])
				sh.say(u.name, d.addr, soakBadCommand(rng, d), kBad)
			case x < 90:
				if d := notMine(roleViewer); d != nil {
					sh.say(u.name, d.addr, soakCommand(rng, d), kDenied)
				}
			case x < 95:
				d := pick(lists[roleViewer])
				sh.say(u.name, d.addr, []string{"status", "help"}[rng.IntN(2)], kQuery)
			case x < 98:
				d := pick(lists[roleViewer])
				sh.say(u.name, d.addr, []string{soakWatch(rng, d), "unwatch"}[rng.IntN(2)], kWatch)
			default:
				d := pick(lists[roleOperator])
				sh.say(u.name, d.addr, "say "+strings.Repeat("x", maxMessage), kOversize)
			}
		case "viewer":
			d := pick(lists[roleViewer])
			switch {
			case x < 40:
				sh.say(u.name, d.addr, soakCommand(rng, d), kDenied) // may watch, not command
			case x < 70:
				sh.say(u.name, d.addr, []string{"status", "help"}[rng.IntN(2)], kQuery)
			case x < 90:
				sh.say(u.name, d.addr, []string{soakWatch(rng, d), "unwatch"}[rng.IntN(2)], kWatch)
			case x < 95:
				if o := notMine(roleViewer); o != nil {
					sh.say(u.name, o.addr, "status", kDenied)
				}
			default:
				sh.say(u.name, "iot", "devices", kBridge)
			}
		default: // stranger: nothing of theirs; everything is refused
			d := w.devices[rng.IntN(len(w.devices))]
			switch {
			case x < 50:
				m := sh.say(u.name, d.addr, soakCommand(rng, d), kDenied)
				if rng.IntN(20) == 0 {
					sh.again(m)
				}
			case x < 65:
				sh.say(u.name, d.addr, "status", kDenied)
			case x < 80:
				sh.say(u.name, d.addr, soakWatch(rng, d), kDenied)
			case x < 85 && d.typ == "rover":
				sh.say(u.name, d.addr, "arm", kDenied)
			case x < 90:
				sh.say(u.name, d.addr, "say "+strings.Repeat("y", maxMessage), kOversize)
			default:
				sh.say(u.name, "iot", []string{"devices", "ping", "reload"}[rng.IntN(3)], kBridge)
			}
		}
	}
}

func pickType(rng *rand.Rand, ds []*soakDevice, typ string) *soakDevice {
	var c []*soakDevice
	for _, d := range ds {
		if d.typ == typ {
			c = append(c, d)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[rng.IntN(len(c))]
}
