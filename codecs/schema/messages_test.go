package schema

import (
	"testing"
)

// fiveYAML has exactly the commands of the unknown-command message in the
// design brief.
const fiveYAML = `profile: rover
commands:
  move:
    args:
      - {name: distance, type: float, unit: cm, min: -500, max: 500, required: true}
      - {name: speed, type: float, min: 0, max: 1, default: 0.5}
  turn:
    args: [{name: angle, type: float, unit: deg, required: true}]
  stop:
  arm: {dangerous: true}
  disarm:
`

// TestBriefMessages checks the user-facing messages quoted in the design
// brief, word for word.
func TestBriefMessages(t *testing.T) {
	five, err := ParseProfile("five.yaml", []byte(fiveYAML))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ParseProfile("rover.yaml", []byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		p     *Profile
		input string
		kind  ErrorKind
		msg   string
	}{
		{five, "mvoe", ErrUnknownVerb, "unknown command 'mvoe'; did you mean 'move'? Commands: move, turn, stop, arm, disarm. Type 'help' for details."},
		{five, "move 10cm speed=2", ErrBadArg, "speed must be between 0 and 1; usage: move <distance cm> [speed=0..1]"},
		{spec, "mode turbo", ErrBadArg, "mode must be one of eco, normal, sport; usage: mode <mode eco|normal|sport>"},
	}
	for _, c := range cases {
		_, err := c.p.Parse(c.input, ParseOptions{ExtraVerbs: ReservedVerbs})
		pe, ok := err.(*ParseError)
		if !ok || pe.Kind != c.kind || pe.Error() != c.msg {
			t.Errorf("%q:\n got: %v\nwant: %s", c.input, err, c.msg)
		}
	}
	if got := five.Commands[0].Usage(); got != "move <distance cm> [speed=0..1]" {
		t.Errorf("usage %q", got)
	}
	values := map[string]any{"battery": 87.0, "temp": 21.5}
	if got := spec.RenderTelemetry(values); got != "battery 87 %, temp 21.5 °C" {
		t.Errorf("telemetry %q", got)
	}
	alerts := spec.Thresholds(map[string]any{"battery": 12.0})
	if len(alerts) != 1 || alerts[0].String() != "battery 12 % is below 15 %" {
		t.Errorf("alerts %v", alerts)
	}
}
