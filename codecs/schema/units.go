package schema

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Unit is one entry of the unit table. A value v in this unit is
// v*Scale + Offset in the base unit of its Dimension (metre, radian, second,
// percent, kelvin, metre per second, pascal, ampere, volt).
type Unit struct {
	Symbol    string // canonical symbol, e.g. "cm", "°C"
	Dimension string // "length", "angle", "time", "percent", "temperature", "speed", "pressure", "current", "voltage"
	Scale     float64
	Offset    float64 // non-zero only for affine units (°C, °F)
}

// unitTable lists the known units, grouped by dimension, in the order they
// are shown to people.
var unitTable = []Unit{
	{"mm", "length", 0.001, 0},
	{"cm", "length", 0.01, 0},
	{"m", "length", 1, 0},
	{"km", "length", 1000, 0},
	{"in", "length", 0.0254, 0},
	{"ft", "length", 0.3048, 0},

	{"deg", "angle", math.Pi / 180, 0},
	{"rad", "angle", 1, 0},

	{"ms", "time", 0.001, 0},
	{"s", "time", 1, 0},
	{"min", "time", 60, 0},
	{"h", "time", 3600, 0},

	{"%", "percent", 1, 0},

	{"°C", "temperature", 1, 273.15},
	{"°F", "temperature", 5.0 / 9, 273.15 - 32*5.0/9},
	{"K", "temperature", 1, 0},

	{"m/s", "speed", 1, 0},
	{"cm/s", "speed", 0.01, 0},
	{"km/h", "speed", 1 / 3.6, 0},

	{"Pa", "pressure", 1, 0},
	{"hPa", "pressure", 100, 0},
	{"kPa", "pressure", 1000, 0},

	{"A", "current", 1, 0},
	{"mA", "current", 0.001, 0},

	{"V", "voltage", 1, 0},
	{"mV", "voltage", 0.001, 0},
}

// unitAliases maps other spellings to canonical symbols.
var unitAliases = map[string]string{
	"°":       "deg",
	"degree":  "deg",
	"degrees": "deg",
	"C":       "°C",
	"℃":       "°C",
	"ºC":      "°C", // masculine ordinal indicator, common on some keyboards
	"F":       "°F",
	"℉":       "°F",
	"ºF":      "°F",
	"sec":     "s",
	"hr":      "h",
}

var (
	unitBySymbol map[string]*Unit // canonical symbols and aliases
	unitByLower  map[string]*Unit // lower-cased spellings that are unambiguous
)

func init() {
	unitBySymbol = make(map[string]*Unit, len(unitTable)+len(unitAliases))
	for i := range unitTable {
		unitBySymbol[unitTable[i].Symbol] = &unitTable[i]
	}
	for alias, sym := range unitAliases {
		unitBySymbol[alias] = unitBySymbol[sym]
	}
	unitByLower = make(map[string]*Unit, len(unitBySymbol))
	ambiguous := map[string]bool{}
	for s, u := range unitBySymbol {
		l := strings.ToLower(s)
		if prev, ok := unitByLower[l]; ok && prev != u {
			ambiguous[l] = true
		}
		unitByLower[l] = u
	}
	for l := range ambiguous {
		delete(unitByLower, l)
	}
}

// LookupUnit finds a unit by symbol or alias ("cm", "°", "C", "degrees").
// Exact spellings win; otherwise a case-insensitive match is used when it is
// unambiguous ("CM" finds cm).
func LookupUnit(symbol string) (Unit, bool) {
	u := lookupUnit(symbol)
	if u == nil {
		return Unit{}, false
	}
	return *u, true
}

func lookupUnit(symbol string) *Unit {
	if u, ok := unitBySymbol[symbol]; ok {
		return u
	}
	if len(symbol) > MaxUnitLen {
		return nil
	}
	return unitByLower[strings.ToLower(symbol)]
}

// UnitsOf returns the canonical symbols of a dimension's units in table
// order, or nil for an unknown dimension.
func UnitsOf(dimension string) []string {
	var out []string
	for _, u := range unitTable {
		if u.Dimension == dimension {
			out = append(out, u.Symbol)
		}
	}
	return out
}

// ConvertUnit converts v from one unit to another of the same dimension.
// Units outside the table convert only to themselves.
func ConvertUnit(v float64, from, to string) (float64, error) {
	if from == to {
		return v, nil
	}
	f, t := lookupUnit(from), lookupUnit(to)
	if f == nil || t == nil {
		if strings.EqualFold(from, to) && f == nil && t == nil {
			return v, nil
		}
		return 0, fmt.Errorf("cannot convert %s to %s", from, to)
	}
	if f.Dimension != t.Dimension {
		return 0, fmt.Errorf("cannot convert %s (%s) to %s (%s)", from, f.Dimension, to, t.Dimension)
	}
	return convert(v, f, t), nil
}

// convert converts between two units of one dimension and rounds away the
// binary noise of the scale factors (1.1 m is 110 cm, not 110.00000000000001).
func convert(v float64, f, t *Unit) float64 {
	if f == t {
		return v
	}
	return clean((v*f.Scale + f.Offset - t.Offset) / t.Scale)
}

// convertDelta converts a difference between two values (an offset): the
// zero points of affine units do not apply, so 0.9 °F is 0.5 °C.
func convertDelta(v float64, f, t *Unit) float64 {
	if f == t {
		return v
	}
	return clean(v * f.Scale / t.Scale)
}

// clean rounds v to 12 significant digits.
func clean(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], v, 'g', 12, 64)
	r, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return v
	}
	return r
}

// dimensionUnits lists the units a value of dimension dim may be given in,
// for error messages: "mm, cm, m, km, in, ft".
func dimensionUnits(dim string) string {
	return strings.Join(UnitsOf(dim), ", ")
}

// scanNumber returns the length of the decimal number at the start of s:
// [+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?. It returns 0
// when s does not start with a number.
func scanNumber(s string) int {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		frac := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
			frac++
		}
		if digits > 0 || frac > 0 {
			i = j
			digits += frac
		}
	}
	if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j {
			i = k
		}
	}
	return i
}

// fmtNum formats a number for people: shortest exact form, no exponent for
// ordinary magnitudes.
func fmtNum(v float64) string {
	a := math.Abs(v)
	if a == 0 || (a >= 1e-4 && a < 1e15) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// withUnit appends a unit to a formatted number: "87 %", "21.5 °C".
func withUnit(num, unit string) string {
	if unit == "" {
		return num
	}
	return num + " " + unit
}
