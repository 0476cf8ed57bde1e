// Package hostproc runs build/mesibo-host as a subprocess and speaks its line
// protocol (docs/host.md): tests, the demo and benchmarks drive the real .so
// through it.
package hostproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options says which host to run and how.
type Options struct {
	Binary     string // path to mesibo-host
	ModulesDir string // --modules
	ABI        string // doc, r2019, r2020 ("" = host default)
	Conf       string // mesibo.conf content, written to a temp file
	ConfFile   string // or an existing file
	LogLevel   int    // --log-level; 0 means 3 (everything)
	Env        []string
	Args       []string // more command-line arguments (e.g. --stamp)
	// Echo, if set, receives every line the host prints (for transcripts).
	Echo func(line string)
	// Discard, if set, says which lines are not kept for WaitFor, Events
	// and Transcript (Echo still gets them): benchmarks that print
	// hundreds of thousands of lines keep only the few they wait for.
	Discard func(line string) bool
}

// Event is one line the host printed.
type Event struct {
	Kind   string            // first word: deliver, send, status, log, decision, ...
	Args   []string          // positional words after the kind, before key=value fields
	Fields map[string]string // key=value fields
	Text   string            // unescaped text after " -- "
	Raw    string
	At     time.Time
}

// Field returns a field's value ("" if absent).
func (e Event) Field(k string) string { return e.Fields[k] }

// Arg returns the i-th positional word ("" if absent).
func (e Event) Arg(i int) string {
	if i < len(e.Args) {
		return e.Args[i]
	}
	return ""
}

// Host is a running mesibo-host.
type Host struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	tmpdir  string
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
	done    chan struct{}
	stderr  strings.Builder
	syncN   int
	waitErr error
}

// Start runs the host and waits for its `ready` line.
func Start(ctx context.Context, o Options) (*Host, error) {
	h := &Host{changed: make(chan struct{}), done: make(chan struct{})}
	conf := o.ConfFile
	if conf == "" {
		dir, err := os.MkdirTemp("", "mesibo-host-")
		if err != nil {
			return nil, err
		}
		h.tmpdir = dir
		conf = filepath.Join(dir, "mesibo.conf")
		if err := os.WriteFile(conf, []byte(o.Conf), 0o644); err != nil {
			return nil, err
		}
	}
	args := []string{"--conf", conf}
	if o.ModulesDir != "" {
		args = append(args, "--modules", o.ModulesDir)
	}
	if o.ABI != "" {
		args = append(args, "--abi", o.ABI)
	}
	lvl := o.LogLevel
	if lvl == 0 {
		lvl = 3
	}
	args = append(args, "--log-level", strconv.Itoa(lvl))
	args = append(args, o.Args...)
	h.cmd = exec.Command(o.Binary, args...)
	h.cmd.Env = append(os.Environ(), o.Env...)
	h.cmd.Stderr = &lockedWriter{mu: &h.mu, b: &h.stderr}
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (run `make host` first)", o.Binary, err)
	}
	go h.read(stdout, o.Echo, o.Discard)
	if _, err := h.WaitFor(ctx, func(e Event) bool { return e.Kind == "ready" }); err != nil {
		h.Kill()
		return nil, fmt.Errorf("host did not get ready: %w; stderr: %s; output:\n%s", err, h.Stderr(), h.Transcript())
	}
	return h, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (h *Host) read(r io.Reader, echo func(string), discard func(string) bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		if echo != nil {
			echo(line)
		}
		if discard != nil && discard(line) {
			continue
		}
		ev := Parse(line)
		h.mu.Lock()
		h.events = append(h.events, ev)
		close(h.changed)
		h.changed = make(chan struct{})
		h.mu.Unlock()
	}
	err := h.cmd.Wait()
	h.mu.Lock()
	h.waitErr = err
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
	close(h.done)
}

// Parse splits one protocol line into an Event.
func Parse(line string) Event {
	ev := Event{Raw: line, Fields: map[string]string{}, At: time.Now()}
	head := line
	if i := strings.Index(line, " -- "); i >= 0 {
		head = line[:i]
		ev.Text = Unescape(line[i+4:])
	} else if strings.HasSuffix(line, " --") {
		head = strings.TrimSuffix(line, " --")
	}
	words := strings.Fields(head)
	if len(words) == 0 {
		return ev
	}
	ev.Kind = words[0]
	for _, w := range words[1:] {
		if k, v, ok := strings.Cut(w, "="); ok && k != "" {
			ev.Fields[k] = v
		} else {
			ev.Args = append(ev.Args, w)
		}
	}
	return ev
}

