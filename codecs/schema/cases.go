package schema

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// RoverProfileYAML is the rover profile that ChatCases run against. It is
// the same profile as examples/profiles/rover.yaml (a test checks that they
// parse alike).
const RoverProfileYAML = `# A four-wheel rover. See README.md in this directory for the format.
profile: rover
version: "1.2"
description: Four-wheel rover
max_in_flight: 1            # one command at a time

commands:
  move:
    description: Drive straight (negative distance drives backwards)
    args:
      - {name: distance, type: float, unit: cm, min: -500, max: 500, required: true}
      - {name: speed, type: float, min: 0, max: 1, default: 0.5, description: fraction of full speed}
    example: move 10cm speed=0.5
    timeout: 30s
  turn:
    description: Turn in place (positive is clockwise)
    args:
      - {name: angle, type: float, unit: deg, min: -360, max: 360, required: true}
      - {name: speed, type: float, min: 0, max: 1, default: 0.5, description: fraction of full speed}
    example: turn 90deg
    timeout: 15s
  stop:
    description: Stop at once
    timeout: 2s
  wait:
    description: Pause before the next command
    args:
      - {name: duration, type: int, unit: ms, min: 0, max: 60000, required: true}
    example: wait 2s
    timeout: 70s
  mode:
    description: Set the driving mode
    args:
      - {name: mode, type: enum, values: [eco, normal, sport], required: true}
  lights:
    description: Switch the headlights
    args:
      - {name: state, type: bool, required: true}
    example: lights on
  say:
    description: Speak a phrase through the speaker
    args:
      - {name: phrase, type: string, max_len: 128, required: true}
    example: say "hello there"
  arm:
    description: Enable the motors
    dangerous: true
  disarm:
    description: Disable the motors

telemetry:
  battery:  {type: float, unit: "%", format: "%.0f", below: 15}
  odometry: {type: float, unit: m, format: "%.2f", description: distance driven since boot}
  obstacle: {type: float, unit: cm, format: "%.0f", below: 20, description: nearest obstacle ahead}
  speed:    {type: float, unit: m/s, format: "%.2f"}
`

var (
	roverOnce sync.Once
	rover     *Profile
)

// RoverProfile returns the parsed RoverProfileYAML (shared; do not modify).
func RoverProfile() *Profile {
	roverOnce.Do(func() {
		p, err := ParseProfile("rover.yaml", []byte(RoverProfileYAML))
		if err != nil {
			panic("schema: RoverProfileYAML: " + err.Error())
		}
		rover = p
	})
	return rover
}

// ChatCaseOptions are the options ChatCases are parsed with: the bridge's
// reserved verbs are extra verbs.
var ChatCaseOptions = ParseOptions{ExtraVerbs: ReservedVerbs}

// ChatCase is one case of the chat grammar against RoverProfile: an input
// and either the invocation it gives or the error it gives.
type ChatCase struct {
	Input string
	// For a success (Err == 0):
	Verb string
	Args map[string]any // the exact typed Args, defaults included (nil = none)
	Rest string         // for extra verbs
	JSON bool           // the input uses the JSON form
	// For a failure:
	Err ErrorKind
	Msg string // the exact message; "" = not checked
}

