package schema

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
)

type jsonArg struct {
	name  string
	value any // json.Number, string, bool, nil, or json.Delim for a list or object
}

// parseJSON reads the JSON form: {"cmd":"move","args":{"distance":10}}.
// Values are checked like chat values, but strictly typed: numbers must be
// JSON numbers (in the argument's unit; integral for int arguments),
// booleans JSON booleans, strings and enum values JSON strings.
func (p *Profile) parseJSON(s string, opts ParseOptions) (*Invocation, error) {
	verb, args, err := decodeJSONCommand(s)
	if err != nil {
		return nil, &ParseError{Kind: ErrSyntax, Msg: "bad JSON command: " + err.Error() +
			`; expected {"cmd":"<command>","args":{"<name>":<value>,...}}`}
	}
	verb = lower(verb)
	for _, x := range opts.ExtraVerbs {
		if strings.EqualFold(x, verb) {
			m := make(map[string]any, len(args))
			for _, a := range args {
				m[a.name] = genericJSON(a.value)
			}
			return &Invocation{Verb: verb, Args: m, JSON: true}, nil
		}
	}
	cmd := p.Command(verb)
	if cmd == nil {
		return nil, p.unknownVerb(verb, opts)
	}
	m := make(map[string]any, len(cmd.Args))
	for _, ja := range args {
		a := cmd.Arg(ja.name)
		if a == nil {
			return nil, cmd.unknownArg(ja.name)
		}
		if _, dup := m[a.Name]; dup {
			return nil, cmd.errorf(ErrBadArg, a.Name, "", a.Name+" is given twice")
		}
		v, problem := a.fromJSON(ja.value)
		if problem != "" {
			e := cmd.errorf(ErrBadArg, a.Name, "", a.Name+" "+problem)
			if s, ok := ja.value.(string); ok && a.Type == TypeEnum {
				e.Suggestion = Suggest(s, a.Values)
			}
			return nil, e
		}
		m[a.Name] = v
	}
	return cmd.finish(m, true)
}

func decodeJSONCommand(s string) (verb string, args []jsonArg, err error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return "", nil, err
	}
	seenCmd, seenArgs := false, false
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return "", nil, err
		}
		switch key {
		case "cmd":
			if seenCmd {
				return "", nil, errors.New(`"cmd" appears twice`)
			}
			seenCmd = true
			t, err := jsonToken(dec)
			if err != nil {
				return "", nil, err
			}
			v, ok := t.(string)
			if !ok {
				return "", nil, errors.New(`"cmd" must be a string`)
			}
			verb = v
		case "args":
			if seenArgs {
				return "", nil, errors.New(`"args" appears twice`)
			}
			seenArgs = true
			if args, err = decodeJSONArgs(dec); err != nil {
				return "", nil, err
			}
		default:
			return "", nil, errors.New("unknown key " + strconv.Quote(key))
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return "", nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("unexpected data after the object")
	}
	if !seenCmd {
		return "", nil, errors.New(`missing "cmd"`)
	}
	return verb, args, nil
}

func decodeJSONArgs(dec *json.Decoder) ([]jsonArg, error) {
	t, err := jsonToken(dec)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, nil
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, errors.New(`"args" must be an object`)
	}
	var args []jsonArg
	for dec.More() {
		if len(args) >= MaxArgs {
			return nil, errors.New("too many arguments (at most " + strconv.Itoa(MaxArgs) + ")")
		}
		key, err := objectKey(dec)
		if err != nil {
			return nil, err
		}
		for _, a := range args {
			if a.name == key {
				return nil, errors.New("argument " + strconv.Quote(key) + " appears twice")
			}
		}
		v, err := jsonToken(dec)
		if err != nil {
			return nil, err
		}
		if d, ok := v.(json.Delim); ok {
			// Skip the nested value: it is refused later with the argument's name.
			if err := skipNested(dec, d); err != nil {
				return nil, err
			}
		}
		args = append(args, jsonArg{name: key, value: v})
	}
	return args, expectDelim(dec, '}')
}

func skipNested(dec *json.Decoder, d json.Delim) error {
	depth := 1
	for depth > 0 {
		t, err := jsonToken(dec)
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

// jsonToken reads the next JSON token; the end of input is an error.
func jsonToken(dec *json.Decoder) (json.Token, error) {
	t, err := dec.Token()
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, errors.New("unexpected end")
	}
	return t, err
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := jsonToken(dec)
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return errors.New("expected '" + string(want) + "'")
	}
	return nil
}

func objectKey(dec *json.Decoder) (string, error) {
	t, err := jsonToken(dec)
	if err != nil {
		return "", err
	}
	k, ok := t.(string)
	if !ok {
		return "", errors.New("expected a key")
	}
	return k, nil
}

// fromJSON checks one JSON value for the argument.
func (a *Arg) fromJSON(v any) (any, string) {
	switch a.Type {
	case TypeInt, TypeFloat:
		n, ok := v.(json.Number)
		if !ok {
			return nil, "must be a JSON number" + inUnit(a.Unit) + ", got " + jsonKind(v)
		}
		if a.Type == TypeInt {
			if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
				if msg := a.rangeProblem(float64(i)); msg != "" {
					return nil, msg
				}
				return i, ""
			}
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, "is out of range: " + show(string(n))
		}
		return a.checkNumber(f, false)
	case TypeBool:
		b, ok := v.(bool)
		if !ok {
			return nil, "must be true or false, got " + jsonKind(v)
		}
		return b, ""
	case TypeEnum, TypeString:
		s, ok := v.(string)
		if !ok {
			if a.Type == TypeEnum {
				return nil, "must be one of " + strings.Join(a.Values, ", ") + ", got " + jsonKind(v)
			}
			return nil, "must be a string, got " + jsonKind(v)
		}
		if a.Type == TypeEnum {
			return a.parseText(s)
		}
		return a.checkString(s)
	}
	return nil, "has an unknown type " + show(a.Type)
}

func inUnit(u string) string {
	if u == "" {
		return ""
	}
	return " (in " + u + ")"
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case json.Delim:
		if x == '[' {
			return "a list"
		}
		return "an object"
	}
	return "something else"
}

// genericJSON turns a JSON token into an argument value for ExtraVerbs:
// int64 for integral numbers that fit, float64 for other numbers.
func genericJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return f
		}
		return string(x)
	case json.Delim:
		return nil
	}
	return v
}
