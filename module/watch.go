package module

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

// watcher is one user's subscription to one device's telemetry: all values
// (coalesced and throttled, only while the user is online) or a condition
// (an alert each time it becomes true, kept by mesibo for offline users).
type watcher struct {
	user     string
	cond     *schema.Condition // nil: all telemetry
	machine  bool
	standing bool // from devices.yaml
	active   bool // condition currently true (edge trigger)
	lastSent time.Time
	pending  map[string]any // values not yet sent (coalesced)
	armed    map[string]bool
}

func (c *core) watch(st *devState, p *Params, rest string, now time.Time) {
	w := &watcher{user: p.From, machine: false}
	if rest != "" {
		cond, err := schema.ParseCondition(st.cfg.Profile, rest)
		if err != nil {
			c.say(p, err.Error(), 0)
			return
		}
		w.cond = cond
	}
	if len(st.watchers) >= 10000 {
		c.say(p, fmt.Sprintf("%s has too many watchers.", st.cfg.Address), 0)
		return
	}
	st.watchers[p.From] = w
	c.watchersChanged()
	if w.cond != nil {
		c.say(p, fmt.Sprintf("Watching %s: you get an alert when %s, even while offline. Send \"unwatch\" to stop.", st.cfg.Address, w.cond.String()), 0)
		return
	}
	c.say(p, fmt.Sprintf("Watching %s: telemetry at most every %s while you are online, alerts always. Send \"unwatch\" to stop.", st.cfg.Address, humanDuration(c.m.cfg.WatchInterval)), 0)
}

func (c *core) unwatch(st *devState, p *Params) {
	if _, ok := st.watchers[p.From]; !ok {
		c.say(p, fmt.Sprintf("You were not watching %s.", st.cfg.Address), 0)
		return
	}
	delete(st.watchers, p.From)
	c.watchersChanged()
	c.say(p, fmt.Sprintf("Stopped watching %s.", st.cfg.Address), 0)
}

// watchersChanged updates the metric and tells transports that share
// telemetry between bridges which devices this bridge needs telemetry of.
func (c *core) watchersChanged() {
	c.m.metrics.watchers.Set(float64(c.countWatchers()))
	per := map[string][]string{}
	for _, st := range c.byAddr {
		if len(st.watchers) > 0 {
			per[st.cfg.Transport] = append(per[st.cfg.Transport], st.cfg.ID)
		}
	}
	for kind, t := range c.m.transports {
		if is, ok := t.(transports.InterestSetter); ok {
			ids := per[kind]
			sort.Strings(ids)
			is.SetInterest(ids)
		}
	}
}

func (c *core) countWatchers() int {
	n := 0
	for _, st := range c.byAddr {
		n += len(st.watchers)
	}
	return n
}

func (c *core) onTelemetry(devID string, t *wire.Telemetry, now time.Time) {
	st := c.byID[devID]
	if st == nil {
		c.m.metrics.telemetryDropped.WithLabelValues("unknown_device").Inc()
		return
	}
	st.lastSeen = now
	if st.latest == nil {
		st.latest = make(map[string]any, len(t.Values))
	}
	for k, v := range t.Values {
		if len(st.latest) >= 256 && st.latest[k] == nil {
			continue
		}
		st.latest[k] = v
	}
	st.latestAt = now
	if len(st.watchers) == 0 {
		return
	}
	prof := st.cfg.Profile
	alerts := prof.Thresholds(t.Values)
	users := make([]string, 0, len(st.watchers))
	for u := range st.watchers {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		w := st.watchers[u]
		if w.cond != nil {
			ok, present := w.cond.Eval(t.Values)
			if !present {
				continue
			}
			if ok && !w.active {
				c.alert(st, w, fmt.Sprintf("%s alert: %s (%s)", st.cfg.Address, w.cond.String(), prof.RenderTelemetry(t.Values)), t.Values)
			}
			w.active = ok
			continue
		}
		// profile thresholds: alert when a field crosses into its alert range
		if w.armed == nil {
			w.armed = map[string]bool{}
		}
		crossed := map[string]bool{}
		for _, a := range alerts {
			crossed[a.Field] = true
			if !w.armed[a.Field] {
				w.armed[a.Field] = true
				c.alert(st, w, fmt.Sprintf("%s alert: %s", st.cfg.Address, a.String()), t.Values)
			}
		}
		for f := range w.armed {
			if _, present := t.Values[f]; present && !crossed[f] {
				delete(w.armed, f)
			}
		}
		if w.pending == nil {
			w.pending = make(map[string]any, len(t.Values))
		}
		for k, v := range t.Values {
			w.pending[k] = v
		}
		if c.online[u] && now.Sub(w.lastSent) >= c.m.cfg.WatchInterval {
			c.flushWatcher(st, w, now)
		} else if !c.online[u] {
			c.m.metrics.telemetryHeld.Inc()
		}
	}
}

// alert sends an alert with an expiry so mesibo keeps it for offline users.
func (c *core) alert(st *devState, w *watcher, text string, values map[string]any) {
	out := Params{Flags: FlagDeliveryReceipt, To: w.user, From: st.cfg.Address, Expiry: uint64(c.m.cfg.AlertExpiry / time.Second)}
	body := text
	if w.machine {
		out.Type = TypeAlert
		if b, err := schema.MachineJSON(map[string]any{"device": st.cfg.Address, "alert": text, "values": values}); err == nil {
			body = string(b)
		}
	}
	c.m.metrics.alerts.Inc()
	c.track(c.m.send(out, body), w.user, "alert")
}

func (c *core) flushWatcher(st *devState, w *watcher, now time.Time) {
	if len(w.pending) == 0 {
		return
	}
	out := Params{Flags: 0, To: w.user, From: st.cfg.Address}
	body := st.cfg.Profile.RenderTelemetry(w.pending)
	if w.machine {
		out.Type = TypeTelemetry
		if b, err := schema.MachineJSON(map[string]any{"device": st.cfg.Address, "values": w.pending, "ts": now.UnixMilli()}); err == nil {
			body = string(b)
		}
	}
	c.m.send(out, body)
	c.m.metrics.telemetryOut.Inc()
	w.pending = nil
	w.lastSent = now
}

// flushWatchers sends coalesced telemetry whose throttle interval has passed.
func (c *core) flushWatchers(now time.Time) {
	for _, st := range c.byAddr {
		for u, w := range st.watchers {
			if w.pending != nil && c.online[u] && now.Sub(w.lastSent) >= c.m.cfg.WatchInterval {
				c.flushWatcher(st, w, now)
			}
		}
	}
}

func (c *core) flushWatchersOf(user string, now time.Time) {
	for _, st := range c.byAddr {
		if w, ok := st.watchers[user]; ok && w.pending != nil {
			c.flushWatcher(st, w, now)
		}
	}
}

// notifyPresence tells the device's online watchers it came or went.
func (c *core) notifyPresence(st *devState, now time.Time) {
	var text string
	if st.online {
		text = fmt.Sprintf("%s is online", st.cfg.Address)
	} else {
		text = fmt.Sprintf("%s is offline", st.cfg.Address)
	}
	if st.reason != "" {
		text += " (" + strings.TrimSpace(st.reason) + ")"
	}
	for u := range st.watchers {
		if !c.online[u] {
			continue
		}
		c.m.send(Params{To: u, From: st.cfg.Address}, text)
	}
}
