package schema

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse runs the chat grammar against the rover profile. A refusal must
// be a *ParseError with a message; an invocation must hold only declared
// arguments of their type, within their bounds, and read back the same
// from its canonical chat form and from the JSON form.
func FuzzParse(f *testing.F) {
	for _, c := range ChatCases {
		f.Add(c.Input)
	}
	for _, c := range RoverProfile().Commands {
		f.Add(c.ExampleText())
	}
	p := RoverProfile()
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := p.Parse(s, ChatCaseOptions)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Kind < ErrUnknownVerb || pe.Kind > ErrUnknownField || pe.Msg == "" {
				t.Fatalf("%q: bad error %#v", s, err)
			}
			if !utf8.ValidString(pe.Msg) || strings.IndexFunc(pe.Msg, isControl) >= 0 {
				t.Fatalf("%q: message is not one line of text: %q", s, pe.Msg)
			}
			if pe.Kind == ErrUnknownVerb && pe.Suggestion != "" && p.Command(pe.Suggestion) == nil && !contains(ReservedVerbs, pe.Suggestion) {
				t.Fatalf("%q: suggests %q", s, pe.Suggestion)
			}
			if (pe.Kind == ErrTooLong) != (len(s) > MaxInputLen) {
				t.Fatalf("%q: kind %v for %d bytes", s, pe.Kind, len(s))
			}
			return
		}
		if len(s) > MaxInputLen {
			t.Fatalf("%d bytes accepted", len(s))
		}
		if inv.Cmd == nil {
			ok := false
			for _, v := range ReservedVerbs {
				ok = ok || v == inv.Verb
			}
			if !ok {
				t.Fatalf("%q: extra verb %q", s, inv.Verb)
			}
			return
		}
		checkInvocation(t, p, inv)
		// The JSON form of the same invocation gives the same arguments.
		js, err := MachineJSON(map[string]any{"cmd": inv.Verb, "args": inv.Args})
		if err != nil {
			t.Fatalf("%q: MachineJSON: %v", s, err)
		}
		if len(js) <= MaxInputLen {
			back, err := p.Parse(string(js), ParseOptions{})
			if err != nil || !back.JSON || !sameArgs(back.Args, inv.Args) {
				t.Fatalf("%q: JSON form %s gives %v, %v; want %v", s, js, back, err, inv.Args)
			}
		}
	})
}

