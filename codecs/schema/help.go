package schema

import (
	"math"
	"strconv"
	"strings"
)

// Usage is the one-line synopsis of a command: required arguments as
// <name hint>, optional ones as [name=hint], e.g.
// "move <distance cm> [speed=0..1]" or "mode <mode eco|normal|sport>".
func (c *Command) Usage() string {
	var b strings.Builder
	b.WriteString(c.Verb)
	for _, a := range c.Args {
		b.WriteByte(' ')
		if a.Required {
			b.WriteString("<" + a.Name + " " + a.hint(true) + ">")
		} else {
			b.WriteString("[" + a.Name + "=" + a.hint(false) + "]")
		}
	}
	return b.String()
}

// hint is the value placeholder in a usage line.
func (a *Arg) hint(required bool) string {
	switch a.Type {
	case TypeEnum:
		return strings.Join(a.Values, "|")
	case TypeBool:
		return "on|off"
	case TypeString:
		return "text"
	}
	if required && a.Unit != "" {
		return a.Unit
	}
	if r := a.rangeText(); r != "" {
		if required {
			return r
		}
		return r + a.Unit
	}
	if a.Unit != "" {
		return "N" + a.Unit
	}
	return "number"
}

// rangeText is "0..1", "0.." or "..10", or "" without bounds.
func (a *Arg) rangeText() string {
	if a.Min == nil && a.Max == nil {
		return ""
	}
	s := ""
	if a.Min != nil {
		s = fmtNum(*a.Min)
	}
	s += ".."
	if a.Max != nil {
		s += fmtNum(*a.Max)
	}
	return s
}

// ExampleText returns the command's example: the declared one, or one
// generated from its arguments (required ones positionally, then the first
// optional argument that has a default, by name).
func (c *Command) ExampleText() string {
	if c.Example != "" {
		return c.Example
	}
	var b strings.Builder
	b.WriteString(c.Verb)
	for _, a := range c.Args {
		if a.Required {
			b.WriteByte(' ')
			b.WriteString(a.sample())
		}
	}
	for _, a := range c.Args {
		if !a.Required && a.Default != nil {
			b.WriteString(" " + a.Name + "=" + a.format(a.Default))
			break
		}
	}
	return b.String()
}

// sample is a valid value of the argument, as chat text.
func (a *Arg) sample() string {
	if a.Default != nil {
		return a.format(a.Default)
	}
	switch a.Type {
	case TypeEnum:
		if len(a.Values) > 0 {
			return chatValue(a.Values[0])
		}
	case TypeBool:
		return "on"
	case TypeString:
		s := "hello"
		if a.MaxLen > 0 && a.MaxLen < len(s) {
			s = s[:a.MaxLen]
		}
		return s
	case TypeInt, TypeFloat:
		return a.format(a.sampleNumber())
	}
	return ""
}

func (a *Arg) sampleNumber() any {
	in := func(v float64) bool { return a.rangeProblem(v) == "" }
	var v float64
	switch {
	case in(10):
		v = 10
	case in(1):
		v = 1
	case in(0):
		v = 0
	case a.Min != nil:
		v = *a.Min
		if a.Type == TypeInt {
			v = math.Ceil(v)
		}
	case a.Max != nil:
		v = *a.Max
		if a.Type == TypeInt {
			v = math.Floor(v)
		}
	}
	if a.Type == TypeInt {
		return int64(v)
	}
	return v
}

