package devices

import (
	"testing"
	"time"
)

// TestExampleFile loads the shipped examples/devices.yaml with the real
// profile loader and the example profiles.
func TestExampleFile(t *testing.T) {
	cfg, err := Load("../examples/devices.yaml")
	if err != nil {
		t.Fatalf("examples/devices.yaml: %v", err)
	}
	for _, name := range []string{"rover", "envsensor", "relay"} {
		if cfg.Profiles[name] == nil {
			t.Errorf("profile %s not loaded", name)
		}
	}
	want := []struct{ addr, id, profile, transport string }{
		{"robot1", "rover-001", "rover", "mqtt"},
		{"robot2", "rover-002", "rover", "mqtt"},
		{"envsensor1", "envsensor-001", "envsensor", "mqtt"},
		{"relay1", "relay-01", "relay", "serial"},
	}
	if len(cfg.Devices) != len(want) {
		t.Fatalf("%d devices", len(cfg.Devices))
	}
	for i, w := range want {
		d := cfg.Devices[i]
		if d.Address != w.addr || d.ID != w.id || d.Profile.Name != w.profile || d.Transport != w.transport {
			t.Errorf("device %d = %s %s %s %s, want %v", i, d.Address, d.ID, d.Profile.Name, d.Transport, w)
		}
		if d.Role("alice") != RoleOwner || d.Role("bob") != RoleOperator {
			t.Errorf("%s: alice %v, bob %v", d.Address, d.Role("alice"), d.Role("bob"))
		}
		wantStranger := RoleNone
		if d.Address == "envsensor1" {
			wantStranger = RoleViewer
		}
		if got := d.Role("stranger"); got != wantStranger {
			t.Errorf("%s: stranger %v, want %v", d.Address, got, wantStranger)
		}
		if d.CommandTTL != 10*time.Minute || d.QueueSize != 32 {
			t.Errorf("%s: ttl %v queue %d", d.Address, d.CommandTTL, d.QueueSize)
		}
	}
	if eps := cfg.Endpoints(TransportSerial); len(eps) != 1 || eps[0].DeviceID != "relay-01" ||
		eps[0].Serial.Path != "/tmp/mesibo-iot-sim/relay1" || eps[0].Serial.Baud != 115200 {
		t.Errorf("serial endpoints %+v", eps)
	}
	if eps := cfg.Endpoints(TransportMQTT); len(eps) != 3 {
		t.Errorf("mqtt endpoints %+v", eps)
	}
	g := cfg.GroupByID[4001]
	if g == nil || g.Name != "rovers" || len(g.Members) != 2 || g.Members[0].Address != "robot1" || g.Members[1].Address != "robot2" {
		t.Errorf("group %+v", g)
	}
	if len(cfg.Subscriptions) != 1 {
		t.Fatalf("subscriptions %+v", cfg.Subscriptions)
	}
	s := cfg.Subscriptions[0]
	if s.User != "alice" || s.Device.Address != "envsensor1" || s.Condition == nil || s.Condition.Field.Name != "temp" {
		t.Errorf("subscription %+v", s)
	}
	if r := cfg.Reachable("stranger"); len(r) != 1 || r[0].Address != "envsensor1" {
		t.Errorf("Reachable(stranger) = %v", r)
	}
}
