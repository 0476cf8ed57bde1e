package schema

import (
	"math"
	"strings"
	"testing"
)

func TestRenderTelemetry(t *testing.T) {
	spec, err := ParseProfile("rover.yaml", []byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	relay, err := LoadProfileFile("../../examples/profiles/relay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	station := watchProfile(t)
	cases := []struct {
		p      *Profile
		values map[string]any
		want   string
	}{
		{spec, map[string]any{"temp": 21.5, "battery": 87.4}, "battery 87 %, temp 21.5 °C"},
		{spec, map[string]any{"zeta": 1, "alpha": "x y", "battery": int64(50)}, `battery 50 %, alpha "x y", zeta 1`},
		{spec, map[string]any{"obstacle": 12.25}, "obstacle 12.25 cm"},
		{spec, map[string]any{"battery": "n/a"}, "battery n/a"},
		{spec, map[string]any{"battery": math.Inf(1)}, "battery +Inf %"},
		{spec, map[string]any{}, ""},
		{relay, map[string]any{"ch1": true, "ch2": false, "current": 1.234}, "ch1 on, ch2 off, current 1.23 A"},
		{station, map[string]any{"count": int64(3), "door": "open", "ch1": true}, "door open, ch1 on, count 3"},
		{station, map[string]any{"count": 2.5, "blob": []byte{1, 2}, "none": nil}, "count 2.5, blob 0x0102, none null"},
	}
	for _, c := range cases {
		if got := c.p.RenderTelemetry(c.values); got != c.want {
			t.Errorf("%v:\n got: %s\nwant: %s", c.values, got, c.want)
		}
	}
}

func TestFieldRenderFormats(t *testing.T) {
	cases := []struct {
		f    Field
		v    any
		want string
	}{
		{Field{Type: TypeFloat, Format: "%.1f", Unit: "°C"}, 21.25, "21.2 °C"},
		{Field{Type: TypeFloat, Format: "%d"}, 21.6, "22"},
		{Field{Type: TypeInt, Format: "%04d"}, int64(7), "0007"},
		{Field{Type: TypeInt, Format: "%x"}, int64(255), "ff"},
		{Field{Type: TypeInt, Format: "%v"}, int64(255), "255"},
		{Field{Type: TypeInt}, int64(-3), "-3"},
		{Field{Type: TypeFloat, Format: "%.0f%%"}, 50.0, "50%"},
		{Field{Type: TypeBool, Format: "%t"}, true, "true"},
		{Field{Type: TypeString, Format: "%q"}, "a", `"a"`},
		{Field{Type: TypeFloat, Format: "%.1f"}, math.NaN(), "NaN"},
	}
	for _, c := range cases {
		if got := c.f.Render(c.v); got != c.want {
			t.Errorf("%+v %v = %q, want %q", c.f, c.v, got, c.want)
		}
	}
}

func TestThresholds(t *testing.T) {
	spec, err := ParseProfile("rover.yaml", []byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	alerts := spec.Thresholds(map[string]any{"battery": int64(12), "temp": 31.3, "obstacle": 1.0})
	var got []string
	for _, a := range alerts {
		got = append(got, a.String())
	}
	want := "battery 12 % is below 15 %; temp 31.3 °C is above 30 °C"
	if strings.Join(got, "; ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, "; "), want)
	}
	if a := alerts[0]; a.Field != "battery" || a.Value != 12 || !a.Below || a.Limit != 15 || a.Unit != "%" {
		t.Errorf("alert %+v", a)
	}
	for _, values := range []map[string]any{
		{"battery": 15.0, "temp": 30.0},
		{"battery": "low"},
		{"battery": math.NaN()},
		nil,
	} {
		if a := spec.Thresholds(values); len(a) != 0 {
			t.Errorf("%v: alerts %v", values, a)
		}
	}
	both := &Profile{Telemetry: []*Field{{Name: "x", Type: TypeFloat, Below: fp(10), Above: fp(5)}}}
	if a := both.Thresholds(map[string]any{"x": 3.0}); len(a) != 1 || !a[0].Below {
		t.Errorf("below only: %v", a)
	}
}

func TestRenderValues(t *testing.T) {
	got := RenderValues(map[string]any{"b": 1.5, "a": "hi there", "c": true, "d": int64(3), "e": []byte{1, 2}, "f": nil, "g": "", "h": uint64(7)})
	want := `a="hi there" b=1.5 c=true d=3 e=0x0102 f=null g="" h=7`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if RenderValues(nil) != "" {
		t.Error("nil values")
	}
}

func TestMachineJSON(t *testing.T) {
	type reply struct {
		Verb   string         `json:"verb"`
		Args   map[string]any `json:"args"`
		Status string         `json:"status"`
	}
	v := reply{Verb: "move", Args: map[string]any{"speed": 0.5, "distance": 10.0, "note": "<a&b>"}, Status: "ok"}
	want := `{"args":{"distance":10,"note":"<a&b>","speed":0.5},"status":"ok","verb":"move"}`
	for i := 0; i < 3; i++ {
		got, err := MachineJSON(v)
		if err != nil || string(got) != want {
			t.Fatalf("got %s, %v\nwant %s", got, err, want)
		}
	}
	got, err := MachineJSON(map[string]any{"big": int64(1) << 62, "z": []any{map[string]any{"b": 1, "a": 2}}})
	if err != nil || string(got) != `{"big":4611686018427387904,"z":[{"a":2,"b":1}]}` {
		t.Errorf("got %s, %v", got, err)
	}
	if _, err := MachineJSON(map[string]any{"x": math.NaN()}); err == nil {
		t.Error("NaN: no error")
	}
}