// Unescape decodes the host's text escapes (\\, \n, \r, \t, \xNN).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 < len(s) {
				if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
					b.WriteByte(byte(v))
					i += 2
					continue
				}
			}
			b.WriteString(`\x`)
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Escape encodes text for a command line (the inverse of the host's decoding).
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Send writes one command line.
func (h *Host) Send(line string) error {
	_, err := io.WriteString(h.stdin, line+"\n")
	return err
}

// Login logs a user in.
func (h *Host) Login(user string) error { return h.Send("login " + user) }

// Logout logs a user out.
func (h *Host) Logout(user string) error { return h.Send("logout " + user) }

// Msg sends a chat message; extra holds key=value options (group=, expiry=, flags=).
func (h *Host) Msg(from, to string, id uint64, text string, extra ...string) error {
	opts := ""
	if len(extra) > 0 {
		opts = " " + strings.Join(extra, " ")
	}
	return h.Send(fmt.Sprintf("msg %s %s %d%s -- %s", from, to, id, opts, Escape(text)))
}

// Sync waits until the host has processed everything sent so far.
func (h *Host) Sync(ctx context.Context) error {
	h.mu.Lock()
	h.syncN++
	tok := "s" + strconv.Itoa(h.syncN)
	h.mu.Unlock()
	if err := h.Send("sync " + tok); err != nil {
		return err
	}
	_, err := h.WaitFor(ctx, func(e Event) bool { return e.Kind == "sync" && e.Arg(0) == tok })
	return err
}

// ErrExited is returned by WaitFor when the host exits first.
var ErrExited = errors.New("mesibo-host exited")

// WaitFor returns the first event (from the start) matching pred, waiting for
// it until ctx is done.
func (h *Host) WaitFor(ctx context.Context, pred func(Event) bool) (Event, error) {
	return h.WaitForAfter(ctx, 0, pred)
}

// WaitForAfter is WaitFor over events with index >= from (see Len).
func (h *Host) WaitForAfter(ctx context.Context, from int, pred func(Event) bool) (Event, error) {
	for {
		h.mu.Lock()
		for i := from; i < len(h.events); i++ {
			if pred(h.events[i]) {
				ev := h.events[i]
				h.mu.Unlock()
				return ev, nil
			}
		}
		from = len(h.events)
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-h.done:
			h.mu.Lock()
			n := len(h.events)
			h.mu.Unlock()
			if from >= n {
				return Event{}, fmt.Errorf("%w: %v", ErrExited, h.waitErr)
			}
		case <-ch:
		}
	}
}

// Len is the number of events so far (a mark for WaitForAfter and Since).
func (h *Host) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// Events returns every event so far.
func (h *Host) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// Since returns the events with index >= from.
func (h *Host) Since(from int) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if from > len(h.events) {
		return nil
	}
	return append([]Event(nil), h.events[from:]...)
}

// Filter returns the events matching pred.
func (h *Host) Filter(pred func(Event) bool) []Event {
	var out []Event
	for _, e := range h.Events() {
		if pred(e) {
			out = append(out, e)
		}
	}
	return out
}

// Transcript returns everything the host printed.
func (h *Host) Transcript() string {
	var b strings.Builder
	for _, e := range h.Events() {
		b.WriteString(e.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Stderr returns what the host wrote to stderr.
func (h *Host) Stderr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stderr.String()
}

// Pid returns the host's process id (0 if it did not start).
func (h *Host) Pid() int {
	if h.cmd == nil || h.cmd.Process == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Alive reports whether the process is still running.
func (h *Host) Alive() bool {
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// Quit asks the host to clean up and exit, and waits for it.
func (h *Host) Quit(ctx context.Context) error {
	_ = h.Send("quit")
	_ = h.stdin.Close()
	select {
	case <-h.done:
	case <-ctx.Done():
		h.Kill()
		return ctx.Err()
	}
	h.cleanupTmp()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.waitErr
}

// Kill stops the host at once.
func (h *Host) Kill() {
	if h.cmd.Process != nil {
		_ = h.cmd.Process.Kill()
	}
	<-h.done
	h.cleanupTmp()
}

func (h *Host) cleanupTmp() {
	if h.tmpdir != "" {
		_ = os.RemoveAll(h.tmpdir)
	}
}
