package itest

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
	"github.com/mesibo-iot/mesibo-iot/firmware-sim/sim"
)

// The audit: from the host's transcript (what the module logged and sent)
// and the simulator's execution record, check the product's promises.

var terminalRE = regexp.MustCompile(`^iot: command (\d+) "([^"]+)" to (\S+): (done|failed|expired|rejected)\b`)

type acceptedCmd struct {
	id        uint64
	verb      string
	user, dev string
	key       string
	outcomes  []string
}

type auditResult struct {
	violations []string
	more       int // violations not listed

	accepted   int
	outcomes   map[string]int // terminal outcome of accepted commands
	lost       int            // failed because the device restarted: "may or may not have run"
	answers    int            // final answers to users
	progress   int            // TRANSIENT messages
	unsolicit  int            // telemetry, alerts, presence (refid 0) to users
	executions int
	panics     int
	byKind     map[string]int // user messages by kind
}

func (a *auditResult) fail(format string, args ...any) {
	if len(a.violations) >= 40 {
		a.more++
		return
	}
	a.violations = append(a.violations, fmt.Sprintf(format, args...))
}

// refusals are the only answers a user with no role on a device may get.
var refusals = []string{"You are not allowed to use ", "Message too long", "The bridge is busy"}

func audit(w *soakWorld, events []hostproc.Event, msgs map[uint64]*soakMsg, execs []sim.Execution) *auditResult {
	a := &auditResult{outcomes: map[string]int{}, byKind: map[string]int{}}
	for _, m := range msgs {
		a.byKind[kindNames[m.kind]]++
	}
	cmds := map[uint64]*acceptedCmd{}
	byKey := map[string]*acceptedCmd{}
	finals := map[uint64]int{}
	for _, e := range events {
		switch e.Kind {
		case "log":
			if strings.Contains(e.Text, "panic") {
				a.panics++
				a.fail("panic logged: %.300s", e.Text)
			}
			if e.Arg(0) != "iot" {
				continue
			}
			if m := acceptedRE.FindStringSubmatch(e.Text); m != nil {
				id, _ := strconv.ParseUint(m[1], 10, 64)
				c := &acceptedCmd{id: id, verb: m[2], user: m[3], dev: m[4], key: m[5]}
				if cmds[id] != nil {
					a.fail("command %d accepted twice", id)
				}
				cmds[id] = c
				if byKey[c.key] != nil {
					a.fail("idempotency key %s accepted twice (commands %d and %d)", c.key, byKey[c.key].id, id)
				}
				byKey[c.key] = c
				continue
			}
			if m := terminalRE.FindStringSubmatch(e.Text); m != nil {
				id, _ := strconv.ParseUint(m[1], 10, 64)
				c := cmds[id]
				if c == nil {
					a.fail("command %d ended %s but was never accepted: %q", id, m[4], e.Text)
					continue
				}
				c.outcomes = append(c.outcomes, m[4])
				if m[4] == "failed" && strings.Contains(e.Text, "may or may not have run") {
					a.lost++
				}
			}
		case "send":
			if e.Arg(0) != "iot" {
				continue
			}
			from, to := e.Field("from"), e.Field("to")
			refid, _ := strconv.ParseUint(e.Field("refid"), 10, 64)
			flags, _ := strconv.ParseUint(e.Field("flags"), 10, 64)
			if strings.Contains(e.Text, strconv.Itoa(spoofMarker)) {
				a.fail("a spoofed value reached %s: %q", to, e.Raw)
			}
			if refid == 0 {
				a.unsolicit++
				if w.byAddr[from] == nil {
					a.fail("unsolicited message from %s (not a device) to %s: %q", from, to, e.Raw)
				} else if w.role(to, from) < roleViewer {
					a.fail("%s got telemetry/alerts of %s without being a viewer: %q", to, from, e.Raw)
				}
				continue
			}
			m := msgs[refid]
			if m == nil || m.from != to || m.to != from {
				a.fail("an answer to message %d went to %s from %s, but %s did not send %d to %s: %q", refid, to, from, to, refid, from, e.Raw)
				continue
			}
			if from != "iot" && w.role(to, from) < roleViewer {
				ok := false
				for _, r := range refusals {
					ok = ok || strings.HasPrefix(e.Text, r)
				}
				if !ok {
					a.fail("%s, who has no role on %s, got more than a refusal: %q", to, from, e.Raw)
				}
			}
			if flags&4 != 0 {
				a.progress++
				continue
			}
			a.answers++
			finals[refid]++
		}
	}

	// every accepted command: from a message its sender may run, exactly
	// one terminal state, exactly one final answer
	for _, c := range cmds {
		user, idStr, _ := strings.Cut(c.key, "/")
		mid, _ := strconv.ParseUint(idStr, 10, 64)
		m := msgs[mid]
		switch {
		case m == nil || user != c.user || m.from != c.user || m.to != c.dev:
			a.fail("command %d (key %s) to %s matches no message its user sent", c.id, c.key, c.dev)
		case m.kind != kCommand && m.kind != kArm:
			a.fail("command %d %q from %s to %s was accepted from a %s (role %d): %q", c.id, c.verb, c.user, c.dev, kindNames[m.kind], w.role(c.user, c.dev), m.text)
		case w.role(c.user, c.dev) < roleOperator || (c.verb == "arm" && w.role(c.user, c.dev) < roleOwner):
			a.fail("command %d %q accepted from %s, role %d on %s", c.id, c.verb, c.user, w.role(c.user, c.dev), c.dev)
		}
		switch len(c.outcomes) {
		case 1:
			a.outcomes[c.outcomes[0]]++
		case 0:
			a.fail("command %d %q from %s to %s never ended", c.id, c.verb, c.user, c.dev)
		default:
			a.fail("command %d %q from %s to %s ended %d times: %v", c.id, c.verb, c.user, c.dev, len(c.outcomes), c.outcomes)
		}
	}
	a.accepted = len(cmds)

	// every message: exactly one final answer (a "yes" at most one: it is
	// answered TRANSIENT when it confirms)
	for _, m := range msgs {
		n := finals[m.id]
		if m.kind == kConfirm {
			if n > 1 {
				a.fail("confirmation %d from %s got %d final answers", m.id, m.from, n)
			}
			continue
		}
		if n != 1 {
			a.fail("%s %d %q from %s to %s got %d final answers (dup %v)", kindNames[m.kind], m.id, m.text, m.from, m.to, n, m.dup)
		}
	}

	// executions: each accepted once at most; done means it ran exactly once
	runs := map[string]int{}
	for _, x := range execs {
		a.executions++
		runs[x.IdemKey]++
		c := byKey[x.IdemKey]
		switch {
		case x.IdemKey == "":
			a.fail("%s executed %s #%d without an idempotency key", x.Device, x.Verb, x.CmdID)
		case c == nil:
			a.fail("%s executed %s (key %q) that the bridge never accepted", x.Device, x.Verb, x.IdemKey)
		case c.dev != x.Device:
			a.fail("%s executed the command %d of %s (key %s)", x.Device, c.id, c.dev, x.IdemKey)
		}
	}
	for k, n := range runs {
		if n > 1 {
			a.fail("command with key %s ran %d times%s", k, n, repeatDetail(k, events, execs))
		}
	}
	for _, c := range cmds {
		if len(c.outcomes) == 1 && c.outcomes[0] == "done" && runs[c.key] != 1 {
			a.fail("command %d %q to %s ended done but ran %d times", c.id, c.verb, c.dev, runs[c.key])
		}
	}
	sort.Strings(a.violations)
	return a
}

