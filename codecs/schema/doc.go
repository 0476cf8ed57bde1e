// Package schema reads device profiles and speaks the chat grammar people
// use to command devices.
//
// A profile (a YAML file, see examples/profiles/README.md) is the schema of
// a device type: its commands with typed arguments, and its telemetry
// fields. From a profile the package parses chat messages into typed
// invocations (Profile.Parse), writes help and usage lines (Profile.Help,
// Command.Usage), parses watch conditions (ParseCondition), and renders
// telemetry and results back to people (Profile.RenderTelemetry,
// Profile.Thresholds, RenderValues) and to apps (MachineJSON).
//
// The package imports nothing of the project. Every input is bounded (see
// MaxProfileSize, MaxInputLen and the other limits) and every refusal is a
// typed error whose message is fit to show a person: *ParseError for chat
// input and conditions, ProfileErrors ("file:line: path: message") for
// profiles.
//
// # Profile format
//
//	profile: rover            # required; the name, [a-z0-9_-]+, at most 32
//	version: "1.2"            # optional free text (compare with the device's hello)
//	description: Four-wheel rover
//	max_in_flight: 1          # commands in flight at once; 1 = one at a time, 0 (default) = unlimited
//	commands:                 # in the order help lists them
//	  move:                   # the verb, [a-z][a-z0-9_]*; not help, status, watch, unwatch, yes, no, cancel
//	    description: Drive straight
//	    args:                 # a list, in positional order; required arguments first
//	      - {name: distance, type: float, unit: cm, min: -500, max: 500, required: true}
//	      - {name: speed, type: float, min: 0, max: 1, default: 0.5}
//	    example: move 10cm speed=0.5   # optional; must parse; generated when absent
//	    timeout: 30s                   # optional: how long the device may take
//	  mode:
//	    args: [{name: mode, type: enum, values: [eco, normal, sport], required: true}]
//	  arm:
//	    description: Enable the motors
//	    dangerous: true                # a person must confirm
//	  stop:                            # a command with nothing to declare
//	telemetry:                # in the order renderings list them
//	  battery: {type: float, unit: "%", format: "%.0f", below: 15}
//	  temp: {type: float, unit: °C, format: "%.1f", above: 30}
//
// Argument keys: name and type (required); unit, delta, min, max for int and
// float; values for enum (required); max_len for string (default 256);
// required (default false); default (checked like a chat value, so "2s" is
// a valid default of an int argument in ms); description. Types: int, float,
// bool, string, enum.
//
// Telemetry keys: type (int, float, bool or string; required), unit, format
// (one fmt verb for the value alone, e.g. "%.1f"; the unit is appended),
// below and above (alert thresholds of int and float fields), description.
//
// Units of the table (UnitsOf, LookupUnit) convert within their dimension:
// a value "0.1m" for an argument in cm is 10; "10deg" for it is an error
// naming the length units. A unit outside the table (say "ppm") is accepted
// but converts only to itself. Temperatures convert affinely (°C, °F, K);
// an argument with delta: true is a difference, converted without the zero
// point. Unknown keys are errors with a close-match suggestion; so are
// duplicate keys, values of the wrong kind and out-of-limit sizes.
//
// # Chat grammar
//
//	move 10cm speed=0.5     positional arguments, then name=value ones
//	move 0.1m               units glued to the number are converted
//	say "hello there"       "double", 'single' or “typographic” quotes; \" \\ \n \t \r escapes
//	say hello there         unquoted, a text argument in last place takes the rest of the line
//	lights on               booleans: true/false, on/off, yes/no, 1/0
//	{"cmd":"move","args":{"distance":10,"speed":0.5}}   the JSON form, for apps
//
// Verbs, argument names, enum values and units are case-insensitive; any
// whitespace separates words. A message is at most 1024 bytes and 32
// arguments.
package schema
