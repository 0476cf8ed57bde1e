package module

import (
	"fmt"

	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/mqtt"
)

// The MQTT transport, built from the mqtt_* keys of mesibo.conf.
func init() {
	transportFactories["mqtt"] = func(cfg Config, logf func(Level, string), fault func(string)) (transports.Transport, error) {
		opts, err := mqtt.OptionsFromConfig(cfg.Transport)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		opts.Logf = func(level int, msg string) { logf(Level(level), "iot: "+msg) }
		opts.Fault = fault
		t, err := mqtt.New(opts)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		return t, nil
	}
	transportConfigCheckers["mqtt"] = func(cfg Config) error {
		_, err := mqtt.OptionsFromConfig(cfg.Transport)
		return err
	}
}