// ---- metrics -------------------------------------------------------------

var metricLineRE = regexp.MustCompile(`^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$`)

// scrape reads the module's metrics into name{labels} → value.
func scrape(url string) (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		m := metricLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		out[m[1]+m[2]] = v
	}
	return out, nil
}

// sum adds every series of a metric whose labels contain all of sel.
func sum(ms map[string]float64, name string, sel ...string) float64 {
	t := 0.0
	for k, v := range ms {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, s := range sel {
			ok = ok && strings.Contains(k, s)
		}
		if ok {
			t += v
		}
	}
	return t
}

// repeatDetail describes a command that ran more than once, for the
// failure message: each execution (device, boot, time) and the module's log
// lines about that device or key.
func repeatDetail(key string, events []hostproc.Event, execs []sim.Execution) string {
	var b strings.Builder
	devs := map[string]bool{}
	for _, x := range execs {
		if x.IdemKey == key {
			devs[x.Device] = true
			fmt.Fprintf(&b, "\n    executed on %s: command %d %s boot %d at %s", x.Device, x.CmdID, x.Verb, x.Boot, x.At.Format("15:04:05.000"))
		}
	}
	for _, e := range events {
		if m := acceptedRE.FindStringSubmatch(e.Text); e.Kind == "log" && m != nil && m[5] == key {
			devs[m[4]] = true // the device's address
		}
	}
	n := 0
	for _, e := range events {
		if e.Kind != "log" || n >= 60 {
			continue
		}
		hit := strings.Contains(e.Text, key)
		for d := range devs {
			hit = hit || strings.Contains(e.Text, d)
		}
		if hit {
			n++
			fmt.Fprintf(&b, "\n    log: %.240s", e.Text)
		}
	}
	return b.String()
}
