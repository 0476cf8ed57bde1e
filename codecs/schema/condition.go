package schema

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Condition is a test on one telemetry field, for "watch temp > 30".
type Condition struct {
	Field *Field
	Op    string // "<", "<=", ">", ">=", "==" or "!=" ("==" and "!=" only for bool and string fields)
	// Value is a float64 in the field's unit for int and float fields
	// ("obstacle < 0.2m" is 20 for a field in cm), a bool for bool fields,
	// a string for string fields.
	Value any
}

var condOps = []struct{ text, op string }{
	{">=", ">="}, {"<=", "<="}, {"==", "=="}, {"!=", "!="}, {"=>", ">="}, {"=<", "<="},
	{"≥", ">="}, {"≤", "<="}, {"≠", "!="}, {"<>", "!="},
	{">", ">"}, {"<", "<"}, {"=", "=="},
}

// ParseCondition reads a condition on one of the profile's telemetry fields:
// "temp > 30", "battery<15", "obstacle < 20cm" (converted to the field's
// unit; a space before the unit is allowed), "ch1 == on", "state != idle".
// Numeric fields take < <= > >= == !=, bool and string fields == and !=
// ("=" means "=="). Errors are *ParseError (ErrSyntax, ErrUnknownField or
// ErrBadArg) whose message is the complete answer for a person.
func ParseCondition(p *Profile, s string) (*Condition, error) {
	if len(s) > MaxInputLen {
		return nil, &ParseError{Kind: ErrTooLong, Msg: "the condition is too long (" + strconv.Itoa(len(s)) +
			" bytes; at most " + strconv.Itoa(MaxInputLen) + ")"}
	}
	if !utf8.ValidString(s) {
		return nil, &ParseError{Kind: ErrSyntax, Msg: "the condition is not valid text (UTF-8)"}
	}
	for _, r := range s {
		if isControl(r) && !isSpace(r) {
			return nil, &ParseError{Kind: ErrSyntax, Msg: "the condition contains a control character (" +
				strconv.QuoteRune(r) + ")"}
		}
	}
	s = strings.TrimFunc(s, isSpace)
	n := 0
	for n < len(s) && (s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || s[n] >= '0' && s[n] <= '9' || s[n] == '_') {
		n++
	}
	if n == 0 {
		return nil, p.condSyntax("expected a condition")
	}
	name := lower(s[:n])
	f := p.Field(name)
	if f == nil {
		return nil, p.unknownField(name)
	}
	rest := strings.TrimLeftFunc(s[n:], isSpace)
	op := ""
	for _, o := range condOps {
		if strings.HasPrefix(rest, o.text) {
			op = o.op
			rest = rest[len(o.text):]
			break
		}
	}
	if op == "" {
		return nil, p.condSyntax("expected an operator (< <= > >= == !=) after " + f.Name)
	}
	text := strings.TrimFunc(rest, isSpace)
	if text == "" {
		return nil, p.condSyntax("missing the value after " + f.Name + " " + op)
	}
	c := &Condition{Field: f, Op: op}
	bad := func(msg string) error {
		return &ParseError{Kind: ErrBadArg, Arg: f.Name, Msg: msg}
	}
	switch f.Type {
	case TypeInt, TypeFloat:
		v, _, problem := quantity(text, f.Unit, true, false)
		if problem != "" {
			return nil, bad(f.Name + " " + problem + "; e.g. " + f.Name + " " + op + " " + withUnit("10", f.Unit))
		}
		c.Value = v
	case TypeBool:
		if op != "==" && op != "!=" {
			return nil, bad(f.Name + " is on or off: compare it with == or !=, e.g. " + f.Name + " == on")
		}
		b, ok := ParseBool(unquote(text))
		if !ok {
			return nil, bad(f.Name + " is on or off, got " + show(text))
		}
		c.Value = b
	case TypeString:
		if op != "==" && op != "!=" {
			return nil, bad(f.Name + " is text: compare it with == or !=")
		}
		v := unquote(text)
		if _, problem := (&Arg{Type: TypeString, MaxLen: MaxInputLen}).checkString(v); problem != "" {
			return nil, bad(f.Name + " " + problem)
		}
		c.Value = v
	default:
		return nil, bad(f.Name + " has an unknown type " + show(f.Type))
	}
	// String must read back: its quotes and escapes can make it longer
	// than what was typed (found by FuzzParseCondition)
	if n := len(c.String()); n > MaxInputLen {
		return nil, &ParseError{Kind: ErrTooLong, Msg: "the condition is too long (written out it takes " + strconv.Itoa(n) +
			" bytes; at most " + strconv.Itoa(MaxInputLen) + ")"}
	}
	return c, nil
}

