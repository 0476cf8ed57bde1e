package module

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/devices"
)

// Message types of what the module sends (params.type). Text for people is
// type 0; apps that send commands as JSON get the machine forms (docs/chat.md).
const (
	TypeText      uint64 = 0
	TypeResult    uint64 = 7301 // JSON: {"id","state","code","text","result"}
	TypeProgress  uint64 = 7302 // JSON: {"id","state","text"}, TRANSIENT
	TypeTelemetry uint64 = 7303 // JSON: {"device","values","ts"}
	TypeAlert     uint64 = 7304 // JSON: {"device","alert","values"}
)

// bridgeVerbs are handled by the module for every device; a profile may not
// declare them.
var bridgeVerbs = []string{"help", "status", "watch", "unwatch", "yes", "no", "cancel"}

func (c *core) role(st *devState, user string) devices.Role {
	if c.admins[user] {
		return devices.RoleOwner
	}
	return st.cfg.Role(user)
}

func (c *core) onChat(p *Params, text string, now time.Time) {
	if p.GroupID != 0 {
		c.onGroupChat(p, text, now)
		return
	}
	if p.To == c.m.cfg.Address {
		c.onBridgeChat(p, text, now)
		return
	}
	st := c.byAddr[p.To]
	if st == nil { // removed by a reload after OnMessage routed it
		c.say(p, fmt.Sprintf("%s is no longer configured here.", p.To), 0)
		return
	}
	if c.seen(p, now) {
		c.m.metrics.duplicates.Inc()
		c.m.logf(LevelDebug, "iot: message %d from %s to %s seen before; not run again", p.ID, p.From, p.To)
		return
	}
	c.onDeviceChat(st, p, text, now)
}

// isJSON reports whether the message is the app form {"cmd":...}.
func isJSON(text string) bool {
	t := strings.TrimSpace(text)
	return strings.HasPrefix(t, "{")
}

func firstWord(text string) (string, string) {
	t := strings.TrimSpace(text)
	i := strings.IndexAny(t, " \t\r\n")
	if i < 0 {
		return strings.ToLower(t), ""
	}
	return strings.ToLower(t[:i]), strings.TrimSpace(t[i+1:])
}

func (c *core) onDeviceChat(st *devState, p *Params, text string, now time.Time) {
	user := p.From
	role := c.role(st, user)
	prof := st.cfg.Profile
	machine := isJSON(text)
	word, rest := firstWord(text)

	// a pending confirmation takes the next message from the same user
	ck := user + "\x00" + st.cfg.Address
	if pc, ok := c.confirms[ck]; ok {
		delete(c.confirms, ck)
		switch word {
		case "yes", "y", "confirm":
			if role < devices.RoleOwner { // rights may have changed by a reload
				c.answer(&pc.req, st.cfg.Address, fmt.Sprintf("You may no longer run %s on %s.", pc.inv.Verb, st.cfg.Address), pc.machine, "rejected", 0, nil)
				return
			}
			c.say(p, fmt.Sprintf("Confirmed: running %s on %s.", pc.inv.Verb, st.cfg.Address), FlagTransient)
			c.submit(st, &pc.req, pc.inv, pc.text, pc.machine, nil, now)
			return
		default:
			c.m.metrics.commands.WithLabelValues(prof.Name, "rejected").Inc()
			c.answer(&pc.req, st.cfg.Address, fmt.Sprintf("%s cancelled (not confirmed).", pc.inv.Verb), pc.machine, "rejected", 0, nil)
			if word == "no" || word == "cancel" {
				return
			}
		}
	}

	if role < devices.RoleViewer {
		c.m.metrics.denied.Inc()
		c.m.logf(LevelInfo, "iot: %s may not use %s; refused", user, st.cfg.Address)
		c.say(p, fmt.Sprintf("You are not allowed to use %s. Ask its owner for access.", st.cfg.Address), 0)
		return
	}

	if !machine {
		switch word {
		case "help", "?":
			if rest != "" && role >= devices.RoleOperator {
				if cmd := prof.Command(strings.ToLower(rest)); cmd != nil {
					c.say(p, cmd.HelpText(), 0)
					return
				}
			}
			c.say(p, c.deviceHelp(st, role), 0)
			return
		case "status":
			c.say(p, c.statusText(st, now), 0)
			return
		case "watch":
			c.watch(st, p, rest, now)
			return
		case "unwatch":
			c.unwatch(st, p)
			return
		case "yes", "no", "cancel":
			c.say(p, "Nothing to confirm.", 0)
			return
		}
	}

	inv, err := prof.Parse(text, schema.ParseOptions{ExtraVerbs: bridgeVerbs})
	if err != nil {
		c.m.metrics.commands.WithLabelValues(prof.Name, "rejected").Inc()
		var pe *schema.ParseError
		msg := err.Error()
		if !errors.As(err, &pe) {
			msg = "could not read that command: " + msg
		}
		c.answer(p, st.cfg.Address, msg, machine, "rejected", 0, nil)
		return
	}
	if role < devices.RoleOperator {
		c.m.metrics.denied.Inc()
		c.answer(p, st.cfg.Address, fmt.Sprintf("You may watch %s but not command it. Ask its owner to make you an operator.", st.cfg.Address), machine, "rejected", 0, nil)
		return
	}
	if inv.Cmd != nil && inv.Cmd.Dangerous && role < devices.RoleOwner {
		c.m.metrics.denied.Inc()
		c.answer(p, st.cfg.Address, fmt.Sprintf("%s is a dangerous command: only an owner of %s may run it.", inv.Verb, st.cfg.Address), machine, "rejected", 0, nil)
		return
	}
	if wait, ok := c.allow(st, user, now); !ok {
		c.m.metrics.rateLimited.Inc()
		c.answer(p, st.cfg.Address, fmt.Sprintf("Too many commands; try again in %s.", humanDuration(wait.Round(time.Second)+time.Second)), machine, "rejected", 0, nil)
		return
	}
	if inv.Cmd != nil && inv.Cmd.Dangerous {
		c.confirms[ck] = &pendingConfirm{dev: st, req: *p, inv: inv, text: text, machine: machine, deadline: now.Add(c.m.cfg.ConfirmTimeout)}
		c.say(p, fmt.Sprintf("%s on %s is dangerous. Reply \"yes\" within %s to run it; anything else cancels.", inv.Verb, st.cfg.Address, humanDuration(c.m.cfg.ConfirmTimeout)), FlagTransient)
		return
	}
	c.submit(st, p, inv, text, machine, nil, now)
}

