//go:build faultinject

package main

import (
	"strings"

	"github.com/mesibo-iot/mesibo-iot/module"
)

// faultOptions takes the test-only key `fault_inject = point[,point...]` out
// of the configuration and returns options that panic at those points
// (init, on_message, on_message_status, on_login, worker, cleanup, ...).
func faultOptions(items []module.ConfigItem) ([]module.ConfigItem, module.Options) {
	var points map[string]bool
	kept := items[:0:0]
	for _, it := range items {
		if strings.TrimSpace(it.Name) == "fault_inject" {
			points = map[string]bool{}
			for _, p := range strings.Split(it.Value, ",") {
				points[strings.TrimSpace(p)] = true
			}
			continue
		}
		kept = append(kept, it)
	}
	if points == nil {
		return kept, module.Options{}
	}
	return kept, module.Options{Fault: func(point string) {
		if points[point] {
			panic("injected fault at " + point)
		}
	}}
}

func faultAt(o module.Options, point string) {
	if o.Fault != nil {
		o.Fault(point)
	}
}

func (i *instance) faultHook() func(string) { return i.mod.FaultHook() }
