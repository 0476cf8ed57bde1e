package wire

import (
	"errors"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// wireMsg is the union of every envelope's keys. Each key has one type in
// all kinds, so one struct decodes any envelope in one pass.
type wireMsg struct {
	V              uint64         `cbor:"0,keyasint"`
	Kind           uint64         `cbor:"1,keyasint"`
	ID             uint64         `cbor:"2,keyasint"`
	Device         string         `cbor:"3,keyasint"`
	Verb           string         `cbor:"4,keyasint"`
	Body           map[string]any `cbor:"5,keyasint"`
	Deadline       int64          `cbor:"6,keyasint"`
	IdemKey        string         `cbor:"7,keyasint"`
	ReplyTo        string         `cbor:"8,keyasint"`
	Outcome        uint64         `cbor:"9,keyasint"`
	Code           int64          `cbor:"10,keyasint"`
	Text           string         `cbor:"11,keyasint"`
	TS             int64          `cbor:"12,keyasint"`
	Online         bool           `cbor:"13,keyasint"`
	Firmware       string         `cbor:"14,keyasint"`
	Profile        string         `cbor:"15,keyasint"`
	ProfileVersion string         `cbor:"16,keyasint"`
	Boot           uint64         `cbor:"17,keyasint"`
	MaxFrame       uint32         `cbor:"18,keyasint"`
	Uptime         uint64         `cbor:"19,keyasint"`
	Window         uint32         `cbor:"20,keyasint"`
}

// wireHeader reads only the version and kind, to report ErrVersion rather
// than a type error for a message of another protocol version.
type wireHeader struct {
	V uint64 `cbor:"0,keyasint"`
}

// absent marks V and Kind not present in the message.
const absent = math.MaxUint64

var msgPool = sync.Pool{New: func() any { return new(wireMsg) }}

// Unmarshal decodes one envelope (the whole of data, nothing may follow).
//
// It refuses, with an *Error whose Code says why: data over MaxMessage
// (checked first); CBOR that is not well-formed or not a map; indefinite
// lengths, tags and duplicate map keys; nesting, arrays, maps or strings over
// the Limits; a version other than ProtocolVersion; an unknown kind; a known
// key with the wrong type; null, undefined, NaN and infinities; values of a
// type other than the six Value types; missing required fields. Unknown keys
// are ignored, as are known keys the kind does not use (after their type is
// checked).
//
// Integers in args, results and telemetry decode as int64 when they fit and
// as uint64 above math.MaxInt64; floats of every width decode as float64;
// text as string, byte strings as []byte. Empty value maps decode as nil.
//
// data is not retained. A panic inside the CBOR library is recovered and
// returned as ErrInternal.
func (c *Codec) Unmarshal(data []byte) (env *Envelope, err error) {
	if len(data) > c.lim.MaxMessage {
		return nil, newErr("decode", ErrTooLarge, -1, "message is "+strconv.Itoa(len(data))+
			" bytes, over MaxMessage "+strconv.Itoa(c.lim.MaxMessage)+"; the sender must send less per message")
	}
	if len(data) == 0 {
		return nil, newErr("decode", ErrMalformed, -1, "empty message")
	}
	if data[0]&0xe0 != majMap {
		return nil, newErr("decode", ErrMalformed, -1,
			"the message is not a CBOR map (first byte 0x"+strconv.FormatUint(uint64(data[0]), 16)+
				"); an envelope is a map with integer keys, see docs/protocol.md")
	}
	defer func() {
		if r := recover(); r != nil {
			env = nil
			err = &Error{Code: ErrInternal, Op: "decode", Key: -1,
				Msg: "the CBOR decoder panicked on this input; it was dropped. Please report the input bytes"}
		}
	}()
	m := msgPool.Get().(*wireMsg)
	*m = wireMsg{V: absent, Kind: absent}
	if derr := c.dm.Unmarshal(data, m); derr != nil {
		*m = wireMsg{}
		msgPool.Put(m)
		return nil, c.decodeError(data, derr)
	}
	env, err = c.build(m)
	*m = wireMsg{}
	msgPool.Put(m)
	return env, err
}

// decodeError turns a CBOR library error into an *Error.
func (c *Codec) decodeError(data []byte, err error) *Error {
	e := &Error{Op: "decode", Key: -1, Err: err}
	var (
		syn  *cbor.SyntaxError
		sem  *cbor.SemanticError
		typ  *cbor.UnmarshalTypeError
		dup  *cbor.DupMapKeyError
		ind  *cbor.IndefiniteLengthError
		tag  *cbor.TagsMdError
		nest *cbor.MaxNestedLevelError
		arr  *cbor.MaxArrayElementsError
		mp   *cbor.MaxMapPairsError
		ext  *cbor.ExtraneousDataError
		una  cbor.UnacceptableDataItemError
		unap *cbor.UnacceptableDataItemError
	)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		e.Code, e.Msg = ErrMalformed, "truncated CBOR: the message ends inside a data item; check the sender's length or framing"
	case errors.As(err, &syn), errors.As(err, &sem):
		e.Code, e.Msg = ErrMalformed, "not well-formed CBOR (or invalid UTF-8 in a text string)"
	case errors.As(err, &ext):
		e.Code, e.Msg = ErrMalformed, "bytes follow the envelope; send exactly one CBOR map per message"
	case errors.As(err, &dup):
		e.Code, e.Msg = ErrForbidden, "duplicate map key "+describeKey(dup.Key)+"; each key may appear once"
		switch k := dup.Key.(type) {
		case uint64:
			if k < uint64(len(keyNames)) {
				e.Key = int(k)
			}
		case int64:
			if k >= 0 && k < int64(len(keyNames)) {
				e.Key = int(k)
			}
		}
	case errors.As(err, &ind):
		e.Code, e.Msg = ErrForbidden, "indefinite-length item; encode every string, array and map with its length"
	case errors.As(err, &tag):
		e.Code, e.Msg = ErrForbidden, "CBOR tag; the protocol uses no tags (send plain integers, floats, strings)"
	case errors.As(err, &nest):
		e.Code, e.Msg = ErrTooLarge, "nesting deeper than MaxNesting "+strconv.Itoa(c.lim.MaxNesting)+
			"; values must be scalars, not arrays or maps"
	case errors.As(err, &arr):
		e.Code, e.Msg = ErrTooLarge, "array over MaxArrayElements "+strconv.Itoa(c.lim.MaxArrayElements)
	case errors.As(err, &mp):
		e.Code, e.Msg = ErrTooLarge, "map over MaxMapPairs "+strconv.Itoa(c.lim.MaxMapPairs)+
			"; send fewer values per message"
	case errors.As(err, &typ), errors.As(err, &una), errors.As(err, &unap):
		if verr := c.checkHeader(data); verr != nil {
			verr.Err = err
			return verr
		}
		e.Code = ErrBadValue
		if typ != nil {
			if i := strings.LastIndexByte(typ.StructFieldName, '.'); i >= 0 {
				if k, aerr := strconv.Atoi(typ.StructFieldName[i+1:]); aerr == nil {
					e.Key = k
				}
			}
			if e.Key < 0 && strings.Contains(typ.Error(), "map key") {
				e.Msg = "a map key is a CBOR " + typ.CBORType + "; envelope keys are integers (text keys are ignored), value names are text"
			} else {
				e.Msg = "wrong type: got CBOR " + typ.CBORType + "; see the key's type in docs/protocol.md"
			}
		} else {
			e.Msg = "a value the protocol does not allow (null, undefined, NaN, infinity or bignum); omit the key instead"
		}
	default:
		e.Code, e.Msg = ErrMalformed, "undecodable CBOR"
	}
	return e
}

