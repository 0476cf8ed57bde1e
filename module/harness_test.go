package module

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/memory"
)

// fakeHost records what the module sends and logs.
type fakeHost struct {
	mu   sync.Mutex
	sent []sentMsg
	logs []string
}

type sentMsg struct {
	p    Params
	text string
}

func (h *fakeHost) Send(p *Params, body []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent = append(h.sent, sentMsg{p: p.Clone(), text: string(body)})
	return nil
}

func (h *fakeHost) Log(level Level, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, fmt.Sprintf("[%s] %s", level, msg))
}

func (h *fakeHost) messages() []sentMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sentMsg(nil), h.sent...)
}

func (h *fakeHost) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.logs, "\n")
}

// env is a module with in-memory devices.
type env struct {
	t    *testing.T
	m    *Module
	host *fakeHost
	mem  *memory.Transport
	dir  string
	id   uint64
}

const testDevices = `
version: 1
profiles: [%s/*.yaml]
devices:
  - {address: robot1, id: rover-1, profile: rover, transport: memory, owners: [alice], operators: [bob], viewers: [carol]}
  - {address: robot2, id: rover-2, profile: rover, transport: memory, owners: [alice], operators: [bob]}
  - {address: env1, id: env-1, profile: envsensor, transport: memory, owners: [alice], viewers: ["*"]}
groups:
  - {name: rovers, group_id: 4001, members: [robot1, robot2]}
subscriptions:
  - {user: dora, device: env1, when: humidity > 90}
`

func profilesDir(t *testing.T) string {
	abs, err := filepath.Abs("../examples/profiles")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func newEnv(t *testing.T, extra ...ConfigItem) *env {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "devices.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(testDevices, profilesDir(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	mem := memory.New("memory")
	host := &fakeHost{}
	items := []ConfigItem{
		{"devices", path}, {"metrics_listen", "off"}, {"admins", "root"}, {"log_level", "debug"},
	}
	items = append(items, extra...)
	if !hasItem(items, "reload_interval") {
		items = append(items, ConfigItem{"reload_interval", "off"})
	}
	m, err := New(items, host, Options{Transports: map[string]transports.Transport{"memory": mem}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, m: m, host: host, mem: mem, dir: dir, id: 1000}
	t.Cleanup(func() {
		_ = m.Close()
		if t.Failed() {
			t.Logf("module log:\n%s", host.logText())
			for _, s := range host.messages() {
				t.Logf("sent %s→%s refid=%d flags=%d type=%d exp=%d: %s", s.p.From, s.p.To, s.p.RefID, s.p.Flags, s.p.Type, s.p.Expiry, s.text)
			}
		}
	})
	return e
}

// say sends text from user to address and returns the message id.
func (e *env) say(from, to, text string) uint64 {
	e.id++
	p := Params{ID: e.id, From: from, To: to}
	if r := e.m.OnMessage(&p, []byte(text)); r != Consumed {
		e.t.Fatalf("message %q to %s: result %d, want CONSUMED", text, to, r)
	}
	return e.id
}

func (e *env) sayGroup(from string, gid uint64, text string) uint64 {
	e.id++
	p := Params{ID: e.id, From: from, To: "rovers", GroupID: gid}
	if r := e.m.OnMessage(&p, []byte(text)); r != Consumed {
		e.t.Fatalf("group message: result %d, want CONSUMED", r)
	}
	return e.id
}

// waitMsg waits for a message the module sent matching pred.
func (e *env) waitMsg(what string, pred func(sentMsg) bool) sentMsg {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range e.host.messages() {
			if pred(s) {
				return s
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("no message %s", what)
	return sentMsg{}
}

// waitUntil waits for cond.
func (e *env) waitUntil(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("timed out waiting for %s", what)
}

// reply waits for the non-transient reply to message id.
func (e *env) reply(id uint64) sentMsg {
	e.t.Helper()
	return e.waitMsg(fmt.Sprintf("answering %d", id), func(s sentMsg) bool { return s.p.RefID == id && s.p.Flags&FlagTransient == 0 })
}

// terminal counts non-transient replies with refid id.
func (e *env) terminal(id uint64) int {
	n := 0
	for _, s := range e.host.messages() {
		if s.p.RefID == id && s.p.Flags&FlagTransient == 0 {
			n++
		}
	}
	return n
}

// settle waits until the core has handled everything posted so far.
func (e *env) settle() {
	done := make(chan struct{})
	e.m.events <- event{kind: evLogin, p: Params{From: "__settle"}, online: false, done: done}
	<-done
}

func hasItem(items []ConfigItem, name string) bool {
	for _, it := range items {
		if it.Name == name {
			return true
		}
	}
	return false
}
