package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mesibo-iot/mesibo-iot/firmware-sim/stack"
)

// TestDemoPlays runs `make demo`'s script (every step, with its checks that
// each command got exactly one final answer and none ran twice), so that the
// README's first command keeps working.
func TestDemoPlays(t *testing.T) {
	dir := stack.BuildDir()
	for _, f := range []string{"mesibo-host", "mesibo_mod_iot.so", "mesibo_mod_filter.so"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s missing in %s: run `make module host` first", f, dir)
		}
	}
	if err := play("doc", false); err != nil {
		t.Fatalf("the demo failed: %v", err)
	}
}
