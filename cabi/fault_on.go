//go:build faultinject

package main

import (
	"strconv"
	"strings"
	"sync"

	"github.com/mesibo-iot/mesibo-iot/module"
)

// faultOptions takes the test-only key `fault_inject = point[:n][,point[:n]...]`
// out of the configuration and returns options that panic at those points
// (init, on_message, on_message_status, on_login, worker, timers, cleanup,
// sender, watcher, reload, metrics, mqtt.supervisor, mqtt.handler,
// mqtt.worker, mqtt.maintain, serial.worker, serial.callback, serial.reader,
// serial.writer): every time, or the first n times only (so a test can see
// the goroutine work again after the panic).
func faultOptions(items []module.ConfigItem) ([]module.ConfigItem, module.Options) {
	var mu sync.Mutex
	var left map[string]int // remaining panics; -1 = always
	kept := items[:0:0]
	for _, it := range items {
		if strings.TrimSpace(it.Name) == "fault_inject" {
			left = map[string]int{}
			for _, p := range strings.Split(it.Value, ",") {
				name, n, ok := strings.Cut(strings.TrimSpace(p), ":")
				left[name] = -1
				if k, err := strconv.Atoi(n); ok && err == nil && k > 0 {
					left[name] = k
				}
			}
			continue
		}
		kept = append(kept, it)
	}
	if left == nil {
		return kept, module.Options{}
	}
	return kept, module.Options{Fault: func(point string) {
		mu.Lock()
		n, ok := left[point]
		if ok && n > 0 {
			left[point] = n - 1
		}
		mu.Unlock()
		if ok && n != 0 {
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

// drainHold takes the test-only key `fault_drain_hold = <user>` out of the
// configuration: the inbox's drainer takes nothing until <user> logs in (or
// the instance is cleaned up), so a test can fill the C inbox
// (inbox_size) and see what a full one does.
func drainHold(items []module.ConfigItem) ([]module.ConfigItem, string) {
	user := ""
	kept := items[:0:0]
	for _, it := range items {
		if strings.TrimSpace(it.Name) == "fault_drain_hold" {
			user = strings.TrimSpace(it.Value)
			continue
		}
		kept = append(kept, it)
	}
	return kept, user
}
