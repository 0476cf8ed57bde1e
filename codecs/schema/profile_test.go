package schema

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// specYAML is the example of the format from the package documentation.
const specYAML = `profile: rover            # name, [a-z0-9_-]+
version: "1.2"
description: Four-wheel rover
max_in_flight: 1
commands:
  move:
    description: Drive straight
    args:
      - {name: distance, type: float, unit: cm, min: -500, max: 500, required: true}
      - {name: speed, type: float, min: 0, max: 1, default: 0.5}
    example: move 10cm speed=0.5
    timeout: 30s
  turn:
    args:
      - {name: angle, type: float, unit: deg, required: true}
  mode:
    args: [{name: mode, type: enum, values: [eco, normal, sport], required: true}]
  arm:
    description: Enable the motors
    dangerous: true
  stop:
  say:
    args:
      - name: text
        type: string
        max_len: 20
        default: hi there
telemetry:
  battery: {type: float, unit: "%", format: "%.0f", below: 15}
  temp: {type: float, unit: "°C", format: "%.1f", above: 30}
  obstacle: {type: float, unit: cm}
`

func fp(v float64) *float64 { return &v }

func TestParseProfileSpec(t *testing.T) {
	p, err := ParseProfile("rover.yaml", []byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := &Profile{
		Name: "rover", Version: "1.2", Description: "Four-wheel rover", MaxInFlight: 1,
		Commands: []*Command{
			{Verb: "move", Description: "Drive straight", Example: "move 10cm speed=0.5", Timeout: 30 * time.Second,
				Args: []*Arg{
					{Name: "distance", Type: "float", Unit: "cm", Min: fp(-500), Max: fp(500), Required: true},
					{Name: "speed", Type: "float", Min: fp(0), Max: fp(1), Default: 0.5},
				}},
			{Verb: "turn", Args: []*Arg{{Name: "angle", Type: "float", Unit: "deg", Required: true}}},
			{Verb: "mode", Args: []*Arg{{Name: "mode", Type: "enum", Values: []string{"eco", "normal", "sport"}, Required: true}}},
			{Verb: "arm", Description: "Enable the motors", Dangerous: true},
			{Verb: "stop"},
			{Verb: "say", Args: []*Arg{{Name: "text", Type: "string", MaxLen: 20, Default: "hi there"}}},
		},
		Telemetry: []*Field{
			{Name: "battery", Type: "float", Unit: "%", Format: "%.0f", Below: fp(15)},
			{Name: "temp", Type: "float", Unit: "°C", Format: "%.1f", Above: fp(30)},
			{Name: "obstacle", Type: "float", Unit: "cm"},
		},
	}
	if !reflect.DeepEqual(p, want) {
		for i := range p.Commands {
			if !reflect.DeepEqual(p.Commands[i], want.Commands[i]) {
				t.Errorf("command %d: got %+v", i, p.Commands[i])
				for _, a := range p.Commands[i].Args {
					t.Errorf("  arg %+v", a)
				}
			}
		}
		t.Fatalf("profile differs")
	}
	if got := p.Commands[5].ExampleText(); got != `say text="hi there"` {
		t.Errorf("generated example %q", got)
	}
	if got := p.Commands[1].ExampleText(); got != "turn 10deg" {
		t.Errorf("generated example %q", got)
	}
}

// base is a valid profile; each bad case edits it.
const base = `profile: rover
version: "1.2"
commands:
  move:
    args:
      - {name: distance, type: float, unit: cm, required: true}
      - {name: speed, type: float, min: 0, max: 1}
telemetry:
  battery: {type: float, unit: "%"}
`

func TestParseProfileErrors(t *testing.T) {
	many := "profile: x\ncommands:\n"
	for i := 0; i <= MaxCommands; i++ {
		many += fmt.Sprintf("  c%d:\n", i)
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"number", strings.Replace(base, "min: 0", "min: x", 1),
			`rover.yaml:7: commands.move.args[1].min: expected a number, got "x"`},
		{"unknown key", strings.Replace(base, "    args:", "    exmaple: move 1\n    args:", 1),
			`rover.yaml:5: commands.move: unknown key "exmaple"; did you mean "example"?`},
		{"unknown key no suggestion", strings.Replace(base, "    args:", "    colour: red\n    args:", 1),
			`rover.yaml:5: commands.move: unknown key "colour"; expected one of description, args, example, timeout, dangerous`},
		{"unknown top key", strings.Replace(base, "commands:", "comands:", 1),
			`rover.yaml:3: unknown key "comands"; did you mean "commands"?`},
		{"missing name", strings.Replace(base, "profile: rover\n", "", 1),
			`rover.yaml:1: missing "profile" (the profile's name)`},
		{"bad name", strings.Replace(base, "profile: rover", "profile: Rover!", 1),
			`rover.yaml:1: profile: must be lower-case letters, digits, _ and -, at most 32, got "Rover!"`},
		{"reserved verb", strings.Replace(base, "  move:", "  help:", 1),
			`rover.yaml:4: commands.help: "help" is reserved for the bridge (reserved: help, status, watch, unwatch, yes, no, cancel)`},
		{"odd verb", strings.Replace(base, "  move:", "  \"a\\nb\":", 1),
			`rover.yaml:4: commands."a\nb": a command name must be lower-case letters, digits and _, starting with a letter, at most 32`},
		{"bad verb", strings.Replace(base, "  move:", "  Move:", 1),
			`rover.yaml:4: commands.Move: a command name must be lower-case letters, digits and _, starting with a letter, at most 32`},
		{"type typo", strings.Replace(base, "type: float, unit: cm", "type: flaot, unit: cm", 1),
			`rover.yaml:6: commands.move.args[0].type: unknown type "flaot"; did you mean "float"?`},
		{"missing type", strings.Replace(base, "type: float, unit: cm, ", "", 1),
			`rover.yaml:6: commands.move.args[0]: missing "type" (one of int, float, bool, string, enum)`},
		{"enum without values", strings.Replace(base, "type: float, min: 0, max: 1", "type: enum", 1),
			`rover.yaml:7: commands.move.args[1]: an enum argument needs "values"`},
		{"values on float", strings.Replace(base, "min: 0, max: 1", "values: [a]", 1),
			`rover.yaml:7: commands.move.args[1].values: only enum arguments take "values"`},
		{"unit on bool", strings.Replace(base, "type: float, min: 0, max: 1", "type: bool, unit: cm", 1),
			`rover.yaml:7: commands.move.args[1].unit: only int and float arguments take "unit"`},
		{"min > max", strings.Replace(base, "min: 0, max: 1", "min: 2, max: 1", 1),
			`rover.yaml:7: commands.move.args[1].max: max (1) is less than min (2)`},
		{"int bound", strings.Replace(base, "type: float, min: 0, max: 1", "type: int, min: 0.5", 1),
			`rover.yaml:7: commands.move.args[1].min: must be a whole number for an int argument, got 0.5`},
		{"default out of range", strings.Replace(base, "max: 1}", "max: 1, default: 2}", 1),
			`rover.yaml:7: commands.move.args[1].default: the default must be between 0 and 1`},
		{"default wrong type", strings.Replace(base, "max: 1}", "max: 1, default: fast}", 1),
			`rover.yaml:7: commands.move.args[1].default: the default must be a number, got 'fast'`},
		{"required with default", strings.Replace(base, "required: true}", "required: true, default: 1}", 1),
			`rover.yaml:6: commands.move.args[0].default: a required argument cannot have a default`},
		{"required after optional", strings.Replace(base, "max: 1}", "max: 1}\n      - {name: x, type: int, required: true}", 1),
			`rover.yaml:8: commands.move.args[2]: required arguments must come before optional ones (speed is optional)`},
		{"duplicate arg", strings.Replace(base, "name: speed", "name: distance", 1),
			`rover.yaml:7: commands.move.args[1].name: duplicate argument "distance"`},
		{"bad arg name", strings.Replace(base, "name: speed", "name: Speed", 1),
			`rover.yaml:7: commands.move.args[1].name: an argument name must be lower-case letters, digits and _, starting with a letter, at most 32, got "Speed"`},
		{"arg not mapping", strings.Replace(base, "      - {name: speed, type: float, min: 0, max: 1}", "      - speed", 1),
			`rover.yaml:7: commands.move.args[1]: expected a mapping, got "speed"`},
		{"args not list", strings.Replace(base, "    args:\n      - {name: distance, type: float, unit: cm, required: true}\n      - {name: speed, type: float, min: 0, max: 1}", "    args: 3", 1),
			`rover.yaml:5: commands.move.args: expected a list of arguments, got "3"`},
		{"duplicate key", strings.Replace(base, "telemetry:", "  move:\ntelemetry:", 1),
			`rover.yaml:8: commands: duplicate key "move" (first at line 4)`},
		{"timeout", strings.Replace(base, "    args:", "    timeout: 30 seconds\n    args:", 1),
			`rover.yaml:5: commands.move.timeout: expected a duration like 30s or 500ms, got "30 seconds"`},
		{"negative timeout", strings.Replace(base, "    args:", "    timeout: -1s\n    args:", 1),
			`rover.yaml:5: commands.move.timeout: must be more than 0 and at most 24h0m0s, got -1s`},
		{"dangerous", strings.Replace(base, "    args:", "    dangerous: maybe\n    args:", 1),
			`rover.yaml:5: commands.move.dangerous: expected true or false, got "maybe"`},
		{"example", strings.Replace(base, "    args:", "    example: move 10deg\n    args:", 1),
			`rover.yaml:5: commands.move.example: "move 10deg" does not parse: distance takes a length (mm, cm, m, km, in, ft), not '10deg'; usage: move <distance cm> [speed=0..1]`},
		{"bad unit", strings.Replace(base, "unit: cm", "unit: 1cm", 1),
			`rover.yaml:6: commands.move.args[0].unit: a unit must be one word that cannot be read as part of a number, got "1cm"`},
		{"enum dup", strings.Replace(base, "type: float, min: 0, max: 1", "type: enum, values: [a, A]", 1),
			`rover.yaml:7: commands.move.args[1].values[1]: duplicate value "A"`},
		{"enum space", strings.Replace(base, "type: float, min: 0, max: 1", "type: enum, values: [a, \"very fast\"]", 1),
			`rover.yaml:7: commands.move.args[1].values[1]: an enum value must be one word without quotes, '=' or '\', got "very fast"`},
		{"enum default", strings.Replace(base, "type: float, min: 0, max: 1", "type: enum, values: [a, b], default: c", 1),
			`rover.yaml:7: commands.move.args[1].default: the default must be one of a, b`},
		{"max_len", strings.Replace(base, "type: float, min: 0, max: 1", "type: string, max_len: 0", 1),
			`rover.yaml:7: commands.move.args[1].max_len: must be between 1 and 1024, got 0`},
		{"max_in_flight", strings.Replace(base, "version:", "max_in_flight: -1\nversion:", 1),
			`rover.yaml:2: max_in_flight: must be between 0 and 1024, got -1`},
		{"max_in_flight text", strings.Replace(base, "version:", "max_in_flight: one\nversion:", 1),
			`rover.yaml:2: max_in_flight: expected a whole number, got "one"`},
		{"field type", strings.Replace(base, `{type: float, unit: "%"}`, `{type: enum}`, 1),
			`rover.yaml:9: telemetry.battery.type: unknown type "enum"; expected one of int, float, bool, string`},
		{"field format", strings.Replace(base, `unit: "%"}`, `unit: "%", format: "%d %d"}`, 1),
			`rover.yaml:9: telemetry.battery.format: expected one fmt verb for a float value (%d %x %X %o %b %e %E %f %F %g %G %v), like "%.1f", got "%d %d"`},
		{"field format width", strings.Replace(base, `unit: "%"}`, `unit: "%", format: "%1000f"}`, 1),
			`rover.yaml:9: telemetry.battery.format: expected one fmt verb for a float value (%d %x %X %o %b %e %E %f %F %g %G %v), like "%.1f", got "%1000f"`},
		{"below on bool", strings.Replace(base, `{type: float, unit: "%"}`, `{type: bool, below: 1}`, 1),
			`rover.yaml:9: telemetry.battery.below: only int and float fields take "below"`},
		{"field not mapping", strings.Replace(base, `{type: float, unit: "%"}`, ``, 1),
			`rover.yaml:9: telemetry.battery: expected a mapping, got nothing`},
		{"root list", "- a\n- b\n", `rover.yaml:1: expected a mapping, got a list`},
		{"syntax", "profile: [\n", `rover.yaml:1: YAML syntax: did not find expected node content`},
		{"tab", "profile: x\ncommands:\n\tmove:\n", `rover.yaml:3: YAML syntax: found character that cannot start any token`},
		{"two documents", base + "---\nprofile: y\n", `rover.yaml:10: YAML syntax: only one YAML document is allowed`},
		{"empty", "", `rover.yaml: the file is empty`},
		{"comment only", "# nothing\n", `rover.yaml: the file is empty`},
		{"too large", "# " + strings.Repeat("x", MaxProfileSize), `rover.yaml: the file is too large (262146 bytes; at most 262144)`},
		{"too many commands", many, `rover.yaml:3: commands: too many commands (129; at most 128)`},
		{"several", strings.Replace(strings.Replace(base, "min: 0", "min: x", 1), "unit: cm", "unit: 1cm", 1),
			"rover.yaml:6: commands.move.args[0].unit: a unit must be one word that cannot be read as part of a number, got \"1cm\"\n" +
				`rover.yaml:7: commands.move.args[1].min: expected a number, got "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseProfile("rover.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error; profile %+v", p)
			}
			if p != nil {
				t.Errorf("profile returned with an error")
			}
			if err.Error() != c.want {
				t.Errorf("error\n got: %s\nwant: %s", err, c.want)
			}
			var pe *ProfileError
			if !errors.As(err, &pe) || pe.File != "rover.yaml" {
				t.Errorf("errors.As: %#v", err)
			}
		})
	}
}

func TestParseProfileValid(t *testing.T) {
	cases := []struct {
		name, yaml string
		check      func(*Profile) bool
	}{
		{"base", base, func(p *Profile) bool { return len(p.Commands) == 1 && len(p.Telemetry) == 1 }},
		{"null description", base + "description:\n", func(p *Profile) bool { return p.Description == "" }},
		{"numeric version", strings.Replace(base, `"1.2"`, "1.10", 1), func(p *Profile) bool { return p.Version == "1.10" }},
		{"no commands", "profile: sensor\ntelemetry:\n  t: {type: int}\n", func(p *Profile) bool { return len(p.Commands) == 0 }},
		{"anchors", `profile: a
commands:
  fwd:
    args: [&spd {name: speed, type: float, min: 0, max: 1, default: 0.5}]
  back:
    args: [*spd]
`, func(p *Profile) bool {
			return len(p.Commands) == 2 && p.Commands[1].Args[0].Default == 0.5
		}},
		{"default with unit", `profile: a
commands:
  wait:
    args: [{name: t, type: int, unit: ms, default: 2s}]
`, func(p *Profile) bool { return p.Commands[0].Args[0].Default == int64(2000) }},
		{"opaque unit", `profile: a
commands:
  set:
    args: [{name: co2, type: int, unit: ppm, required: true}]
`, func(p *Profile) bool {
			inv, err := p.Parse("set 400ppm", ParseOptions{})
			return err == nil && inv.Args["co2"] == int64(400) && p.Commands[0].ExampleText() == "set 10ppm"
		}},
		{"bool default", `profile: a
commands:
  led:
    args: [{name: on, type: bool, default: yes}]
`, func(p *Profile) bool { return p.Commands[0].Args[0].Default == true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseProfile("x.yaml", []byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(p) {
				t.Fatalf("unexpected profile %+v", p)
			}
		})
	}
}

func TestLoadProfileFileAndDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", base)
	write("b.yml", strings.Replace(base, "profile: rover", "profile: other", 1))
	write("c.yaml", base) // same name as a.yaml
	write("d.yaml", "profile: [\n")
	write(".hidden.yaml", "junk: [")
	write("notes.txt", "junk")
	got, err := LoadProfileDir(dir)
	if len(got) != 2 || got["rover"] == nil || got["other"] == nil {
		t.Fatalf("got %v", got)
	}
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		filepath.Join(dir, "c.yaml") + `: profile "rover" is already declared in ` + filepath.Join(dir, "a.yaml"),
		filepath.Join(dir, "d.yaml") + ":1: YAML syntax",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if _, err := LoadProfileFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	write("big.yaml", "# "+strings.Repeat("x", MaxProfileSize+10))
	if _, err := LoadProfileFile(filepath.Join(dir, "big.yaml")); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("big file: %v", err)
	}
	if _, err := LoadProfileDir(filepath.Join(dir, "nope")); err == nil {
		t.Error("missing dir: no error")
	}
}
