package sim

import (
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// validate checks a command against the profile the way firmware would:
// the verb must exist, every argument must be declared, of its type and in
// range, required ones present. It returns the arguments in canonical Go
// types (int64, float64, bool, string), defaults filled in.
func validate(p *schema.Profile, verb string, args map[string]any) (*schema.Command, map[string]any, *outcome) {
	c := p.Command(verb)
	if c == nil || c.Verb != verb {
		o := failed(wire.ReplyUnknownVerb, "unknown command %q; %s knows %s", verb, p.Name, strings.Join(p.Verbs(), ", "))
		return nil, nil, &o
	}
	out := make(map[string]any, len(c.Args))
	names := make([]string, 0, len(args))
	for name := range args {
		names = append(names, name)
	}
	sort.Strings(names) // a stable first error
	for _, name := range names {
		a := c.Arg(name)
		if a == nil || a.Name != name {
			o := failed(wire.ReplyBadArgument, "%s has no argument %q", verb, name)
			return c, nil, &o
		}
		v, msg := checkArg(a, args[name])
		if msg != "" {
			o := failed(wire.ReplyBadArgument, "%s: %s", name, msg)
			return c, nil, &o
		}
		out[name] = v
	}
	for _, a := range c.Args {
		if _, ok := out[a.Name]; ok {
			continue
		}
		if a.Required {
			o := failed(wire.ReplyBadArgument, "%s is missing (usage: %s)", a.Name, c.Usage())
			return c, nil, &o
		}
		if a.Default != nil {
			if v, msg := checkArg(a, a.Default); msg == "" {
				out[a.Name] = v
			}
		}
	}
	return c, out, nil
}

func checkArg(a *schema.Arg, v any) (any, string) {
	switch a.Type {
	case schema.TypeInt:
		var n int64
		switch x := v.(type) {
		case int64:
			n = x
		case uint64:
			if x > math.MaxInt64 {
				return nil, "out of range"
			}
			n = int64(x)
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return nil, "want a whole number"
			}
			n = int64(x)
		default:
			return nil, "want an integer, got " + typeName(v)
		}
		if msg := rangeMsg(a, float64(n)); msg != "" {
			return nil, msg
		}
		return n, ""
	case schema.TypeFloat:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case int64:
			f = float64(x)
		case uint64:
			f = float64(x)
		default:
			return nil, "want a number, got " + typeName(v)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, "want a finite number"
		}
		if msg := rangeMsg(a, f); msg != "" {
			return nil, msg
		}
		return f, ""
	case schema.TypeBool:
		b, ok := v.(bool)
		if !ok {
			return nil, "want true or false, got " + typeName(v)
		}
		return b, ""
	case schema.TypeString:
		s, ok := v.(string)
		if !ok {
			return nil, "want text, got " + typeName(v)
		}
		if max := a.MaxLen; max > 0 && utf8.RuneCountInString(s) > max {
			return nil, "longer than " + itoa(max) + " characters"
		}
		return s, ""
	case schema.TypeEnum:
		s, ok := v.(string)
		if !ok {
			return nil, "want one of " + strings.Join(a.Values, ", ") + ", got " + typeName(v)
		}
		for _, e := range a.Values {
			if strings.EqualFold(e, s) {
				return e, ""
			}
		}
		return nil, "want one of " + strings.Join(a.Values, ", ")
	}
	return nil, "argument type " + a.Type + " unknown to the device"
}

func rangeMsg(a *schema.Arg, f float64) string {
	unit := ""
	if a.Unit != "" {
		unit = " " + a.Unit
	}
	if a.Min != nil && f < *a.Min {
		return "below the minimum " + fmtFloat(*a.Min) + unit
	}
	if a.Max != nil && f > *a.Max {
		return "over the maximum " + fmtFloat(*a.Max) + unit
	}
	return ""
}

func typeName(v any) string {
	switch v.(type) {
	case int64, uint64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case string:
		return "text"
	case []byte:
		return "bytes"
	case nil:
		return "nothing"
	}
	return "an unsupported value"
}
