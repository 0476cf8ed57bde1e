package devices

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse panic, and what it accepts is consistent.
// The file system is replaced so that globs in the input cannot walk it.
func FuzzParse(f *testing.F) {
	for _, tc := range validationCases {
		f.Add([]byte(tc.text))
	}
	f.Add([]byte(validFile))
	f.Add(genFile(20))
	if data, err := os.ReadFile("../examples/devices.yaml"); err == nil {
		f.Add(data)
	}
	glob := func(pattern string) ([]string, error) {
		if _, err := filepath.Match(pattern, ""); err != nil {
			return nil, err
		}
		if strings.Contains(pattern, "none") {
			return nil, nil
		}
		return []string{"profiles/rover.yaml", "profiles/envsensor.yaml", "profiles/relay.yaml"}, nil
	}
	isDir := func(string) bool { return true }
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse("devices.yaml", data, fakeLoader, glob, isDir)
		if err != nil {
			if cfg != nil {
				t.Fatal("a Config with an error")
			}
			probs := problemList(err)
			if len(probs) == 0 || len(probs) > maxProblems+1 {
				t.Fatalf("%d problems", len(probs))
			}
			for _, p := range probs {
				var le *LoadError
				if errors.As(p, &le) {
					if le.File != "devices.yaml" || le.Msg == "" || !strings.HasPrefix(p.Error(), "devices.yaml") {
						t.Fatalf("bad problem %#v", le)
					}
				} else if !strings.HasSuffix(p.Error(), ": no such test profile") { // the loader's own
					t.Fatalf("problem of unknown origin: %q", p.Error())
				}
			}
			return
		}
		if cfg.ByAddress == nil || cfg.ByID == nil || cfg.GroupByID == nil || cfg.Profiles == nil {
			t.Fatal("nil lookup")
		}
		if len(cfg.ByAddress) != len(cfg.Devices) || len(cfg.ByID) != len(cfg.Devices) {
			t.Fatal("lookups and devices differ")
		}
		for _, d := range cfg.Devices {
			if !ValidAddress(d.Address) || !ValidID(d.ID) || d.Profile == nil ||
				cfg.ByAddress[d.Address] != d || cfg.ByID[d.ID] != d {
				t.Fatalf("bad device %+v", d)
			}
			if (d.Transport == TransportSerial) != (d.Serial != nil) {
				t.Fatalf("serial mismatch %+v", d)
			}
			if d.Serial != nil && (d.Serial.Path == "") == (d.Serial.USBVendor == "") {
				t.Fatalf("serial port %+v", d.Serial)
			}
			if d.MaxInFlight < 0 || d.QueueSize < 0 || d.CommandTTL < 0 {
				t.Fatalf("limits %+v", d)
			}
			_ = d.Role("alice")
			_ = d.Users(RoleOwner)
		}
		for _, g := range cfg.Groups {
			if g.GroupID == 0 || len(g.Members) == 0 || cfg.GroupByID[g.GroupID] != g {
				t.Fatalf("bad group %+v", g)
			}
		}
		for _, s := range cfg.Subscriptions {
			if s.Device == nil || (s.When == "") != (s.Condition == nil) {
				t.Fatalf("bad subscription %+v", s)
			}
		}
		for _, k := range transportKinds {
			_ = cfg.Endpoints(k)
		}
		_ = cfg.Reachable("alice")
	})
}
