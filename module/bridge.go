package module

import (
	"fmt"
	"strings"
)

// bridgeHelp is the answer to `help` sent to the bridge address.
const bridgeHelp = `mesibo-iot bridge. Commands:
  ping     check the bridge is alive
  version  the bridge's version
  help     this text`

func (m *Module) handleBridge(p *Params, text string) {
	cmd := strings.ToLower(strings.TrimSpace(text))
	if i := strings.IndexAny(cmd, " \t"); i >= 0 {
		cmd = cmd[:i]
	}
	switch cmd {
	case "ping":
		m.reply(p, "pong mesibo-iot "+Version)
	case "version":
		m.reply(p, "mesibo-iot "+Version)
	case "help", "?":
		m.reply(p, bridgeHelp)
	case "":
		m.reply(p, "Empty message. "+bridgeHelp)
	default:
		m.reply(p, fmt.Sprintf("unknown command %q for the bridge. %s", cmd, bridgeHelp))
	}
}
