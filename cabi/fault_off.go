//go:build !faultinject

package main

import "github.com/mesibo-iot/mesibo-iot/module"

// faultOptions: production builds accept no fault-injection key.
func faultOptions(items []module.ConfigItem) ([]module.ConfigItem, module.Options) {
	return items, module.Options{}
}

func faultAt(module.Options, string) {}

func (i *instance) faultHook() func(string) { return nil }

// drainHold: production builds accept no test hold on the inbox.
func drainHold(items []module.ConfigItem) ([]module.ConfigItem, string) { return items, "" }