func (c *core) deviceHelp(st *devState, role devices.Role) string {
	var b strings.Builder
	name := st.cfg.Address
	if st.cfg.Name != "" {
		name += " (" + st.cfg.Name + ")"
	}
	fmt.Fprintf(&b, "%s — %s, you are %s.\n", name, st.cfg.Profile.Name, strings.ToLower(role.String()))
	if role >= devices.RoleOperator {
		b.WriteString(st.cfg.Profile.Help())
		b.WriteString("\n")
	}
	b.WriteString("Also: status · watch [field > value] · unwatch · help")
	return b.String()
}

func (c *core) statusText(st *devState, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is %s", st.cfg.Address, onlineWord(st.online))
	if !st.lastSeen.IsZero() {
		fmt.Fprintf(&b, ", last seen %s", ago(now.Sub(st.lastSeen)))
	} else {
		b.WriteString(", never seen")
	}
	if st.firmware != "" {
		fmt.Fprintf(&b, ", firmware %s", st.firmware)
	}
	b.WriteString(".")
	if len(st.latest) > 0 {
		fmt.Fprintf(&b, " %s (%s).", st.cfg.Profile.RenderTelemetry(st.latest), ago(now.Sub(st.latestAt)))
	}
	if n := len(st.inflight); n > 0 {
		fmt.Fprintf(&b, " %d running.", n)
	}
	if n := len(st.queue); n > 0 {
		fmt.Fprintf(&b, " %d queued.", n)
	}
	return b.String()
}

// onGroupChat runs a command on each device of a group the sender may
// command and answers once with the combined outcome.
func (c *core) onGroupChat(p *Params, text string, now time.Time) {
	g := c.devs.GroupByID[p.GroupID]
	if g == nil {
		return
	}
	if c.seen(p, now) {
		c.m.metrics.duplicates.Inc()
		return
	}
	reply := func(s string) {
		out := Params{AID: p.AID, RefID: p.ID, Flags: FlagDeliveryReceipt, To: p.From, From: c.m.cfg.Address}
		c.track(c.m.send(out, s), p.From, "group result")
	}
	word, _ := firstWord(text)
	run := &groupRun{name: g.Name, req: *p, verb: word}
	type target struct {
		st  *devState
		inv *schema.Invocation
	}
	var targets []target
	for _, d := range g.Members {
		st := c.byAddr[d.Address]
		if st == nil {
			continue
		}
		run.total++
		if c.role(st, p.From) < devices.RoleOperator {
			run.results = append(run.results, d.Address+": not allowed")
			continue
		}
		inv, err := st.cfg.Profile.Parse(text, schema.ParseOptions{ExtraVerbs: bridgeVerbs})
		if err != nil {
			run.results = append(run.results, d.Address+": "+err.Error())
			continue
		}
		if inv.Cmd != nil && inv.Cmd.Dangerous {
			run.results = append(run.results, d.Address+": dangerous commands are not run on groups; send it to the device")
			continue
		}
		if _, ok := c.allow(st, p.From, now); !ok {
			run.results = append(run.results, d.Address+": rate limited")
			continue
		}
		run.verb = inv.Verb
		targets = append(targets, target{st, inv})
	}
	if run.total == 0 {
		reply(fmt.Sprintf("%s has no devices.", g.Name))
		return
	}
	if len(targets) == 0 {
		c.m.metrics.commands.WithLabelValues("group", "rejected").Inc()
		reply(fmt.Sprintf("%s %s: 0/%d done; %s", g.Name, run.verb, run.total, strings.Join(run.results, "; ")))
		return
	}
	run.pending = len(targets)
	for _, t := range targets {
		req := *p
		req.To = t.st.cfg.Address
		c.submit(t.st, &req, t.inv, text, false, run, now)
	}
}
