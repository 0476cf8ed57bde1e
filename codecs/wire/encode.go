package wire

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// CBOR major types, shifted into the initial byte.
const (
	majUint  = 0 << 5
	majNeg   = 1 << 5
	majBytes = 2 << 5
	majText  = 3 << 5
	majMap   = 5 << 5

	cborFalse = 0xf4
	cborTrue  = 0xf5
)

// appendHead appends a CBOR head with the shortest argument encoding.
func appendHead(b []byte, major byte, v uint64) []byte {
	switch {
	case v < 24:
		return append(b, major|byte(v))
	case v <= math.MaxUint8:
		return append(b, major|24, byte(v))
	case v <= math.MaxUint16:
		return append(b, major|25, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, major|26, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, major|27, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendHead(b, majUint, uint64(v))
	}
	return appendHead(b, majNeg, uint64(^v)) // -1-v
}

func appendText(b []byte, s string) []byte {
	b = appendHead(b, majText, uint64(len(s)))
	return append(b, s...)
}

// appendFloat appends f in the shortest of float16, float32 and float64 that
// represents it exactly (RFC 8949 §4.2.1). f must not be NaN.
func appendFloat(b []byte, f float64) []byte {
	f32 := float32(f)
	if float64(f32) == f {
		bits := math.Float32bits(f32)
		if h, ok := float16Exact(bits); ok {
			return append(b, 0xf9, byte(h>>8), byte(h))
		}
		return append(b, 0xfa, byte(bits>>24), byte(bits>>16), byte(bits>>8), byte(bits))
	}
	bits := math.Float64bits(f)
	return append(b, 0xfb, byte(bits>>56), byte(bits>>48), byte(bits>>40), byte(bits>>32),
		byte(bits>>24), byte(bits>>16), byte(bits>>8), byte(bits))
}

// float16Exact returns the IEEE 754 binary16 bits of the binary32 value with
// the given bits, if binary16 represents it exactly (NaN excluded).
func float16Exact(bits uint32) (uint16, bool) {
	sign := uint16(bits>>16) & 0x8000
	exp := int((bits >> 23) & 0xff)
	mant := bits & 0x7fffff
	switch {
	case exp == 0 && mant == 0:
		return sign, true // ±0
	case exp == 0:
		return 0, false // binary32 subnormal: far below binary16's range
	case exp == 0xff:
		if mant == 0 {
			return sign | 0x7c00, true // ±Inf
		}
		return 0, false
	}
	e := exp - 127
	switch {
	case e > 15:
		return 0, false
	case e >= -14: // binary16 normal: 10 mantissa bits
		if mant&0x1fff != 0 {
			return 0, false
		}
		return sign | uint16(e+15)<<10 | uint16(mant>>13), true
	case e >= -24: // binary16 subnormal: k × 2^-24
		m := mant | 1<<23
		shift := uint(-(e + 1))
		if m&(1<<shift-1) != 0 {
			return 0, false
		}
		return sign | uint16(m>>shift), true
	}
	return 0, false
}

// sizeHint estimates the encoded size of env, generously, so that Marshal
// allocates once.
func sizeHint(env *Envelope) int {
	n := 48
	body := func(m map[string]Value) {
		for k, v := range m {
			n += len(k) + 12
			switch x := v.(type) {
			case string:
				n += len(x)
			case []byte:
				n += len(x)
			}
		}
	}
	switch {
	case env.Command != nil:
		c := env.Command
		n += len(c.Device) + len(c.Verb) + len(c.IdemKey) + len(c.ReplyTo) + 4*3
		body(c.Args)
	case env.Reply != nil:
		r := env.Reply
		n += len(r.Device) + len(r.Text) + 2*3
		body(r.Result)
	case env.Telemetry != nil:
		n += len(env.Telemetry.Device) + 3
		body(env.Telemetry.Values)
	case env.State != nil:
		s := env.State
		n += len(s.Device) + len(s.Firmware) + len(s.Profile) + len(s.ProfileVersion) + 4*3
	case env.Hello != nil:
		h := env.Hello
		n += len(h.Device) + len(h.Firmware) + len(h.Profile) + len(h.ProfileVersion) + 4*3
	case env.Heartbeat != nil:
		n += len(env.Heartbeat.Device) + 3
	}
	return n
}

// mapWriter writes an envelope map whose pair count is patched in at the end
// (the envelope has fewer than 24 keys, so the head is always one byte).
type mapWriter struct {
	b     []byte
	head  int
	pairs byte
	lim   *Limits
	err   *Error
}

func (w *mapWriter) key(k int) {
	w.b = append(w.b, byte(k)) // keys 0..23: one byte, major type 0
	w.pairs++
}

func (w *mapWriter) uint(k int, v uint64, always bool) {
	if v == 0 && !always {
		return
	}
	w.key(k)
	w.b = appendHead(w.b, majUint, v)
}

func (w *mapWriter) int(k int, v int64) {
	if v == 0 {
		return
	}
	w.key(k)
	w.b = appendInt(w.b, v)
}

func (w *mapWriter) text(k int, s string) {
	if s == "" {
		return
	}
	if len(s) > w.lim.MaxStringLen {
		w.fail(ErrTooLarge, k, "text is "+strconv.Itoa(len(s))+" bytes, over MaxStringLen "+
			strconv.Itoa(w.lim.MaxStringLen)+"; shorten it")
		return
	}
	if !utf8.ValidString(s) {
		w.fail(ErrBadValue, k, "text is not valid UTF-8; CBOR text strings must be UTF-8")
		return
	}
	w.key(k)
	w.b = appendText(w.b, s)
}

func (w *mapWriter) bool(k int, v bool, always bool) {
	if !v && !always {
		return
	}
	w.key(k)
	if v {
		w.b = append(w.b, cborTrue)
	} else {
		w.b = append(w.b, cborFalse)
	}
}

func (w *mapWriter) fail(code ErrorCode, k int, msg string) {
	if w.err == nil {
		w.err = newErr("encode", code, k, msg)
	}
}

// lessKey orders text keys by their deterministic CBOR encoding: shorter
// first, then bytewise.
func lessKey(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func cmpKey(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// body writes key k with the value map m, in deterministic key order.
func (w *mapWriter) body(k int, m map[string]Value) {
	if len(m) == 0 {
		return
	}
	if len(m) > w.lim.MaxMapPairs {
		w.fail(ErrTooLarge, k, strconv.Itoa(len(m))+" values, over MaxMapPairs "+
			strconv.Itoa(w.lim.MaxMapPairs)+"; send fewer values per message")
		return
	}
	var buf [16]string
	keys := buf[:0]
	for name := range m {
		keys = append(keys, name)
	}
	if len(keys) <= len(buf) {
		for i := 1; i < len(keys); i++ { // insertion sort: small n, no allocation
			for j := i; j > 0 && lessKey(keys[j], keys[j-1]); j-- {
				keys[j], keys[j-1] = keys[j-1], keys[j]
			}
		}
	} else {
		slices.SortFunc(keys, cmpKey)
	}
	w.key(k)
	w.b = appendHead(w.b, majMap, uint64(len(m)))
	for _, name := range keys {
		if name == "" {
			w.fail(ErrBadValue, k, "empty value name; every value needs its profile name")
			return
		}
		if len(name) > w.lim.MaxStringLen {
			w.fail(ErrTooLarge, k, "value name over MaxStringLen; shorten it")
			return
		}
		if !utf8.ValidString(name) {
			w.fail(ErrBadValue, k, "value name "+strconv.Quote(name)+" is not valid UTF-8")
			return
		}
		w.b = appendText(w.b, name)
		w.value(k, name, m[name])
		if w.err != nil {
			return
		}
	}
}

func (w *mapWriter) value(k int, name string, v Value) {
	switch x := v.(type) {
	case int64:
		w.b = appendInt(w.b, x)
	case uint64:
		w.b = appendHead(w.b, majUint, x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			w.fail(ErrBadValue, k, "value "+strconv.Quote(name)+" is NaN or infinite; omit a value that has no reading")
			return
		}
		w.b = appendFloat(w.b, x)
	case string:
		if len(x) > w.lim.MaxStringLen {
			w.fail(ErrTooLarge, k, "value "+strconv.Quote(name)+" is over MaxStringLen; shorten it")
			return
		}
		if !utf8.ValidString(x) {
			w.fail(ErrBadValue, k, "value "+strconv.Quote(name)+" is not valid UTF-8; send bytes as []byte")
			return
		}
		w.b = appendText(w.b, x)
	case bool:
		if x {
			w.b = append(w.b, cborTrue)
		} else {
			w.b = append(w.b, cborFalse)
		}
	case []byte:
		if len(x) > w.lim.MaxStringLen {
			w.fail(ErrTooLarge, k, "value "+strconv.Quote(name)+" is over MaxStringLen; shorten it")
			return
		}
		w.b = appendHead(w.b, majBytes, uint64(len(x)))
		w.b = append(w.b, x...)
	default:
		w.fail(ErrBadValue, k, "value "+strconv.Quote(name)+" has Go type "+typeName(v)+
			"; use int64, uint64, float64, string, bool or []byte")
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// kindOf returns the kind env describes, checking it is consistent.
func kindOf(env *Envelope) (Kind, *Error) {
	var k Kind
	n := 0
	if env.Command != nil {
		k, n = KindCommand, n+1
	}
	if env.Reply != nil {
		k, n = KindReply, n+1
	}
	if env.Telemetry != nil {
		k, n = KindTelemetry, n+1
	}
	if env.State != nil {
		k, n = KindState, n+1
	}
	if env.Hello != nil {
		k, n = KindHello, n+1
	}
	if env.Heartbeat != nil {
		k, n = KindHeartbeat, n+1
	}
	if n != 1 {
		return 0, newErr("encode", ErrBadValue, KeyKind,
			"Envelope must have exactly one non-nil field, has "+strconv.Itoa(n))
	}
	if env.Kind != 0 && env.Kind != k {
		return 0, newErr("encode", ErrBadValue, KeyKind,
			"Envelope.Kind is "+env.Kind.String()+" but the non-nil field is "+k.String())
	}
	return k, nil
}

func (c *Codec) encode(dst []byte, env *Envelope) ([]byte, error) {
	kind, kerr := kindOf(env)
	if kerr != nil {
		return dst, kerr
	}
	w := mapWriter{b: dst, head: len(dst), lim: &c.lim}
	w.b = append(w.b, majMap) // patched below
	w.uint(KeyVersion, ProtocolVersion, true)
	w.uint(KeyKind, uint64(kind), true)
	switch kind {
	case KindCommand:
		m := env.Command
		if m.ID == 0 {
			return dst, newErr("encode", ErrMissingField, KeyID, "command needs a non-zero ID")
		}
		if m.Verb == "" {
			return dst, newErr("encode", ErrMissingField, KeyVerb, "command needs a Verb")
		}
		w.uint(KeyID, m.ID, true)
		w.text(KeyDevice, m.Device)
		w.text(KeyVerb, m.Verb)
		w.body(KeyBody, m.Args)
		w.int(KeyDeadline, m.Deadline)
		w.text(KeyIdemKey, m.IdemKey)
		w.text(KeyReplyTo, m.ReplyTo)
		w.uint(KeyBoot, m.Boot, false)
	case KindReply:
		m := env.Reply
		if m.ID == 0 {
			return dst, newErr("encode", ErrMissingField, KeyID, "reply needs the command's non-zero ID")
		}
		if m.Outcome < OutcomeAccepted || m.Outcome > OutcomeFailed {
			return dst, newErr("encode", ErrBadValue, KeyOutcome,
				"outcome "+strconv.Itoa(int(m.Outcome))+" is not accepted(1), done(2) or failed(3)")
		}
		w.uint(KeyID, m.ID, true)
		w.text(KeyDevice, m.Device)
		w.body(KeyBody, m.Result)
		w.uint(KeyOutcome, uint64(m.Outcome), true)
		w.int(KeyCode, m.Code)
		w.text(KeyText, m.Text)
	case KindTelemetry:
		m := env.Telemetry
		w.uint(KeyID, m.Seq, false)
		w.text(KeyDevice, m.Device)
		w.body(KeyBody, m.Values)
		w.int(KeyTS, m.TS)
	case KindState:
		m := env.State
		w.uint(KeyID, m.Seq, false)
		w.text(KeyDevice, m.Device)
		w.bool(KeyOnline, m.Online, true)
		w.text(KeyFirmware, m.Firmware)
		w.text(KeyProfile, m.Profile)
		w.text(KeyProfileVersion, m.ProfileVersion)
	case KindHello:
		m := env.Hello
		if m.Device == "" {
			return dst, newErr("encode", ErrMissingField, KeyDevice, "hello needs the Device id")
		}
		w.text(KeyDevice, m.Device)
		w.text(KeyFirmware, m.Firmware)
		w.text(KeyProfile, m.Profile)
		w.text(KeyProfileVersion, m.ProfileVersion)
		w.uint(KeyBoot, m.Boot, false)
		w.uint(KeyMaxFrame, uint64(m.MaxFrame), false)
		w.uint(KeyWindow, uint64(m.Window), false)
	case KindHeartbeat:
		m := env.Heartbeat
		w.uint(KeyID, m.Seq, false)
		w.text(KeyDevice, m.Device)
		w.uint(KeyUptime, m.Uptime, false)
	}
	if w.err != nil {
		return dst, w.err
	}
	w.b[w.head] = majMap | w.pairs
	return w.b, nil
}
