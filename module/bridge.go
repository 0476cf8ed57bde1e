package module

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/devices"
)

const bridgeHelp = `mesibo-iot bridge. Commands:
  devices  the devices you may reach, with presence
  ping     check the bridge is alive
  version  the bridge's version
  reload   reload the devices file (admins)
  help     this text
To command a device, chat with its address (e.g. robot1) and send "help".`

func (c *core) onBridgeChat(p *Params, text string, now time.Time) {
	word, _ := firstWord(text)
	switch word {
	case "ping":
		c.say(p, "pong mesibo-iot "+Version, 0)
	case "version":
		c.say(p, fmt.Sprintf("mesibo-iot %s; %d devices, %d groups", Version, len(c.devs.Devices), len(c.devs.Groups)), 0)
	case "help", "?":
		c.say(p, bridgeHelp, 0)
	case "devices", "list":
		c.say(p, c.devicesText(p.From, now), 0)
	case "reload":
		if !c.admins[p.From] {
			c.say(p, "Only an admin may reload (admins in the module's mesibo.conf block).", 0)
			return
		}
		if c.m.cfg.DevicesFile == "" {
			c.say(p, "No devices file is configured (key devices in mesibo.conf).", 0)
			return
		}
		req := *p
		c.m.goSafe("reload", func() { c.m.loadAndPost(&req) })
	case "":
		c.say(p, "Empty message.\n"+bridgeHelp, 0)
	default:
		c.say(p, fmt.Sprintf("unknown command %q for the bridge.\n%s", word, bridgeHelp), 0)
	}
}

func (c *core) devicesText(user string, now time.Time) string {
	var b strings.Builder
	n := 0
	for _, d := range c.devs.Devices {
		st := c.byAddr[d.Address]
		if st == nil {
			continue
		}
		role := c.role(st, user)
		if role < devices.RoleViewer {
			continue
		}
		n++
		if n > 200 {
			b.WriteString("…\n")
			break
		}
		fmt.Fprintf(&b, "%s — %s, %s", d.Address, d.Profile.Name, onlineWord(st.online))
		if !st.lastSeen.IsZero() {
			fmt.Fprintf(&b, ", last seen %s", ago(now.Sub(st.lastSeen)))
		}
		fmt.Fprintf(&b, " (%s)\n", strings.ToLower(role.String()))
	}
	if n == 0 {
		return "You may not reach any device here. Ask a device's owner for access."
	}
	return strings.TrimRight(b.String(), "\n")
}

// loadAndPost loads the devices file off the core goroutine and posts the
// result; req is the admin who asked, nil for a file change. A panic while
// loading is logged and posted as a refused reload, so the admin is answered.
func (m *Module) loadAndPost(req *Params) {
	var devs *devices.Config
	err := errors.New("internal error (recovered panic while loading the devices file)")
	m.safely("reload", func() {
		m.fault("reload")
		devs, err = devices.Load(m.cfg.DevicesFile)
		if err == nil {
			err = checkBridgeAddress(m.cfg.Address, devs)
		}
	})
	m.postWait(event{kind: evReload, devs: devs, reloadBy: req, reloadErr: err})
}

func (c *core) onReload(ev event) {
	say := func(s string, lvl Level) {
		c.m.logf(lvl, "iot: %s", s)
		if ev.reloadBy != nil {
			c.say(ev.reloadBy, s, 0)
		}
	}
	if ev.reloadErr != nil {
		c.m.metrics.reloads.WithLabelValues("error").Inc()
		say(fmt.Sprintf("reload refused, nothing changed: %v", ev.reloadErr), LevelWarn)
		return
	}
	if err := c.m.updateEndpoints(ev.devs); err != nil {
		c.m.metrics.reloads.WithLabelValues("error").Inc()
		say(fmt.Sprintf("reload refused, nothing changed: %v", err), LevelWarn)
		return
	}
	c.apply(ev.devs)
	c.m.routes.Store(buildRoutes(c.m.cfg.Address, ev.devs))
	c.m.metrics.reloads.WithLabelValues("ok").Inc()
	c.m.metrics.devicesRegistered.Set(float64(len(ev.devs.Devices)))
	say(fmt.Sprintf("reloaded %s: %d devices, %d groups", c.m.cfg.DevicesFile, len(ev.devs.Devices), len(ev.devs.Groups)), LevelInfo)
}

// watchDevicesFile polls the devices file and reloads it when it changes.
func (m *Module) watchDevicesFile() {
	defer m.wg.Done()
	stamp := func() string {
		fi, err := os.Stat(m.cfg.DevicesFile)
		if err != nil {
			return "missing"
		}
		return fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
	}
	last := stamp()
	t := time.NewTicker(m.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.safely("watcher", func() {
				m.fault("watcher")
				if s := stamp(); s != last {
					last = s
					m.loadAndPost(nil)
				}
			})
		}
	}
}