// Check compares what Parse returned with the case; nil when they agree.
func (c ChatCase) Check(inv *Invocation, err error) error {
	if c.Err != 0 {
		pe, ok := err.(*ParseError)
		if !ok {
			return fmt.Errorf("%q: want a %v error, got %v (%v)", c.Input, c.Err, err, inv)
		}
		if pe.Kind != c.Err {
			return fmt.Errorf("%q: want a %v error, got %v: %s", c.Input, c.Err, pe.Kind, pe.Msg)
		}
		if c.Msg != "" && pe.Msg != c.Msg {
			return fmt.Errorf("%q: message\n got: %s\nwant: %s", c.Input, pe.Msg, c.Msg)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%q: unexpected error: %v", c.Input, err)
	}
	if inv.Verb != c.Verb || inv.Rest != c.Rest || inv.JSON != c.JSON {
		return fmt.Errorf("%q: got verb %q rest %q json %v, want verb %q rest %q json %v",
			c.Input, inv.Verb, inv.Rest, inv.JSON, c.Verb, c.Rest, c.JSON)
	}
	if len(inv.Args) != len(c.Args) || (len(c.Args) > 0 && !reflect.DeepEqual(inv.Args, c.Args)) {
		return fmt.Errorf("%q: got args %#v, want %#v", c.Input, inv.Args, c.Args)
	}
	return nil
}

const (
	roverCommands = "Commands: move, turn, stop, wait, mode, lights, say, arm, disarm. Type 'help' for details."
	moveUsage     = "; usage: move <distance cm> [speed=0..1]"
	turnUsage     = "; usage: turn <angle deg> [speed=0..1]"
	waitUsage     = "; usage: wait <duration ms>"
	modeUsage     = "; usage: mode <mode eco|normal|sport>"
	lightsUsage   = "; usage: lights <state on|off>"
	sayUsage      = "; usage: say <phrase text>"
	jsonHint      = `; expected {"cmd":"<command>","args":{"<name>":<value>,...}}`
)

type args = map[string]any

// ChatCases is the shared table of chat-grammar cases (see ChatCase). The
// firmware simulator and the fuzz seeds reuse it.
var ChatCases = []ChatCase{
	// Positional, named and mixed arguments; units.
	{Input: "move 10cm speed=0.5", Verb: "move", Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: "move 10", Verb: "move", Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: "move 0.1m", Verb: "move", Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: "MOVE 10CM", Verb: "move", Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: "  move\t10cm   speed=0.25  ", Verb: "move", Args: args{"distance": 10.0, "speed": 0.25}},
	{Input: "move distance=-30 speed=1", Verb: "move", Args: args{"distance": -30.0, "speed": 1.0}},
	{Input: "move speed=0.2 distance=5.5", Verb: "move", Args: args{"distance": 5.5, "speed": 0.2}},
	{Input: "move 10cm 0.3", Verb: "move", Args: args{"distance": 10.0, "speed": 0.3}},
	{Input: "move 1ft", Verb: "move", Args: args{"distance": 30.48, "speed": 0.5}},
	{Input: "move 2in", Verb: "move", Args: args{"distance": 5.08, "speed": 0.5}},
	{Input: "move 1e2mm", Verb: "move", Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: "move .5", Verb: "move", Args: args{"distance": 0.5, "speed": 0.5}},
	{Input: "move -0.5m", Verb: "move", Args: args{"distance": -50.0, "speed": 0.5}},
	{Input: "move +1.1m", Verb: "move", Args: args{"distance": 110.0, "speed": 0.5}},
	{Input: `move "10cm"`, Verb: "move", Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: "move 10cm SPEED=0.1", Verb: "move", Args: args{"distance": 10.0, "speed": 0.1}},
	{Input: "move\u00a010cm", Verb: "move", Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: "move 10cm\n", Verb: "move", Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: "turn 90", Verb: "turn", Args: args{"angle": 90.0, "speed": 0.5}},
	{Input: "turn -45°", Verb: "turn", Args: args{"angle": -45.0, "speed": 0.5}},
	{Input: "turn 90degrees 1", Verb: "turn", Args: args{"angle": 90.0, "speed": 1.0}},
	{Input: "turn 0.5rad", Verb: "turn", Args: args{"angle": 28.6478897565, "speed": 0.5}},
	{Input: "wait 500", Verb: "wait", Args: args{"duration": int64(500)}},
	{Input: "wait 2s", Verb: "wait", Args: args{"duration": int64(2000)}},
	{Input: "wait 1.5s", Verb: "wait", Args: args{"duration": int64(1500)}},
	{Input: "wait 1min", Verb: "wait", Args: args{"duration": int64(60000)}},
	{Input: "wait duration=250.0", Verb: "wait", Args: args{"duration": int64(250)}},
	{Input: "mode eco", Verb: "mode", Args: args{"mode": "eco"}},
	{Input: "mode SPORT", Verb: "mode", Args: args{"mode": "sport"}},
	{Input: "mode 'normal'", Verb: "mode", Args: args{"mode": "normal"}},
	{Input: "mode “eco”", Verb: "mode", Args: args{"mode": "eco"}},
	{Input: "mode mode=eco", Verb: "mode", Args: args{"mode": "eco"}},
	{Input: "lights on", Verb: "lights", Args: args{"state": true}},
	{Input: "lights OFF", Verb: "lights", Args: args{"state": false}},
	{Input: "lights 1", Verb: "lights", Args: args{"state": true}},
	{Input: "lights state=no", Verb: "lights", Args: args{"state": false}},
	{Input: `say "hello there"`, Verb: "say", Args: args{"phrase": "hello there"}},
	{Input: `say 'it\'s fine'`, Verb: "say", Args: args{"phrase": "it's fine"}},
	{Input: "say don't", Verb: "say", Args: args{"phrase": "don't"}},
	{Input: "say hello  there, rover! ", Verb: "say", Args: args{"phrase": "hello  there, rover!"}},
	{Input: `say I said "hi"`, Verb: "say", Args: args{"phrase": `I said "hi"`}},
	{Input: "say " + strings.Repeat("a ", 40), Verb: "say", Args: args{"phrase": strings.TrimSpace(strings.Repeat("a ", 40))}},
	{Input: `say "hi" there`, Err: ErrTooManyArgs, Msg: "too many arguments: say takes at most 1, 'there' is one too many" + sayUsage},
	{Input: "say hi there phrase=x", Err: ErrTooManyArgs, Msg: "too many arguments: say takes at most 1, 'there' is one too many" + sayUsage},
	{Input: `say "line\none"`, Verb: "say", Args: args{"phrase": "line\none"}},
	{Input: `say "back\\slash \q"`, Verb: "say", Args: args{"phrase": `back\slash \q`}},
	{Input: `say phrase="a=b"`, Verb: "say", Args: args{"phrase": "a=b"}},
	{Input: `say ""`, Verb: "say", Args: args{"phrase": ""}},
	{Input: "say ‘hi’", Verb: "say", Args: args{"phrase": "hi"}},
	{Input: "arm", Verb: "arm"},
	{Input: "disarm", Verb: "disarm"},
	{Input: "Stop", Verb: "stop"},

	// Extra (bridge) verbs come back untouched.
	{Input: "help", Verb: "help"},
	{Input: "HELP move", Verb: "help", Rest: "move"},
	{Input: "watch  temp > 30 ", Verb: "watch", Rest: "temp > 30"},
	{Input: "status", Verb: "status"},

	// The JSON form.
	{Input: `{"cmd":"move","args":{"distance":10,"speed":0.5}}`, Verb: "move", JSON: true, Args: args{"distance": 10.0, "speed": 0.5}},
	{Input: ` {"args":{"distance":-1},"cmd":"MOVE"} `, Verb: "move", JSON: true, Args: args{"distance": -1.0, "speed": 0.5}},
	{Input: `{"cmd":"wait","args":{"duration":1500.0}}`, Verb: "wait", JSON: true, Args: args{"duration": int64(1500)}},
	{Input: `{"cmd":"wait","args":{"duration":2e3}}`, Verb: "wait", JSON: true, Args: args{"duration": int64(2000)}},
	{Input: `{"cmd":"stop"}`, Verb: "stop", JSON: true},
	{Input: `{"cmd":"stop","args":{}}`, Verb: "stop", JSON: true},
	{Input: `{"cmd":"mode","args":{"mode":"eco"}}`, Verb: "mode", JSON: true, Args: args{"mode": "eco"}},
	{Input: `{"cmd":"lights","args":{"state":true}}`, Verb: "lights", JSON: true, Args: args{"state": true}},
	{Input: `{"cmd":"say","args":{"phrase":"a \"b\""}}`, Verb: "say", JSON: true, Args: args{"phrase": `a "b"`}},
	{Input: `{"cmd":"watch","args":{"field":"battery","below":15}}`, Verb: "watch", JSON: true, Args: args{"field": "battery", "below": int64(15)}},

	// Unknown commands.
	{Input: "mvoe 10", Err: ErrUnknownVerb, Msg: "unknown command 'mvoe'; did you mean 'move'? " + roverCommands},
	{Input: "fly", Err: ErrUnknownVerb, Msg: "unknown command 'fly'. " + roverCommands},
	{Input: "hlep", Err: ErrUnknownVerb, Msg: "unknown command 'hlep'; did you mean 'help'? " + roverCommands},
	{Input: "dis", Err: ErrUnknownVerb, Msg: "unknown command 'dis'; did you mean 'disarm'? " + roverCommands},
	{Input: "speed=5", Err: ErrUnknownVerb, Msg: "unknown command 'speed=5'. " + roverCommands},
	{Input: `{"cmd":"fly"}`, Err: ErrUnknownVerb, Msg: "unknown command 'fly'. " + roverCommands},

	// Bad values.
	{Input: "move 10cm speed=2", Err: ErrBadArg, Msg: "speed must be between 0 and 1" + moveUsage},
	{Input: "move 6m", Err: ErrBadArg, Msg: "distance must be between -500 and 500 cm, got 600 cm" + moveUsage},
	{Input: "move 10deg", Err: ErrBadArg, Msg: "distance takes a length (mm, cm, m, km, in, ft), not '10deg'" + moveUsage},
	{Input: "move 50%", Err: ErrBadArg, Msg: "distance takes a length (mm, cm, m, km, in, ft), not '50%'" + moveUsage},
	{Input: "move 10xyz", Err: ErrBadArg, Msg: "distance takes a length (mm, cm, m, km, in, ft), not '10xyz'" + moveUsage},
	{Input: "move 10cm speed=50%", Err: ErrBadArg, Msg: "speed takes a plain number without a unit, got '50%'" + moveUsage},
	{Input: "move abc", Err: ErrBadArg, Msg: "distance must be a number like 10cm, got 'abc'" + moveUsage},
	{Input: `move "a\tb\n"`, Err: ErrBadArg, Msg: `distance must be a number like 10cm, got 'a\tb\n'` + moveUsage},
	{Input: "move 1e999", Err: ErrBadArg, Msg: "distance is out of range: '1e999'" + moveUsage},
	{Input: "move 10cm distance=5", Err: ErrBadArg, Msg: "distance is given twice" + moveUsage},
	{Input: "move 10cm speed=", Err: ErrBadArg, Msg: "speed needs a value after '='" + moveUsage},
	{Input: "move 10cm sped=0.5", Err: ErrBadArg, Msg: "move has no argument 'sped' (did you mean 'speed'?)" + moveUsage},
	{Input: "turn 400", Err: ErrBadArg, Msg: "angle must be between -360 and 360 deg" + turnUsage},
	{Input: "turn 10cm", Err: ErrBadArg, Msg: "angle takes an angle (deg, rad), not '10cm'" + turnUsage},
	{Input: "wait 0.5ms", Err: ErrBadArg, Msg: "duration must be a whole number, got 0.5" + waitUsage},
	{Input: "wait 0.0015s", Err: ErrBadArg, Msg: "duration must be a whole number, got 1.5 ms" + waitUsage},
	{Input: "wait 2min", Err: ErrBadArg, Msg: "duration must be between 0 and 60000 ms, got 120000 ms" + waitUsage},
	{Input: "wait -1", Err: ErrBadArg, Msg: "duration must be between 0 and 60000 ms" + waitUsage},
	{Input: "mode turbo", Err: ErrBadArg, Msg: "mode must be one of eco, normal, sport" + modeUsage},
	{Input: "mode sprot", Err: ErrBadArg, Msg: "mode must be one of eco, normal, sport (did you mean 'sport'?)" + modeUsage},
	{Input: "lights maybe", Err: ErrBadArg, Msg: "state must be on or off (true/false, yes/no, 1/0), got 'maybe'" + lightsUsage},
	{Input: "stop x=1", Err: ErrBadArg, Msg: "stop takes no arguments; usage: stop"},
	{Input: "say " + strings.Repeat("x", 129), Err: ErrBadArg, Msg: "phrase is too long (129 characters; at most 128)" + sayUsage},
	{Input: `{"cmd":"wait","args":{"duration":1.5}}`, Err: ErrBadArg, Msg: "duration must be a whole number, got 1.5" + waitUsage},
	{Input: `{"cmd":"move","args":{"distance":"10cm"}}`, Err: ErrBadArg, Msg: "distance must be a JSON number (in cm), got a string" + moveUsage},
	{Input: `{"cmd":"move","args":{"distance":[1]}}`, Err: ErrBadArg, Msg: "distance must be a JSON number (in cm), got a list" + moveUsage},
	{Input: `{"cmd":"move","args":{"distance":600}}`, Err: ErrBadArg, Msg: "distance must be between -500 and 500 cm" + moveUsage},
	{Input: `{"cmd":"lights","args":{"state":"on"}}`, Err: ErrBadArg, Msg: "state must be true or false, got a string" + lightsUsage},
	{Input: `{"cmd":"mode","args":{"mode":"turbo"}}`, Err: ErrBadArg, Msg: "mode must be one of eco, normal, sport" + modeUsage},
	{Input: `{"cmd":"move","args":{"sped":1,"distance":1}}`, Err: ErrBadArg, Msg: "move has no argument 'sped' (did you mean 'speed'?)" + moveUsage},

	// Missing and extra arguments.
	{Input: "move", Err: ErrMissingArg, Msg: "missing distance" + moveUsage},
	{Input: "move speed=0.5", Err: ErrMissingArg, Msg: "missing distance" + moveUsage},
	{Input: `{"cmd":"move"}`, Err: ErrMissingArg, Msg: "missing distance" + moveUsage},
	{Input: "move 10cm 0.5 3", Err: ErrTooManyArgs, Msg: "too many arguments: move takes at most 2, '3' is one too many" + moveUsage},
	{Input: "arm now", Err: ErrTooManyArgs, Msg: "arm takes no arguments; usage: arm"},
	{Input: "move" + strings.Repeat(" 1", 33), Err: ErrTooManyArgs, Msg: "too many arguments: move takes at most 2, '1' is one too many" + moveUsage},

	// Syntax.
	{Input: "move 10 cm", Err: ErrSyntax, Msg: "write the unit right after the number, without a space: 10cm" + moveUsage},
	{Input: "move 10cm speed=0.5 0.3", Err: ErrSyntax, Msg: "put arguments without a name before name=value ones" + moveUsage},
	{Input: "move =5", Err: ErrSyntax, Msg: "missing argument name before '=' in '=5'" + moveUsage},
	{Input: `move "10`, Err: ErrSyntax, Msg: `unterminated quote: '"10' needs a closing "` + moveUsage},
	{Input: `say "hi"there`, Err: ErrSyntax, Msg: `put a space after the closing quote of '"hi"'` + sayUsage},
	{Input: "", Err: ErrSyntax, Msg: "empty command. " + roverCommands},
	{Input: " \t\n ", Err: ErrSyntax, Msg: "empty command. " + roverCommands},
	{Input: "move\x0010", Err: ErrSyntax, Msg: `the message contains a control character ('\x00')`},
	{Input: "move \xff", Err: ErrSyntax, Msg: "the message is not valid text (UTF-8)"},
	{Input: `{"cmd":"move","args":{"distance":10},"x":1}`, Err: ErrSyntax, Msg: `bad JSON command: unknown key "x"` + jsonHint},
	{Input: `{"cmd":"move",`, Err: ErrSyntax, Msg: "bad JSON command: unexpected end" + jsonHint},
	{Input: `{"cmd":"move","args":{"distance":10,"distance":20}}`, Err: ErrSyntax, Msg: `bad JSON command: argument "distance" appears twice` + jsonHint},
	{Input: `{"cmd":"move"} x`, Err: ErrSyntax},
	{Input: `{"cmd":3}`, Err: ErrSyntax, Msg: `bad JSON command: "cmd" must be a string` + jsonHint},

	// Too long.
	{Input: strings.Repeat("a", 1025), Err: ErrTooLong, Msg: "the message is too long (1025 bytes; at most 1024)"},
}
