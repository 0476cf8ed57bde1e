package module

import (
	"fmt"

	"github.com/mesibo-iot/mesibo-iot/transports"
	"github.com/mesibo-iot/mesibo-iot/transports/serial"
)

// The serial transport: devices on serial ports of this machine. Its
// serial_* keys of mesibo.conf are described in docs/serial.md.
func init() {
	transportFactories["serial"] = func(cfg Config, logf func(Level, string), fault func(string)) (transports.Transport, error) {
		o, err := serial.OptionsFromConfig(cfg.Transport) // ignores the mqtt_* keys in the same map
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		o.Logf = func(l serial.LogLevel, msg string) { logf(Level(l), "iot: "+msg) }
		o.Fault = fault
		t, err := serial.New(o)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		return t, nil
	}
	transportConfigCheckers["serial"] = func(cfg Config) error {
		_, err := serial.OptionsFromConfig(cfg.Transport)
		return err
	}
}