// HelpText is the detailed help of one command (for "help move").
func (c *Command) HelpText() string {
	var b strings.Builder
	b.WriteString(c.Usage())
	b.WriteByte('\n')
	if c.Description != "" {
		b.WriteString(c.Description)
		b.WriteByte('\n')
	}
	for i, a := range c.Args {
		b.WriteString("  " + a.Name + ": " + a.describe(i == len(c.Args)-1) + "\n")
	}
	b.WriteString("Example: " + c.ExampleText() + "\n")
	if c.Dangerous {
		b.WriteString("Dangerous: you will be asked to confirm before it runs.\n")
	}
	if c.Timeout > 0 {
		b.WriteString("Takes up to " + c.Timeout.String() + ".\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// describe is "a length in cm, -500..500, required (also mm, m, km, in, ft); distance to drive".
// last tells whether the argument is the command's last one.
func (a *Arg) describe(last bool) string {
	var parts []string
	switch a.Type {
	case TypeInt, TypeFloat:
		what := "a number"
		if a.Type == TypeInt {
			what = "a whole number"
		}
		if u := lookupUnit(a.Unit); u != nil && u.Dimension != "percent" {
			what = article(u.Dimension)
			if a.Delta {
				what = "a " + u.Dimension + " difference"
			}
		}
		if a.Unit != "" {
			what += " in " + a.Unit
		}
		parts = append(parts, what)
		if r := a.rangeText(); r != "" {
			parts = append(parts, r)
		}
	case TypeBool:
		parts = append(parts, "on or off")
	case TypeString:
		max := a.MaxLen
		if max <= 0 {
			max = DefaultMaxLen
		}
		if last {
			parts = append(parts, "text of at most "+strconv.Itoa(max)+" characters (the rest of the line)")
		} else {
			parts = append(parts, "text of at most "+strconv.Itoa(max)+" characters (quote it if it has spaces)")
		}
	case TypeEnum:
		parts = append(parts, "one of "+strings.Join(a.Values, ", "))
	}
	if a.Required {
		parts = append(parts, "required")
	} else if a.Default != nil {
		parts = append(parts, "default "+a.format(a.Default))
	} else {
		parts = append(parts, "optional")
	}
	s := strings.Join(parts, ", ")
	if u := lookupUnit(a.Unit); u != nil {
		var others []string
		for _, o := range UnitsOf(u.Dimension) {
			if o != u.Symbol && o != a.Unit {
				others = append(others, o)
			}
		}
		if len(others) > 0 {
			s += " (also " + strings.Join(others, ", ") + ")"
		}
	}
	if a.Description != "" {
		s += "; " + a.Description
	}
	return s
}

// Help is the profile's help for chat: a header, each command with its
// usage, description and example (dangerous ones marked), and the telemetry
// fields.
func (p *Profile) Help() string {
	var b strings.Builder
	b.WriteString(p.Name)
	if p.Version != "" {
		b.WriteString(" " + p.Version)
	}
	if p.Description != "" {
		b.WriteString(": " + p.Description)
	}
	b.WriteByte('\n')
	if len(p.Commands) == 0 {
		b.WriteString("No commands.\n")
	} else {
		b.WriteString("Commands:\n")
	}
	for _, c := range p.Commands {
		b.WriteString("  " + c.Usage())
		if c.Dangerous {
			b.WriteString(" (dangerous: asks for confirmation)")
		}
		b.WriteByte('\n')
		var line []string
		if c.Description != "" {
			line = append(line, strings.TrimSuffix(c.Description, ".")+".")
		}
		if ex := c.ExampleText(); ex != c.Verb {
			line = append(line, "Example: "+ex)
		}
		if len(line) > 0 {
			b.WriteString("    " + strings.Join(line, " ") + "\n")
		}
	}
	if len(p.Telemetry) > 0 {
		fields := make([]string, len(p.Telemetry))
		for i, f := range p.Telemetry {
			fields[i] = f.summary()
		}
		b.WriteString("Telemetry: " + strings.Join(fields, ", ") + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// summary is "battery (%, alert below 15)".
func (f *Field) summary() string {
	var parts []string
	if f.Unit != "" {
		parts = append(parts, f.Unit)
	}
	if f.Below != nil {
		parts = append(parts, "alert below "+fmtNum(*f.Below))
	}
	if f.Above != nil {
		parts = append(parts, "alert above "+fmtNum(*f.Above))
	}
	if len(parts) == 0 {
		return f.Name
	}
	return f.Name + " (" + strings.Join(parts, ", ") + ")"
}
