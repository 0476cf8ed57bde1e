package schema

import (
	"math"
	"testing"
)

const watchYAML = `profile: station
telemetry:
  battery: {type: float, unit: "%", below: 15}
  temp: {type: float, unit: °C, above: 30}
  obstacle: {type: float, unit: cm}
  door: {type: string}
  ch1: {type: bool}
  count: {type: int}
`

func watchProfile(t testing.TB) *Profile {
	p, err := ParseProfile("station.yaml", []byte(watchYAML))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseCondition(t *testing.T) {
	p := watchProfile(t)
	cases := []struct {
		in, field, op string
		value         any
		str           string
	}{
		{"temp > 30", "temp", ">", 30.0, "temp > 30 °C"},
		{"battery<15", "battery", "<", 15.0, "battery < 15 %"},
		{"  temp >= 30.5 ", "temp", ">=", 30.5, "temp >= 30.5 °C"},
		{"obstacle < 20cm", "obstacle", "<", 20.0, "obstacle < 20 cm"},
		{"obstacle < 0.2m", "obstacle", "<", 20.0, "obstacle < 20 cm"},
		{"obstacle < 0.2 m", "obstacle", "<", 20.0, "obstacle < 20 cm"},
		{"temp > 86°F", "temp", ">", 30.0, "temp > 30 °C"},
		{"TEMP ≥ 30", "temp", ">=", 30.0, "temp >= 30 °C"},
		{"temp <= -5", "temp", "<=", -5.0, "temp <= -5 °C"},
		{"count == 3", "count", "==", 3.0, "count == 3"},
		{"count != 3", "count", "!=", 3.0, "count != 3"},
		{"door == open", "door", "==", "open", "door == open"},
		{"door = open", "door", "==", "open", "door == open"},
		{"door != 'half open'", "door", "!=", "half open", `door != "half open"`},
		{"ch1 == on", "ch1", "==", true, "ch1 == on"},
		{"ch1 != false", "ch1", "!=", false, "ch1 != off"},
	}
	for _, c := range cases {
		got, err := ParseCondition(p, c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got.Field.Name != c.field || got.Op != c.op || got.Value != c.value {
			t.Errorf("%q: got %s %s %#v", c.in, got.Field.Name, got.Op, got.Value)
		}
		if got.String() != c.str {
			t.Errorf("%q: String() = %q, want %q", c.in, got.String(), c.str)
		}
		back, err := ParseCondition(p, got.String())
		if err != nil || back.Field != got.Field || back.Op != got.Op || back.Value != got.Value {
			t.Errorf("%q: String() does not read back: %v %v", c.in, back, err)
		}
	}
}

func TestParseConditionErrors(t *testing.T) {
	p := watchProfile(t)
	const fields = "Fields: battery, temp, obstacle, door, ch1, count."
	cases := []struct {
		in   string
		kind ErrorKind
		msg  string
	}{
		{"tmp > 30", ErrUnknownField, "unknown field 'tmp'; did you mean 'temp'? " + fields},
		{"speed > 3", ErrUnknownField, "unknown field 'speed'. " + fields},
		{"temp", ErrSyntax, "expected an operator (< <= > >= == !=) after temp; e.g. 'battery < 15'. " + fields},
		{"temp >", ErrSyntax, "missing the value after temp >; e.g. 'battery < 15'. " + fields},
		{"", ErrSyntax, "expected a condition; e.g. 'battery < 15'. " + fields},
		{"> 5", ErrSyntax, "expected a condition; e.g. 'battery < 15'. " + fields},
		{"temp > hot", ErrBadArg, "temp must be a number like 10°C, got 'hot'; e.g. temp > 10 °C"},
		{"obstacle < 20deg", ErrBadArg, "obstacle takes a length (mm, cm, m, km, in, ft), not '20deg'; e.g. obstacle < 10 cm"},
		{"count > 5cm", ErrBadArg, "count takes a plain number without a unit, got '5cm'; e.g. count > 10"},
		{"ch1 > 1", ErrBadArg, "ch1 is on or off: compare it with == or !=, e.g. ch1 == on"},
		{"ch1 == maybe", ErrBadArg, "ch1 is on or off, got 'maybe'"},
		{"door < a", ErrBadArg, "door is text: compare it with == or !="},
		{"temp > 1e999", ErrBadArg, "temp is out of range: '1e999'; e.g. temp > 10 °C"},
		{"temp > \xff", ErrSyntax, "the condition is not valid text (UTF-8)"},
		{"door == a\x1fb", ErrSyntax, `the condition contains a control character ('\x1f')`},
		{"door == a\vb", ErrBadArg, "door must not contain control characters"},
	}
	for _, c := range cases {
		_, err := ParseCondition(p, c.in)
		pe, ok := err.(*ParseError)
		if !ok || pe.Kind != c.kind || pe.Msg != c.msg {
			t.Errorf("%q:\n got: %v (%v)\nwant: %s (%v)", c.in, err, kindOf(err), c.msg, c.kind)
		}
	}
	long := make([]byte, MaxInputLen+1)
	for i := range long {
		long[i] = 'a'
	}
	if _, err := ParseCondition(p, string(long)); kindOf(err) != ErrTooLong {
		t.Errorf("long condition: %v", err)
	}
	empty, _ := ParseProfile("e.yaml", []byte("profile: e\n"))
	if _, err := ParseCondition(empty, "temp > 3"); err == nil || err.Error() != "unknown field 'temp'. This device reports no telemetry." {
		t.Errorf("no telemetry: %v", err)
	}
}

func kindOf(err error) ErrorKind {
	if pe, ok := err.(*ParseError); ok {
		return pe.Kind
	}
	return 0
}

func TestConditionEval(t *testing.T) {
	p := watchProfile(t)
	cases := []struct {
		cond             string
		values           map[string]any
		matched, present bool
	}{
		{"temp > 30", map[string]any{"temp": 31.0}, true, true},
		{"temp > 30", map[string]any{"temp": int64(30)}, false, true},
		{"temp >= 30", map[string]any{"temp": int64(30)}, true, true},
		{"temp > 30", map[string]any{"temp": float32(30.5)}, true, true},
		{"temp > 30", map[string]any{"temp": uint64(40)}, true, true},
		{"temp > 30", map[string]any{"temp": 40}, true, true},
		{"temp > 30", map[string]any{}, false, false},
		{"temp > 30", nil, false, false},
		{"temp > 30", map[string]any{"temp": "hot"}, false, true},
		{"temp > 30", map[string]any{"temp": math.NaN()}, false, true},
		{"temp < 30", map[string]any{"temp": 29.9}, true, true},
		{"temp <= 30", map[string]any{"temp": 30.0}, true, true},
		{"temp == 30", map[string]any{"temp": 30.0}, true, true},
		{"temp != 30", map[string]any{"temp": 30.0}, false, true},
		{"door == open", map[string]any{"door": "open"}, true, true},
		{"door != open", map[string]any{"door": "open"}, false, true},
		{"door == open", map[string]any{"door": 1}, false, true},
		{"ch1 == on", map[string]any{"ch1": true}, true, true},
		{"ch1 != on", map[string]any{"ch1": false}, true, true},
		{"ch1 == on", map[string]any{"ch1": "on"}, false, true},
	}
	for _, c := range cases {
		cond, err := ParseCondition(p, c.cond)
		if err != nil {
			t.Fatal(err)
		}
		m, pr := cond.Eval(c.values)
		if m != c.matched || pr != c.present {
			t.Errorf("%s on %v = %v, %v; want %v, %v", c.cond, c.values, m, pr, c.matched, c.present)
		}
	}
}
