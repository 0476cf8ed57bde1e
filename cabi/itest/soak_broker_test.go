package itest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"syscall"
	"time"
)

const mosquittoBin = "/usr/sbin/mosquitto"

// soakBroker is a Mosquitto the soak starts, kills and restarts on one
// loopback port. Persistence is on (saved every few seconds and at a clean
// stop) so retained device states survive restarts, as in production
// (examples/mosquitto/mosquitto.conf); a SIGKILL loses what changed since the
// last save, which the product must cope with too (stale retained states
// carry lower sequence numbers and are ignored).
type soakBroker struct {
	dir  string
	port int
	conf string

	mu     gosync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	closed bool
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startSoakBroker starts Mosquitto with the soak's configuration and extra
// lines (allow_anonymous true unless extra sets it).
func startSoakBroker(dir string, extra ...string) (*soakBroker, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	b := &soakBroker{dir: dir, port: port, conf: filepath.Join(dir, "mosquitto.conf")}
	anon := "allow_anonymous true\n"
	if strings.Contains(strings.Join(extra, "\n"), "allow_anonymous") {
		anon = ""
	}
	conf := fmt.Sprintf(`listener %d 127.0.0.1
%sset_tcp_nodelay true
persistence true
persistence_location %s/
autosave_interval 5
max_packet_size 66560
max_inflight_messages 20
max_queued_messages 1000
user root
log_dest file %s
log_type error
log_type warning
log_type notice
`, port, anon, dir, filepath.Join(dir, "mosquitto.log")) + strings.Join(extra, "\n") + "\n"
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *soakBroker) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// Running reports whether the broker process is up.
func (b *soakBroker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd != nil
}

// Start runs the broker and waits until it accepts connections (10 s).
func (b *soakBroker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("broker closed")
	}
	if b.cmd != nil {
		return nil
	}
	cmd := exec.Command(mosquittoBin, "-c", b.conf)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			b.cmd, b.done = cmd, done
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
			return fmt.Errorf("mosquitto exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("mosquitto does not accept connections on port %d: %v", b.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the broker with sig (SIGTERM: clean, saves its database;
// SIGKILL: a crash) and waits for it (SIGKILL after 10 s).
func (b *soakBroker) Stop(sig syscall.Signal) error {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return errors.New("broker not running")
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("mosquitto did not stop on %v within 10 s; killed", sig)
	}
}

// Close stops the broker if it runs; it is not started again.
func (b *soakBroker) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	if b.Running() {
		_ = b.Stop(syscall.SIGKILL)
	}
}
