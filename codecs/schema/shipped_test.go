package schema

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const shippedDir = "../../examples/profiles"

// TestShippedProfiles loads every profile in examples/profiles.
func TestShippedProfiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(shippedDir, "*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("profiles: %v %v", files, err)
	}
	ps, err := LoadProfileDir(shippedDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(files) {
		t.Fatalf("%d profiles from %d files", len(ps), len(files))
	}
	for name, p := range ps {
		t.Run(name, func(t *testing.T) {
			if p.Version == "" || p.Description == "" || len(p.Commands) == 0 || len(p.Telemetry) == 0 {
				t.Errorf("incomplete profile %+v", p)
			}
			for _, c := range p.Commands {
				if c.Description == "" {
					t.Errorf("%s has no description", c.Verb)
				}
				inv, err := p.Parse(c.ExampleText(), ParseOptions{ExtraVerbs: ReservedVerbs})
				if err != nil || inv.Cmd != c {
					t.Errorf("example %q: %v", c.ExampleText(), err)
				}
			}
			if p.Help() == "" {
				t.Error("no help")
			}
		})
	}

	rover, envsensor, relay := ps["rover"], ps["envsensor"], ps["relay"]
	if rover == nil || envsensor == nil || relay == nil {
		t.Fatalf("missing a profile: %v", ps)
	}
	if !reflect.DeepEqual(rover, RoverProfile()) {
		t.Error("examples/profiles/rover.yaml and RoverProfileYAML differ")
	}
	if rover.MaxInFlight != 1 || !rover.Command("arm").Dangerous || rover.Command("disarm").Dangerous {
		t.Errorf("rover: %+v", rover)
	}
	if f := rover.Field("battery"); f == nil || f.Below == nil || *f.Below != 15 || f.Unit != "%" {
		t.Errorf("rover battery: %+v", f)
	}
	if f := rover.Field("obstacle"); f == nil || f.Below == nil || *f.Below != 20 || f.Unit != "cm" {
		t.Errorf("rover obstacle: %+v", f)
	}
	if relay.MaxInFlight != 1 {
		t.Errorf("relay max_in_flight %d", relay.MaxInFlight)
	}

	checks := []struct {
		p     *Profile
		input string
		want  map[string]any
	}{
		{envsensor, "set_interval 2min", map[string]any{"interval": int64(120)}},
		{envsensor, "calibrate 0.9°F", map[string]any{"offset": 0.5}},
		{envsensor, "read", map[string]any{}},
		{relay, "on 3", map[string]any{"channel": int64(3)}},
		{relay, "OFF channel=8", map[string]any{"channel": int64(8)}},
		{relay, "pulse 1", map[string]any{"channel": int64(1), "duration": int64(500)}},
		{relay, "pulse 1 1.5s", map[string]any{"channel": int64(1), "duration": int64(1500)}},
	}
	for _, c := range checks {
		inv, err := c.p.Parse(c.input, ParseOptions{ExtraVerbs: ReservedVerbs})
		if err != nil || !reflect.DeepEqual(inv.Args, c.want) {
			t.Errorf("%s %q: %v %v", c.p.Name, c.input, inv, err)
		}
	}
	if _, err := relay.Parse("on 9", ParseOptions{}); err == nil || err.Error() != "channel must be between 1 and 8; usage: on <channel 1..8>" {
		t.Errorf("on 9: %v", err)
	}
	got := envsensor.RenderTelemetry(map[string]any{"temp": 31.04, "humidity": 55.0, "pressure": 1013.25})
	if got != "temp 31.0 °C, humidity 55 %, pressure 1013.2 hPa" {
		t.Errorf("envsensor telemetry %q", got)
	}
	if a := envsensor.Thresholds(map[string]any{"temp": 31.04, "humidity": 85.0}); len(a) != 2 {
		t.Errorf("envsensor alerts %v", a)
	}
	c, err := ParseCondition(envsensor, "pressure < 100kPa")
	if err != nil || c.Value != 1000.0 {
		t.Errorf("pressure condition: %v %v", c, err)
	}
}

// TestFormatDocumented checks that README.md and doc.go name every key the
// loader accepts.
func TestFormatDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(shippedDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]string{topKeys, cmdKeys, argKeys, fieldKeys, argTypes} {
		for _, k := range keys {
			for name, text := range map[string][]byte{"README.md": readme, "doc.go": doc} {
				if !strings.Contains(string(text), k) {
					t.Errorf("%s does not mention %q", name, k)
				}
			}
		}
	}
	for _, u := range unitTable {
		if !strings.Contains(string(readme), u.Symbol) {
			t.Errorf("README.md does not list unit %q", u.Symbol)
		}
	}
}