func describeKey(k any) string {
	switch x := k.(type) {
	case uint64:
		return strconv.FormatUint(x, 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case string:
		return strconv.Quote(x)
	}
	return "(non-scalar)"
}

// checkHeader decodes only key 0 and reports a version problem, which
// takes precedence over type errors in other keys.
func (c *Codec) checkHeader(data []byte) *Error {
	h := wireHeader{V: absent}
	if err := c.dm.Unmarshal(data, &h); err != nil || h.V == absent || h.V == ProtocolVersion {
		return nil
	}
	return versionErr(h.V)
}

func versionErr(v uint64) *Error {
	return newErr("decode", ErrVersion, KeyVersion, "protocol version "+strconv.FormatUint(v, 10)+
		", this end speaks "+strconv.Itoa(ProtocolVersion)+"; update the firmware or the bridge so both speak the same major version")
}

// build validates m and turns it into an Envelope.
func (c *Codec) build(m *wireMsg) (*Envelope, error) {
	switch {
	case m.V == absent:
		return nil, newErr("decode", ErrMissingField, KeyVersion, "no protocol version; every envelope starts with {0: 1, 1: kind}")
	case m.V != ProtocolVersion:
		return nil, versionErr(m.V)
	case m.Kind == absent:
		return nil, newErr("decode", ErrMissingField, KeyKind, "no envelope kind")
	case m.Kind < uint64(KindCommand) || m.Kind > uint64(KindHeartbeat):
		return nil, newErr("decode", ErrUnknownKind, KeyKind, "kind "+strconv.FormatUint(m.Kind, 10)+
			" is not one this end knows (1–6); the message is ignored")
	}
	// Limits on every known string, whatever the kind.
	for _, f := range [...]struct {
		k int
		s string
	}{
		{KeyDevice, m.Device}, {KeyVerb, m.Verb}, {KeyIdemKey, m.IdemKey}, {KeyReplyTo, m.ReplyTo},
		{KeyText, m.Text}, {KeyFirmware, m.Firmware}, {KeyProfile, m.Profile}, {KeyProfileVersion, m.ProfileVersion},
	} {
		if len(f.s) > c.lim.MaxStringLen {
			return nil, newErr("decode", ErrTooLarge, f.k, "text is "+strconv.Itoa(len(f.s))+
				" bytes, over MaxStringLen "+strconv.Itoa(c.lim.MaxStringLen))
		}
	}
	if err := c.checkBody(m.Body); err != nil {
		return nil, err
	}
	if len(m.Body) == 0 {
		m.Body = nil
	}
	kind := Kind(m.Kind)
	// The envelope and its kind's struct are allocated together.
	switch kind {
	case KindCommand:
		if m.ID == 0 {
			return nil, newErr("decode", ErrMissingField, KeyID, "command without a non-zero id")
		}
		if m.Verb == "" {
			return nil, newErr("decode", ErrMissingField, KeyVerb, "command without a verb")
		}
		p := &struct {
			e Envelope
			v Command
		}{v: Command{ID: m.ID, Device: m.Device, Verb: m.Verb, Args: m.Body,
			Deadline: m.Deadline, IdemKey: m.IdemKey, ReplyTo: m.ReplyTo, Boot: m.Boot}}
		p.e = Envelope{Kind: kind, Command: &p.v}
		return &p.e, nil
	case KindReply:
		if m.ID == 0 {
			return nil, newErr("decode", ErrMissingField, KeyID, "reply without the command's id")
		}
		if m.Outcome == 0 {
			return nil, newErr("decode", ErrMissingField, KeyOutcome, "reply without an outcome")
		}
		if m.Outcome > uint64(OutcomeFailed) {
			return nil, newErr("decode", ErrBadValue, KeyOutcome, "outcome "+strconv.FormatUint(m.Outcome, 10)+
				" is not accepted(1), done(2) or failed(3)")
		}
		p := &struct {
			e Envelope
			v Reply
		}{v: Reply{ID: m.ID, Device: m.Device, Outcome: Outcome(m.Outcome), Code: m.Code,
			Text: m.Text, Result: m.Body}}
		p.e = Envelope{Kind: kind, Reply: &p.v}
		return &p.e, nil
	case KindTelemetry:
		p := &struct {
			e Envelope
			v Telemetry
		}{v: Telemetry{Device: m.Device, Seq: m.ID, TS: m.TS, Values: m.Body}}
		p.e = Envelope{Kind: kind, Telemetry: &p.v}
		return &p.e, nil
	case KindState:
		p := &struct {
			e Envelope
			v State
		}{v: State{Device: m.Device, Online: m.Online, Seq: m.ID, Firmware: m.Firmware,
			Profile: m.Profile, ProfileVersion: m.ProfileVersion}}
		p.e = Envelope{Kind: kind, State: &p.v}
		return &p.e, nil
	case KindHello:
		if m.Device == "" {
			return nil, newErr("decode", ErrMissingField, KeyDevice, "hello without the device id")
		}
		p := &struct {
			e Envelope
			v Hello
		}{v: Hello{Device: m.Device, Firmware: m.Firmware, Profile: m.Profile,
			ProfileVersion: m.ProfileVersion, Boot: m.Boot, MaxFrame: m.MaxFrame, Window: m.Window}}
		p.e = Envelope{Kind: kind, Hello: &p.v}
		return &p.e, nil
	default: // KindHeartbeat
		p := &struct {
			e Envelope
			v Heartbeat
		}{v: Heartbeat{Device: m.Device, Seq: m.ID, Uptime: m.Uptime}}
		p.e = Envelope{Kind: kind, Heartbeat: &p.v}
		return &p.e, nil
	}
}

// checkBody validates the values of key 5 and normalises integers: uint64
// values that fit become int64. When several values are bad, the error
// reported is the same whatever the map's iteration order.
func (c *Codec) checkBody(body map[string]any) *Error {
	var worst *Error
	worstName := ""
	report := func(code ErrorCode, name, msg string) {
		if worst == nil || code < worst.Code || (code == worst.Code && cmpKey(name, worstName) < 0) {
			worst, worstName = newErr("decode", code, KeyBody, msg), name
		}
	}
	for name, v := range body {
		if name == "" {
			report(ErrBadValue, name, "empty value name")
			continue
		}
		if len(name) > c.lim.MaxStringLen {
			report(ErrTooLarge, name, "value name over MaxStringLen "+strconv.Itoa(c.lim.MaxStringLen))
			continue
		}
		switch x := v.(type) {
		case int64, bool:
		case big.Int: // integers outside int64 (IntDecConvertSignedOrBigInt)
			if x.Sign() > 0 && x.IsUint64() {
				body[name] = x.Uint64()
			} else {
				report(ErrBadValue, name, "value "+strconv.Quote(name)+" is an integer below -2^63")
			}
		case uint64: // not produced by the decoding mode; kept for safety
			if x <= math.MaxInt64 {
				body[name] = int64(x)
			}
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				report(ErrBadValue, name, "value "+strconv.Quote(name)+" is NaN or infinite")
			}
		case string:
			if len(x) > c.lim.MaxStringLen {
				report(ErrTooLarge, name, "value "+strconv.Quote(name)+" is over MaxStringLen "+strconv.Itoa(c.lim.MaxStringLen))
			}
		case []byte:
			if len(x) > c.lim.MaxStringLen {
				report(ErrTooLarge, name, "value "+strconv.Quote(name)+" is over MaxStringLen "+strconv.Itoa(c.lim.MaxStringLen))
			}
		default:
			report(ErrBadValue, name, "value "+strconv.Quote(name)+" is a "+cborKindOf(v)+
				"; values must be integers, floats, text, byte strings or booleans")
		}
	}
	return worst
}

func cborKindOf(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case map[any]any:
		return "map"
	case nil:
		return "null"
	case cbor.SimpleValue:
		return "simple value"
	}
	return "integer out of range or other item"
}
