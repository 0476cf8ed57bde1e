package module

import (
	"os"
	"strings"
	"testing"
)

// TestShippedExampleConfigLoads: examples/mesibo.conf's iot block is valid.
func TestShippedExampleConfigLoads(t *testing.T) {
	b, err := os.ReadFile("../examples/mesibo.conf")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	var items []ConfigItem
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "module iot"):
			in = true
		case !in || line == "" || strings.HasPrefix(line, "#"):
		case line == "}":
			in = false
		default:
			k, v, _ := strings.Cut(line, "=")
			items = append(items, ConfigItem{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	cfg, err := ParseConfig(items)
	if err != nil {
		t.Fatal(err)
	}
	for name, check := range transportConfigCheckers {
		if err := check(cfg); err != nil {
			t.Fatalf("%s keys: %v", name, err)
		}
	}
	if !cfg.ProgressUpdates || cfg.DevicesFile == "" {
		t.Fatalf("parsed %+v", cfg)
	}
}
