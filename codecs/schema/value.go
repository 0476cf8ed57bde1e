package schema

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseBool reads the chat spellings of a boolean: true/false, on/off,
// yes/no, 1/0 (case-insensitive).
func ParseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "on", "yes", "1":
		return true, true
	case "false", "off", "no", "0":
		return false, true
	}
	return false, false
}

// quantity reads a number with an optional glued unit ("10", "0.1m",
// "90°") and returns it in the unit want ("" = a plain number). problem is
// a message fragment that follows the argument's name ("must be a number,
// got 'x'"); converted reports whether a unit conversion happened.
func quantity(text, want string, allowSpace, delta bool) (v float64, converted bool, problem string) {
	n := scanNumber(text)
	if n == 0 {
		return 0, false, "must be a number" + likeHint(want) + ", got " + show(text)
	}
	num, unit := text[:n], text[n:]
	if allowSpace {
		unit = strings.TrimSpace(unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, false, "is out of range: " + show(text)
	}
	if unit == "" {
		return v, false, ""
	}
	if want == "" {
		return 0, false, "takes a plain number without a unit, got " + show(text)
	}
	to := lookupUnit(want)
	if to == nil { // a unit outside the table: only itself
		if strings.EqualFold(unit, want) {
			return v, false, ""
		}
		return 0, false, "must be a number in " + want + ", got " + show(text)
	}
	from := lookupUnit(unit)
	if from == nil || from.Dimension != to.Dimension {
		return 0, false, "takes " + article(to.Dimension) + " (" + dimensionUnits(to.Dimension) + "), not " + show(text)
	}
	if from == to {
		return v, false, ""
	}
	if delta {
		return convertDelta(v, from, to), true, ""
	}
	return convert(v, from, to), true, ""
}

func likeHint(unit string) string {
	if unit == "" {
		return ""
	}
	return " like 10" + unit
}

func article(dim string) string {
	switch dim {
	case "angle":
		return "an angle"
	case "percent":
		return "a percentage"
	case "time":
		return "a duration"
	}
	return "a " + dim
}

// checkNumber checks a number against an int or float argument and returns
// the typed value (int64 or float64) or a problem.
func (a *Arg) checkNumber(v float64, converted bool) (any, string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, "must be a finite number"
	}
	if a.Type == TypeInt && v != math.Trunc(v) {
		got := fmtNum(v)
		if converted {
			got = withUnit(got, a.Unit)
		}
		return nil, "must be a whole number, got " + got
	}
	if msg := a.rangeProblem(v); msg != "" {
		if converted {
			msg += ", got " + withUnit(fmtNum(v), a.Unit)
		}
		return nil, msg
	}
	if a.Type == TypeInt {
		if v >= 1<<63 || v < -(1<<63) {
			return nil, "is too large"
		}
		return int64(v), ""
	}
	if v == 0 {
		v = 0 // no negative zero
	}
	return v, ""
}

func (a *Arg) rangeProblem(v float64) string {
	lo := a.Min == nil || v >= *a.Min
	hi := a.Max == nil || v <= *a.Max
	if lo && hi {
		return ""
	}
	switch {
	case a.Min != nil && a.Max != nil:
		return "must be between " + fmtNum(*a.Min) + " and " + withUnit(fmtNum(*a.Max), a.Unit)
	case a.Min != nil:
		return "must be at least " + withUnit(fmtNum(*a.Min), a.Unit)
	default:
		return "must be at most " + withUnit(fmtNum(*a.Max), a.Unit)
	}
}

// parseText reads one chat value for the argument. The problem, if any,
// follows the argument's name in a message.
func (a *Arg) parseText(text string) (any, string) {
	switch a.Type {
	case TypeInt, TypeFloat:
		if a.Type == TypeInt && isPlainInt(text) {
			if i, err := strconv.ParseInt(text, 10, 64); err == nil {
				if msg := a.rangeProblem(float64(i)); msg != "" {
					return nil, msg
				}
				return i, ""
			}
		}
		v, conv, problem := quantity(text, a.Unit, false, a.Delta)
		if problem != "" {
			return nil, problem
		}
		return a.checkNumber(v, conv)
	case TypeBool:
		b, ok := ParseBool(text)
		if !ok {
			return nil, "must be on or off (true/false, yes/no, 1/0), got " + show(text)
		}
		return b, ""
	case TypeEnum:
		for _, v := range a.Values {
			if strings.EqualFold(v, text) {
				return v, ""
			}
		}
		msg := "must be one of " + strings.Join(a.Values, ", ")
		if s := Suggest(text, a.Values); s != "" {
			msg += " (did you mean '" + s + "'?)"
		}
		return nil, msg
	case TypeString:
		return a.checkString(text)
	}
	return nil, "has an unknown type " + show(a.Type)
}

func isPlainInt(s string) bool {
	i := 0
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		i = 1
	}
	if i == len(s) || len(s) > 19 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (a *Arg) checkString(s string) (any, string) {
	if !utf8.ValidString(s) {
		return nil, "must be valid text"
	}
	for _, r := range s {
		if isControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return nil, "must not contain control characters"
		}
	}
	max := a.MaxLen
	if max <= 0 {
		max = DefaultMaxLen
	}
	if n := utf8.RuneCountInString(s); n > max {
		return nil, "is too long (" + strconv.Itoa(n) + " characters; at most " + strconv.Itoa(max) + ")"
	}
	return s, ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// check reports whether v is a valid value of the argument: the Go type of
// its Type, within its bounds, one of its values, not too long.
func (a *Arg) check(v any) bool {
	switch a.Type {
	case TypeInt:
		i, ok := v.(int64)
		return ok && a.rangeProblem(float64(i)) == ""
	case TypeFloat:
		f, ok := v.(float64)
		return ok && !math.IsNaN(f) && !math.IsInf(f, 0) && a.rangeProblem(f) == ""
	case TypeBool:
		_, ok := v.(bool)
		return ok
	case TypeEnum:
		s, ok := v.(string)
		if !ok {
			return false
		}
		for _, x := range a.Values {
			if x == s {
				return true
			}
		}
		return false
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, problem := a.checkString(s)
		return problem == ""
	}
	return false
}

// needsQuotes reports whether a chat value must be quoted to read back as
// one token with the same text.
func needsQuotes(s string) bool {
	if s == "" {
		return true
	}
	first, _ := utf8.DecodeRuneInString(s)
	if isQuote(first) {
		return true
	}
	for _, r := range s {
		if isSpace(r) || r == '=' || r == '\\' || isControl(r) {
			return true
		}
	}
	return false
}

// quoteChat quotes a value the way the chat grammar reads it back:
// double quotes, with \" \\ \n \t \r escaped.
func quoteChat(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// chatValue writes a string value as a chat token, quoting it when needed.
func chatValue(s string) string {
	if needsQuotes(s) {
		return quoteChat(s)
	}
	return s
}
