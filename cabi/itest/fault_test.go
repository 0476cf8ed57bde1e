package itest

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mesibo-iot/mesibo-iot/cabi/hostproc"
)

// TestPanicsLeaveHostRunning loads the fault-injection build of the module
// (build/fault/mesibo_mod_iot.so, built with -tags faultinject) and makes
// each callback and goroutine panic in turn: the host must keep running and
// the module must log the recovered panic.
func TestPanicsLeaveHostRunning(t *testing.T) {
	faultDir := filepath.Join(buildDir(t), "fault")
	for _, point := range []string{"init", "on_message", "on_message_status", "on_login", "worker", "timers", "cleanup"} {
		t.Run(point, func(t *testing.T) {
			conf := "module iot {\n metrics_listen = off\n fault_inject = " + point + "\n}\n"
			h := start(t, "doc", conf, faultDir)
			h.Login("alice")
			h.Msg("alice", "iot", 1, "ping")
			h.Msg("alice", "bob", 2, "not for the module")
			sync(t, h)
			if point == "init" {
				wait(t, h, "load failed", func(e hostproc.Event) bool { return e.Kind == "load" && e.Arg(1) == "fail" })
			}
			if point != "cleanup" {
				wait(t, h, "recovered panic logged", func(e hostproc.Event) bool {
					return e.Kind == "log" && strings.Contains(e.Text, "recovered panic in "+point)
				})
			}
			// still alive and routing
			h.Login("bob")
			h.Msg("carol", "bob", 3, "still there?")
			sync(t, h)
			wait(t, h, "delivery after the panic", func(e hostproc.Event) bool { return e.Kind == "deliver" && e.Field("id") == "3" })
			if !h.Alive() {
				t.Fatal("host died")
			}
			if point == "cleanup" {
				if err := quit(h); err != nil {
					t.Fatalf("host exit after a panic in cleanup: %v", err)
				}
				wait(t, h, "recovered panic logged", func(e hostproc.Event) bool {
					return e.Kind == "log" && strings.Contains(e.Text, "recovered panic in cleanup")
				})
				wait(t, h, "bye", func(e hostproc.Event) bool { return e.Kind == "bye" })
			}
		})
	}
}
