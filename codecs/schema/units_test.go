package schema

import (
	"math"
	"reflect"
	"testing"
)

func TestConvertUnit(t *testing.T) {
	cases := []struct {
		v        float64
		from, to string
		want     float64
	}{
		{10, "cm", "m", 0.1},
		{0.1, "m", "cm", 10},
		{1.1, "m", "cm", 110},
		{1, "km", "m", 1000},
		{5, "mm", "cm", 0.5},
		{2, "in", "cm", 5.08},
		{1, "ft", "m", 0.3048},
		{180, "deg", "rad", math.Pi},
		{180, "°", "rad", math.Pi},
		{90, "degrees", "deg", 90},
		{1, "min", "s", 60},
		{1, "h", "ms", 3600000},
		{1.5, "s", "ms", 1500},
		{50, "%", "%", 50},
		{100, "°C", "°F", 212},
		{32, "°F", "°C", 0},
		{68, "F", "C", 20},
		{0, "K", "°C", -273.15},
		{20, "C", "K", 293.15},
		{-40, "°C", "°F", -40},
		{3.6, "km/h", "m/s", 1},
		{50, "cm/s", "m/s", 0.5},
		{1, "m/s", "km/h", 3.6},
		{1013.25, "hPa", "Pa", 101325},
		{101.325, "kPa", "hPa", 1013.25},
		{250, "mA", "A", 0.25},
		{1500, "mV", "V", 1.5},
		{7, "ppm", "ppm", 7},
	}
	for _, c := range cases {
		got, err := ConvertUnit(c.v, c.from, c.to)
		if err != nil || math.Abs(got-c.want) > 1e-9*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%v %s → %s = %v, %v; want %v", c.v, c.from, c.to, got, err, c.want)
		}
	}
	for _, c := range [][2]string{{"cm", "deg"}, {"cm", "ppm"}, {"ppm", "cm"}, {"°C", "%"}, {"xx", "yy"}} {
		if _, err := ConvertUnit(1, c[0], c[1]); err == nil {
			t.Errorf("%s → %s: no error", c[0], c[1])
		}
	}
}

func TestLookupUnit(t *testing.T) {
	cases := map[string]string{
		"cm": "cm", "CM": "cm", "Cm": "cm", "°": "deg", "deg": "deg", "MS": "ms", "c": "°C", "°c": "°C",
		"℃": "°C", "F": "°F", "k": "K", "HPA": "hPa", "m/s": "m/s", "KM/H": "km/h", "sec": "s", "ma": "mA",
	}
	for in, want := range cases {
		u, ok := LookupUnit(in)
		if !ok || u.Symbol != want {
			t.Errorf("LookupUnit(%q) = %v, %v; want %s", in, u, ok, want)
		}
	}
	for _, in := range []string{"", "xx", "cms", "metres"} {
		if u, ok := LookupUnit(in); ok {
			t.Errorf("LookupUnit(%q) = %v", in, u)
		}
	}
	if got := UnitsOf("length"); !reflect.DeepEqual(got, []string{"mm", "cm", "m", "km", "in", "ft"}) {
		t.Errorf("UnitsOf(length) = %v", got)
	}
	if got := UnitsOf("temperature"); !reflect.DeepEqual(got, []string{"°C", "°F", "K"}) {
		t.Errorf("UnitsOf(temperature) = %v", got)
	}
	if UnitsOf("mass") != nil {
		t.Error("UnitsOf(mass)")
	}
}

func TestScanNumber(t *testing.T) {
	cases := map[string]int{
		"10cm": 2, "-1.5e3x": 6, "1e": 1, "1e+": 1, ".5": 2, ".": 0, "+": 0, "-": 0, "1.x": 2, "e5": 0,
		"": 0, "10": 2, "+3.": 3, "1E-2m": 4, "0x10": 1, "1_000": 1, "٣": 0,
	}
	for in, want := range cases {
		if got := scanNumber(in); got != want {
			t.Errorf("scanNumber(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestFmtNum(t *testing.T) {
	cases := map[float64]string{0: "0", 1: "1", -500: "-500", 0.5: "0.5", 1e6: "1000000", 1e21: "1e+21", 1e-5: "1e-05", 0.0001: "0.0001"}
	for in, want := range cases {
		if got := fmtNum(in); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	verbs := []string{"move", "turn", "stop", "status", "arm", "disarm", "help", "speed"}
	cases := map[string]string{
		"mvoe": "move", "MOVE": "move", "hlep": "help", "dis": "disarm", "st": "", "sped": "speed",
		"xyz": "", "a": "", "tunr": "turn", "stauts": "status", "arn": "arm", "mv": "", "stpo": "stop",
		"disarmm": "disarm", "": "",
	}
	for in, want := range cases {
		if got := Suggest(in, verbs); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOSADistance(t *testing.T) {
	cases := []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"move", "mvoe", 1}, {"ca", "abc", 3}, {"kitten", "sitting", 3},
		{"héllo", "hello", 1},
	}
	for _, c := range cases {
		if got := osaDistance([]rune(c.a), []rune(c.b)); got != c.d {
			t.Errorf("osa(%q,%q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
