package schema

import (
	"strings"
	"time"
)

// Limits of a profile and of chat input. Profiles and inputs beyond them are
// refused with an error that says which limit was hit.
const (
	MaxProfileSize = 256 << 10      // bytes of one profile file
	MaxCommands    = 128            // commands of one profile
	MaxArgs        = 32             // arguments of one command, and of one chat message
	MaxFields      = 128            // telemetry fields of one profile
	MaxEnumValues  = 64             // values of one enum argument
	MaxNameLen     = 32             // profile, command, argument, field names; enum values
	MaxTextLen     = 512            // descriptions and examples
	MaxUnitLen     = 16             // unit symbols
	MaxFormatLen   = 32             // telemetry formats
	MaxInFlightCap = 1024           // the largest max_in_flight
	MaxTimeout     = 24 * time.Hour // the longest command timeout
	MaxInputLen    = 1024           // bytes of one chat message (chat or JSON form)
	DefaultMaxLen  = 256            // max_len of a string argument that declares none
	MaxStringLen   = MaxInputLen    // the largest max_len
	maxShown       = 40             // runes of user input echoed in an error
	maxErrors      = 10             // errors reported for one profile file
	maxDirFiles    = 1024           // profile files in one directory
)

// Argument and field types.
const (
	TypeInt    = "int"
	TypeFloat  = "float"
	TypeBool   = "bool"
	TypeString = "string"
	TypeEnum   = "enum"
)

// ReservedVerbs are the bridge's own chat commands. A profile cannot declare
// them. Pass them (and any other bridge verbs) in ParseOptions.ExtraVerbs so
// that Parse hands them back untouched and suggests them for typos.
var ReservedVerbs = []string{"help", "status", "watch", "unwatch", "yes", "no", "cancel"}

// Profile is the schema of a device type: its chat commands and its telemetry.
// A Profile is read-only once loaded and safe for concurrent use.
type Profile struct {
	Name        string // [a-z0-9_-]+, at most MaxNameLen
	Version     string // free text, compared with the version a device announces
	Description string
	// MaxInFlight is how many commands may be in flight at the device at once:
	// 1 = one at a time, 0 = unlimited.
	MaxInFlight int
	Commands    []*Command // in file order
	Telemetry   []*Field   // in file order
}

// Command is one chat command of a profile.
type Command struct {
	Verb        string // [a-z][a-z0-9_]*, lower case
	Description string
	Args        []*Arg // required arguments first, in positional order
	Example     string // as declared; ExampleText generates one when empty
	// Timeout is how long the device may take to finish the command
	// (0 = the bridge's default).
	Timeout time.Duration
	// Dangerous commands need a person's confirmation before they are sent.
	Dangerous bool
}

// Arg is one argument of a command.
type Arg struct {
	Name        string // [a-z][a-z0-9_]*
	Type        string // TypeInt, TypeFloat, TypeBool, TypeString or TypeEnum
	Unit        string // int and float only; values given in other units of the same dimension are converted to it
	Description string
	Min, Max    *float64 // int and float only; inclusive bounds in Unit
	// Delta marks a difference (an offset, a calibration) rather than an
	// absolute value: unit conversions ignore zero points, so 0.9°F given
	// for a °C argument is 0.5, not -17.3. It matters for °C and °F only.
	Delta bool
	// Default is filled in when an optional argument is absent: int64,
	// float64, bool or string, like parsed values. nil = none.
	Default  any
	Values   []string // enum only: the allowed values
	Required bool
	MaxLen   int // string only: the most runes a value may have (DefaultMaxLen when not declared)
}

// Field is one telemetry value a device reports.
type Field struct {
	Name        string // [a-z][a-z0-9_]*
	Type        string // TypeInt, TypeFloat, TypeBool or TypeString
	Unit        string
	Format      string // a fmt verb for the value alone, e.g. "%.1f"; the unit is appended
	Description string
	Below       *float64 // alert when the value drops below this
	Above       *float64 // alert when the value rises above this
}

// Command returns the command with the given verb (case-insensitive), or nil.
func (p *Profile) Command(verb string) *Command {
	for _, c := range p.Commands {
		if c.Verb == verb {
			return c
		}
	}
	for _, c := range p.Commands {
		if strings.EqualFold(c.Verb, verb) {
			return c
		}
	}
	return nil
}

// Field returns the telemetry field with the given name (case-insensitive), or nil.
func (p *Profile) Field(name string) *Field {
	for _, f := range p.Telemetry {
		if strings.EqualFold(f.Name, name) {
			return f
		}
	}
	return nil
}

// Verbs returns the profile's verbs in file order.
func (p *Profile) Verbs() []string {
	out := make([]string, len(p.Commands))
	for i, c := range p.Commands {
		out[i] = c.Verb
	}
	return out
}

// Arg returns the argument with the given name (case-insensitive), or nil.
func (c *Command) Arg(name string) *Arg {
	for _, a := range c.Args {
		if a.Name == name {
			return a
		}
	}
	for _, a := range c.Args {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

func (a *Arg) numeric() bool   { return a.Type == TypeInt || a.Type == TypeFloat }
func (f *Field) numeric() bool { return f.Type == TypeInt || f.Type == TypeFloat }

func isReserved(verb string) bool {
	for _, r := range ReservedVerbs {
		if r == verb {
			return true
		}
	}
	return false
}

// validIdent reports whether s is [a-z][a-z0-9_]* of at most MaxNameLen bytes.
func validIdent(s string) bool {
	if s == "" || len(s) > MaxNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validProfileName reports whether s is [a-z0-9_-]+ of at most MaxNameLen bytes.
func validProfileName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
