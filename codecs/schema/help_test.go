package schema

import (
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	want := map[string]string{
		"move":   "move <distance cm> [speed=0..1]",
		"turn":   "turn <angle deg> [speed=0..1]",
		"stop":   "stop",
		"wait":   "wait <duration ms>",
		"mode":   "mode <mode eco|normal|sport>",
		"lights": "lights <state on|off>",
		"say":    "say <phrase text>",
		"arm":    "arm",
	}
	p := RoverProfile()
	for verb, u := range want {
		if got := p.Command(verb).Usage(); got != u {
			t.Errorf("%s: %q, want %q", verb, got, u)
		}
	}
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		a    Arg
		want string
	}{
		{Arg{Name: "n", Type: TypeInt, Required: true}, "x <n number>"},
		{Arg{Name: "n", Type: TypeInt, Min: f(1), Max: f(8), Required: true}, "x <n 1..8>"},
		{Arg{Name: "n", Type: TypeInt, Min: f(1)}, "x [n=1..]"},
		{Arg{Name: "n", Type: TypeFloat, Max: f(2), Unit: "m"}, "x [n=..2m]"},
		{Arg{Name: "d", Type: TypeInt, Unit: "ms"}, "x [d=Nms]"},
		{Arg{Name: "d", Type: TypeInt, Unit: "ms", Min: f(10), Max: f(100)}, "x [d=10..100ms]"},
		{Arg{Name: "n", Type: TypeFloat}, "x [n=number]"},
		{Arg{Name: "b", Type: TypeBool}, "x [b=on|off]"},
		{Arg{Name: "s", Type: TypeString}, "x [s=text]"},
		{Arg{Name: "e", Type: TypeEnum, Values: []string{"a", "b"}}, "x [e=a|b]"},
	}
	for _, c := range cases {
		cmd := &Command{Verb: "x", Args: []*Arg{&c.a}}
		if got := cmd.Usage(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.a, got, c.want)
		}
	}
}

func TestHelp(t *testing.T) {
	want := `rover 1.2: Four-wheel rover
Commands:
  move <distance cm> [speed=0..1]
    Drive straight (negative distance drives backwards). Example: move 10cm speed=0.5
  turn <angle deg> [speed=0..1]
    Turn in place (positive is clockwise). Example: turn 90deg
  stop
    Stop at once.
  wait <duration ms>
    Pause before the next command. Example: wait 2s
  mode <mode eco|normal|sport>
    Set the driving mode. Example: mode eco
  lights <state on|off>
    Switch the headlights. Example: lights on
  say <phrase text>
    Speak a phrase through the speaker. Example: say "hello there"
  arm (dangerous: asks for confirmation)
    Enable the motors.
  disarm
    Disable the motors.
Telemetry: battery (%, alert below 15), odometry (m), obstacle (cm, alert below 20), speed (m/s)`
	if got := RoverProfile().Help(); got != want {
		t.Errorf("Help():\n%s\nwant:\n%s", got, want)
	}
	empty := &Profile{Name: "e"}
	if got := empty.Help(); got != "e\nNo commands." {
		t.Errorf("empty help %q", got)
	}
}

func TestHelpText(t *testing.T) {
	p := RoverProfile()
	want := map[string]string{
		"move": `move <distance cm> [speed=0..1]
Drive straight (negative distance drives backwards)
  distance: a length in cm, -500..500, required (also mm, m, km, in, ft)
  speed: a number, 0..1, default 0.5; fraction of full speed
Example: move 10cm speed=0.5
Takes up to 30s.`,
		"arm": `arm
Enable the motors
Example: arm
Dangerous: you will be asked to confirm before it runs.`,
		"wait": `wait <duration ms>
Pause before the next command
  duration: a duration in ms, 0..60000, required (also s, min, h)
Example: wait 2s
Takes up to 1m10s.`,
		"say": `say <phrase text>
Speak a phrase through the speaker
  phrase: text of at most 128 characters (the rest of the line), required
Example: say "hello there"`,
		"mode": `mode <mode eco|normal|sport>
Set the driving mode
  mode: one of eco, normal, sport, required
Example: mode eco`,
	}
	for verb, w := range want {
		if got := p.Command(verb).HelpText(); got != w {
			t.Errorf("%s:\n%s\nwant:\n%s", verb, got, w)
		}
	}
}

func TestExampleText(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		args []*Arg
		want string
	}{
		{nil, "x"},
		{[]*Arg{{Name: "d", Type: TypeFloat, Unit: "cm", Required: true}}, "x 10cm"},
		{[]*Arg{{Name: "d", Type: TypeInt, Min: f(1), Max: f(8), Required: true}}, "x 1"},
		{[]*Arg{{Name: "d", Type: TypeInt, Min: f(20), Max: f(30), Required: true}}, "x 20"},
		{[]*Arg{{Name: "d", Type: TypeInt, Min: f(-30), Max: f(-20), Required: true}}, "x -30"},
		{[]*Arg{{Name: "d", Type: TypeFloat, Max: f(-20), Required: true}}, "x -20"},
		{[]*Arg{{Name: "e", Type: TypeEnum, Values: []string{"lo", "hi"}, Required: true}}, "x lo"},
		{[]*Arg{{Name: "b", Type: TypeBool, Required: true}}, "x on"},
		{[]*Arg{{Name: "s", Type: TypeString, MaxLen: 3, Required: true}}, "x hel"},
		{[]*Arg{{Name: "s", Type: TypeString, Required: true}, {Name: "o", Type: TypeInt}, {Name: "p", Type: TypeString, Default: "a b"}}, `x hello p="a b"`},
	}
	for _, c := range cases {
		cmd := &Command{Verb: "x", Args: c.args}
		if got := cmd.ExampleText(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
		p := &Profile{Name: "t", Commands: []*Command{cmd}}
		if inv, err := p.Parse(cmd.ExampleText(), ParseOptions{}); err != nil || inv.Cmd != cmd {
			t.Errorf("%q does not parse: %v", cmd.ExampleText(), err)
		}
	}
	if got := (&Command{Verb: "x", Example: "x 1"}).ExampleText(); got != "x 1" {
		t.Errorf("declared example: %q", got)
	}
	if !strings.Contains(RoverProfile().Command("arm").HelpText(), "Dangerous") {
		t.Error("arm help lacks the danger note")
	}
}