// FuzzParseProfile runs the YAML loader. Errors must name the file; a
// profile that loads must satisfy the loader's promises.
func FuzzParseProfile(f *testing.F) {
	for _, s := range []string{base, specYAML, fiveYAML, watchYAML, RoverProfileYAML,
		"profile: [\n", "- a\n", "", "profile: a\ncommands:\n  x: &a {args: [*a]}\n",
		"profile: a\ncommands:\n  m:\n    args:\n      - {name: v, type: enum, values: [a, b], default: b}\n",
		"profile: a\ncommands:\n  m:\n    args:\n      - {name: v, type: int, unit: ms, min: -5, max: -3}\n",
		"profile: a\ntelemetry:\n  x: {type: int, format: \"%05d\", below: 3, above: 9}\n",
	} {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join(shippedDir, "*.yaml"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile("fuzz.yaml", data)
		if err != nil {
			var es ProfileErrors
			if !errors.As(err, &es) || len(es) == 0 || len(es) > maxErrors {
				t.Fatalf("bad error %#v", err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Msg == "" || !strings.HasPrefix(e.Error(), "fuzz.yaml") ||
					strings.IndexFunc(e.Error(), isControl) >= 0 {
					t.Fatalf("bad error %q", e.Error())
				}
			}
			if p != nil {
				t.Fatal("profile with an error")
			}
			return
		}
		checkProfile(t, p)
	})
}

// checkProfile checks what the loader promises of a profile.
func checkProfile(t *testing.T, p *Profile) {
	if !validProfileName(p.Name) || len(p.Commands) > MaxCommands || len(p.Telemetry) > MaxFields {
		t.Fatalf("bad profile %q", p.Name)
	}
	if p.MaxInFlight < 0 || p.MaxInFlight > MaxInFlightCap {
		t.Fatalf("max_in_flight %d", p.MaxInFlight)
	}
	verbs := map[string]bool{}
	for _, c := range p.Commands {
		if !validIdent(c.Verb) || isReserved(c.Verb) || verbs[c.Verb] {
			t.Fatalf("bad verb %q", c.Verb)
		}
		verbs[c.Verb] = true
		if len(c.Args) > MaxArgs || c.Timeout < 0 || c.Timeout > MaxTimeout {
			t.Fatalf("%s: bad command", c.Verb)
		}
		names := map[string]bool{}
		optional := false
		for _, a := range c.Args {
			if !validIdent(a.Name) || names[a.Name] || !contains(argTypes, a.Type) {
				t.Fatalf("%s: bad arg %+v", c.Verb, a)
			}
			names[a.Name] = true
			if a.Required && optional {
				t.Fatalf("%s: required %s after an optional one", c.Verb, a.Name)
			}
			optional = optional || !a.Required
			if a.Default != nil && (a.Required || !a.check(a.Default)) {
				t.Fatalf("%s: bad default %#v for %+v", c.Verb, a.Default, a)
			}
			if a.Type == TypeEnum && len(a.Values) == 0 {
				t.Fatalf("%s: enum without values", c.Verb)
			}
			if a.Min != nil && a.Max != nil && *a.Min > *a.Max {
				t.Fatalf("%s: min > max", c.Verb)
			}
		}
		_ = c.Usage()
		_ = c.HelpText()
		inv, err := p.Parse(c.ExampleText(), ParseOptions{})
		if err != nil || inv.Cmd != c {
			t.Fatalf("%s: example %q: %v", c.Verb, c.ExampleText(), err)
		}
		checkInvocation(t, p, inv)
	}
	_ = p.Help()
	values := map[string]any{}
	for _, f := range p.Telemetry {
		if !validIdent(f.Name) || !contains(fieldType, f.Type) {
			t.Fatalf("bad field %+v", f)
		}
		switch f.Type {
		case TypeInt:
			values[f.Name] = int64(-7)
		case TypeFloat:
			values[f.Name] = 1e300
		case TypeBool:
			values[f.Name] = true
		case TypeString:
			values[f.Name] = "a b"
		}
		for _, v := range []any{values[f.Name], "x", math.NaN(), nil} {
			if r := f.Render(v); strings.Contains(r, "%!") {
				t.Fatalf("%s: format %q renders %v as %q", f.Name, f.Format, v, r)
			}
		}
		if f.numeric() {
			c, err := ParseCondition(p, f.Name+" > 1")
			if err != nil {
				t.Fatalf("condition on %s: %v", f.Name, err)
			}
			c.Eval(values)
		}
	}
	_ = p.RenderTelemetry(values)
	for _, a := range p.Thresholds(values) {
		_ = a.String()
	}
}

// FuzzParseCondition parses watch conditions against a profile with fields
// of every type. A condition that parses must name a field, use an operator
// its type allows, hold a value of its type and read back from String.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{"temp > 30", "battery<15", "temp >= 30.5", "obstacle < 20cm", "obstacle < 0.2 m",
		"door == open", "door != 'half open'", "ch1 == on", "count != 3", "tmp > 30", "temp", "temp >", "",
		"temp ≥ 86°F", "ch1 > 1", "door = \"a \\\" b\""} {
		f.Add(s)
	}
	p := watchProfile(f)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCondition(p, s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Msg == "" || pe.Kind < ErrUnknownVerb || pe.Kind > ErrUnknownField ||
				strings.IndexFunc(pe.Msg, isControl) >= 0 {
				t.Fatalf("%q: bad error %#v", s, err)
			}
			return
		}
		if c.Field == nil || p.Field(c.Field.Name) != c.Field {
			t.Fatalf("%q: field %v", s, c.Field)
		}
		switch v := c.Value.(type) {
		case float64:
			if !c.Field.numeric() || math.IsNaN(v) || math.IsInf(v, 0) || !contains([]string{"<", "<=", ">", ">=", "==", "!="}, c.Op) {
				t.Fatalf("%q: %s %s %v", s, c.Field.Type, c.Op, v)
			}
		case bool:
			if c.Field.Type != TypeBool || (c.Op != "==" && c.Op != "!=") {
				t.Fatalf("%q: %s %s %v", s, c.Field.Type, c.Op, v)
			}
		case string:
			if c.Field.Type != TypeString || (c.Op != "==" && c.Op != "!=") {
				t.Fatalf("%q: %s %s %v", s, c.Field.Type, c.Op, v)
			}
			if _, problem := (&Arg{Type: TypeString, MaxLen: MaxInputLen}).checkString(v); problem != "" {
				t.Fatalf("%q: value %q %s", s, v, problem)
			}
		default:
			t.Fatalf("%q: value %#v", s, c.Value)
		}
		back, err := ParseCondition(p, c.String())
		if err != nil || back.Field != c.Field || back.Op != c.Op || back.Value != c.Value {
			t.Fatalf("%q: String() %q reads back as %v, %v", s, c.String(), back, err)
		}
		c.Eval(map[string]any{c.Field.Name: c.Value})
		c.Eval(map[string]any{c.Field.Name: "x"})
	})
}
