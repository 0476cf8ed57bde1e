package schema

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// RenderTelemetry renders telemetry values for people: the profile's fields
// in profile order, then fields the profile does not declare in
// alphabetical order, as "battery 87 %, temp 21.5 °C". A field's Format
// formats the number and its unit follows; booleans read on/off.
func (p *Profile) RenderTelemetry(values map[string]any) string {
	parts := make([]string, 0, len(values))
	known := make(map[string]bool, len(p.Telemetry))
	for _, f := range p.Telemetry {
		known[f.Name] = true
		if v, ok := values[f.Name]; ok {
			parts = append(parts, f.Name+" "+f.Render(v))
		}
	}
	for _, k := range sortedKeys(values) {
		if !known[k] {
			parts = append(parts, k+" "+formatAny(values[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// Render formats one value of the field with its Format and unit: "87 %".
// A value of an unexpected type is shown as it is.
func (f *Field) Render(v any) string {
	switch f.Type {
	case TypeInt, TypeFloat:
		x, ok := toFloat(v)
		if !ok {
			return formatAny(v)
		}
		return withUnit(f.formatNumber(x), f.Unit)
	case TypeBool:
		b, ok := v.(bool)
		if !ok {
			return formatAny(v)
		}
		if f.Format != "" {
			return withUnit(fmt.Sprintf(f.Format, b), f.Unit)
		}
		if b {
			return withUnit("on", f.Unit)
		}
		return withUnit("off", f.Unit)
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return formatAny(v)
		}
		if f.Format != "" {
			return withUnit(fmt.Sprintf(f.Format, s), f.Unit)
		}
		return withUnit(s, f.Unit)
	}
	return formatAny(v)
}

// formatNumber applies the field's format to a number, converting it to
// the type the format's verb wants.
func (f *Field) formatNumber(x float64) string {
	if f.Format == "" || math.IsNaN(x) || math.IsInf(x, 0) {
		if f.Type == TypeInt && x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return strconv.FormatInt(int64(x), 10)
		}
		return fmtNum(x)
	}
	switch formatVerb(f.Format) {
	case 'd', 'x', 'X', 'o', 'b':
		if math.Abs(x) >= 1<<63 {
			return fmtNum(x)
		}
		return fmt.Sprintf(f.Format, int64(math.Round(x)))
	case 'v':
		if f.Type == TypeInt && x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return fmt.Sprintf(f.Format, int64(x))
		}
	}
	return fmt.Sprintf(f.Format, x)
}

// formatVerb returns the verb of a format with exactly one verb, or 0.
func formatVerb(format string) byte {
	var verb byte
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			continue
		}
		for i < len(format) && strings.IndexByte("+-# 0", format[i]) >= 0 {
			i++
		}
		// Width and precision: at most two digits each.
		for d := 0; i < len(format) && format[i] >= '0' && format[i] <= '9'; d++ {
			if d == 2 {
				return 0
			}
			i++
		}
		if i < len(format) && format[i] == '.' {
			i++
			for d := 0; i < len(format) && format[i] >= '0' && format[i] <= '9'; d++ {
				if d == 2 {
					return 0
				}
				i++
			}
		}
		if i >= len(format) || verb != 0 {
			return 0
		}
		verb = format[i]
	}
	return verb
}

// formatVerbsFor lists the format verbs allowed for a field type.
func formatVerbsFor(typ string) string {
	switch typ {
	case TypeInt, TypeFloat:
		return "dxXobeEfFgGv"
	case TypeBool:
		return "tv"
	case TypeString:
		return "sqv"
	}
	return ""
}

// toFloat reads any Go number as a float64.
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// formatAny renders a value without a schema: numbers in shortest form,
// strings quoted when they contain spaces or '=', bytes as hex.
func formatAny(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return chatValue(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return fmtNum(x)
	case float32:
		return fmtNum(float64(x))
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case int:
		return strconv.Itoa(x)
	case []byte:
		return "0x" + hex.EncodeToString(x)
	case json.Number:
		return string(x)
	}
	return fmt.Sprint(v)
}

// Alert is a telemetry value beyond one of its field's thresholds.
type Alert struct {
	Field  string
	Value  float64
	Below  bool    // true: Value < Limit (the field's below); false: Value > Limit (its above)
	Limit  float64 // the threshold crossed
	Unit   string
	Format string // the field's format, for String
}

// String is "battery 12 % is below 15 %".
func (a Alert) String() string {
	f := Field{Type: TypeFloat, Format: a.Format}
	dir := "above"
	if a.Below {
		dir = "below"
	}
	return a.Field + " " + withUnit(f.formatNumber(a.Value), a.Unit) + " is " + dir + " " + withUnit(fmtNum(a.Limit), a.Unit)
}

// Thresholds returns the alerts for the values that are beyond their
// field's Below or Above threshold, in profile order. It is stateless: the
// caller decides when an alert is new (e.g. only on crossing).
func (p *Profile) Thresholds(values map[string]any) []Alert {
	var out []Alert
	for _, f := range p.Telemetry {
		if f.Below == nil && f.Above == nil {
			continue
		}
		x, ok := toFloat(values[f.Name])
		if !ok || math.IsNaN(x) {
			continue
		}
		if f.Below != nil && x < *f.Below {
			out = append(out, Alert{Field: f.Name, Value: x, Below: true, Limit: *f.Below, Unit: f.Unit, Format: f.Format})
		}
		if f.Above != nil && x > *f.Above {
			out = append(out, Alert{Field: f.Name, Value: x, Limit: *f.Above, Unit: f.Unit, Format: f.Format})
		}
	}
	return out
}

// RenderValues renders command results for people: "key=value" in key
// order, separated by spaces; strings are quoted when needed.
func RenderValues(values map[string]any) string {
	var b strings.Builder
	for i, k := range sortedKeys(values) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(formatAny(values[k]))
	}
	return b.String()
}

// MachineJSON encodes v (a map, struct, slice or scalar) as compact JSON
// with object keys sorted at every level, numbers kept exactly, and no HTML
// escaping: the same value always gives the same bytes.
func MachineJSON(v any) ([]byte, error) {
	first, err := encodeJSON(v)
	if err != nil {
		return nil, err
	}
	// Struct fields come out in declaration order; a round trip through
	// generic values sorts them like map keys.
	dec := json.NewDecoder(bytes.NewReader(first))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	return encodeJSON(generic)
}

func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
