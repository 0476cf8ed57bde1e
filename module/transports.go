package module

import (
	"fmt"
	"sort"

	"github.com/mesibo-iot/mesibo-iot/devices"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

// TransportFactory builds a transport from the module's configuration.
// fault is Options.Fault (nil in production): the transport calls it at its
// named points so tests can inject panics into its goroutines.
type TransportFactory func(cfg Config, logf func(Level, string), fault func(string)) (transports.Transport, error)

// transportFactories holds the transports the module can build, by the name
// devices.yaml uses. Filled by the transport_*.go files of this package.
var transportFactories = map[string]TransportFactory{}

func (m *Module) transportFor(kind string) (transports.Transport, error) {
	if t, ok := m.transports[kind]; ok {
		return t, nil
	}
	if m.opts.Transports != nil {
		t, ok := m.opts.Transports[kind]
		if !ok {
			return nil, fmt.Errorf("%w: no %q transport given", ErrConfig, kind)
		}
		return t, nil
	}
	f, ok := transportFactories[kind]
	if !ok {
		known := make([]string, 0, len(transportFactories))
		for k := range transportFactories {
			known = append(known, k)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("%w: transport %q is not built in; available: %v", ErrConfig, kind, known)
	}
	return f(m.cfg, func(l Level, s string) { m.logf(l, "%s", s) }, m.opts.Fault)
}

func kindsOf(devs *devices.Config) []string {
	set := map[string]bool{}
	for _, d := range devs.Devices {
		set[d.Transport] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// startTransports builds and starts the transports devs needs.
func (m *Module) startTransports(devs *devices.Config) error {
	m.transports = map[string]transports.Transport{}
	for _, kind := range kindsOf(devs) {
		if err := m.addTransport(kind, devs); err != nil {
			return err
		}
	}
	for _, st := range m.core.byAddr {
		st.tr = m.transports[st.cfg.Transport]
	}
	m.core.watchersChanged()
	m.metrics.devicesRegistered.Set(float64(len(devs.Devices)))
	return nil
}

func (m *Module) addTransport(kind string, devs *devices.Config) error {
	t, err := m.transportFor(kind)
	if err != nil {
		return err
	}
	if err := t.SetEndpoints(devs.Endpoints(kind)); err != nil {
		return fmt.Errorf("%s transport: %w", kind, err)
	}
	if err := t.Start(m.ctx, sink{m: m, name: t.Name()}); err != nil {
		return fmt.Errorf("%s transport: %w", kind, err)
	}
	m.transports[kind] = t
	return nil
}

// updateEndpoints applies a reloaded devices file to the transports,
// starting any transport it newly needs.
func (m *Module) updateEndpoints(devs *devices.Config) error {
	for _, kind := range kindsOf(devs) {
		if _, ok := m.transports[kind]; !ok {
			if err := m.addTransport(kind, devs); err != nil {
				return err
			}
		}
	}
	for kind, t := range m.transports {
		if err := t.SetEndpoints(devs.Endpoints(kind)); err != nil {
			return fmt.Errorf("%s transport: %w", kind, err)
		}
	}
	return nil
}

func (m *Module) closeTransports() {
	for kind, t := range m.transports {
		if err := t.Close(); err != nil {
			m.logf(LevelWarn, "iot: closing %s transport: %v", kind, err)
		}
	}
}

// transportConfigCheckers validate the mqtt_* / serial_* keys of a
// configuration without starting anything (filled by transport_*.go; used by
// tests of the documented sample).
var transportConfigCheckers = map[string]func(Config) error{}