// unquote strips one pair of quotes around a whole value, reading escapes.
func unquote(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	if !isQuote(r) {
		return s
	}
	v, next, err := quoted(s, 0)
	if err != nil || next != len(s) {
		return s
	}
	return v
}

func (p *Profile) condSyntax(msg string) *ParseError {
	return &ParseError{Kind: ErrSyntax, Msg: msg + "; " + p.conditionHint()}
}

// conditionHint is "e.g. 'battery < 15'. Fields: battery, temp."
func (p *Profile) conditionHint() string {
	if len(p.Telemetry) == 0 {
		return "this device reports no telemetry"
	}
	ex := ""
	for _, f := range p.Telemetry {
		if f.numeric() {
			switch {
			case f.Below != nil:
				ex = f.Name + " < " + fmtNum(*f.Below)
			case f.Above != nil:
				ex = f.Name + " > " + fmtNum(*f.Above)
			default:
				ex = f.Name + " > 10"
			}
			break
		}
	}
	if ex == "" {
		f := p.Telemetry[0]
		switch f.Type {
		case TypeBool:
			ex = f.Name + " == on"
		default:
			ex = f.Name + " == value"
		}
	}
	return "e.g. '" + ex + "'. Fields: " + p.fieldNames() + "."
}

func (p *Profile) fieldNames() string {
	names := make([]string, len(p.Telemetry))
	for i, f := range p.Telemetry {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func (p *Profile) unknownField(name string) *ParseError {
	names := make([]string, len(p.Telemetry))
	for i, f := range p.Telemetry {
		names[i] = f.Name
	}
	e := &ParseError{Kind: ErrUnknownField, Arg: name}
	msg := "unknown field " + show(name)
	if sug := Suggest(name, names); sug != "" {
		e.Suggestion = sug
		msg += "; did you mean '" + sug + "'?"
	} else {
		msg += "."
	}
	if len(p.Telemetry) == 0 {
		e.Msg = msg + " This device reports no telemetry."
	} else {
		e.Msg = msg + " Fields: " + p.fieldNames() + "."
	}
	return e
}

// Eval tests the condition on a set of telemetry values. present reports
// whether the field is among the values; matched is false when it is not,
// or when its value has the wrong type (or is NaN).
func (c *Condition) Eval(values map[string]any) (matched, present bool) {
	v, ok := values[c.Field.Name]
	if !ok {
		return false, false
	}
	switch want := c.Value.(type) {
	case float64:
		x, ok := toFloat(v)
		if !ok || math.IsNaN(x) {
			return false, true
		}
		switch c.Op {
		case "<":
			return x < want, true
		case "<=":
			return x <= want, true
		case ">":
			return x > want, true
		case ">=":
			return x >= want, true
		case "==":
			return x == want, true
		case "!=":
			return x != want, true
		}
	case bool:
		b, ok := v.(bool)
		if !ok {
			return false, true
		}
		return (b == want) == (c.Op == "=="), true
	case string:
		s, ok := v.(string)
		if !ok {
			return false, true
		}
		return (s == want) == (c.Op == "=="), true
	}
	return false, true
}

// String is the condition in canonical form, which ParseCondition reads
// back: "temp > 30 °C", "ch1 == on", `state == "two words"`.
func (c *Condition) String() string {
	var v string
	switch x := c.Value.(type) {
	case float64:
		v = withUnit(strconv.FormatFloat(x, 'g', -1, 64), c.Field.Unit)
	case bool:
		v = "off"
		if x {
			v = "on"
		}
	case string:
		v = chatValue(x)
	default:
		v = formatAny(x)
	}
	return c.Field.Name + " " + c.Op + " " + v
}
