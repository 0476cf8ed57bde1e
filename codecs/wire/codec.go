package wire

import (
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

// Limits bound what a Codec accepts (Unmarshal) and produces (Marshal). Both
// ends of a link should use the same limits; DefaultLimits is what the
// protocol promises every receiver accepts.
type Limits struct {
	// MaxMessage is the largest encoded envelope in bytes, checked before
	// decoding starts. Default 64 KiB.
	MaxMessage int
	// MaxNesting is the deepest nesting of maps and arrays. The envelope uses
	// 2 levels (envelope map, args map); the CBOR library's minimum is 4.
	// Default 4.
	MaxNesting int
	// MaxArrayElements bounds any CBOR array (the envelope uses none; arrays
	// are rejected as values, this only bounds the work before that).
	// Default 256, minimum 16.
	MaxArrayElements int
	// MaxMapPairs bounds any CBOR map, including args, result and telemetry
	// values. Default 256, minimum 16.
	MaxMapPairs int
	// MaxStringLen bounds every text string, byte string and map key, in
	// bytes. Default 4096.
	MaxStringLen int
}

// DefaultLimits are the limits of the package-level Marshal and Unmarshal.
var DefaultLimits = Limits{
	MaxMessage:       64 << 10,
	MaxNesting:       4,
	MaxArrayElements: 256,
	MaxMapPairs:      256,
	MaxStringLen:     4096,
}

// Codec encodes and decodes envelopes under one set of Limits. It holds one
// preconfigured CBOR decoding mode and is safe for concurrent use.
type Codec struct {
	lim Limits
	dm  cbor.DecMode
}

var defaultCodec = mustCodec(DefaultLimits)

func mustCodec(l Limits) *Codec {
	c, err := NewCodec(l)
	if err != nil {
		panic(err)
	}
	return c
}

// NewCodec returns a Codec enforcing l. Zero fields of l take their
// DefaultLimits value. It fails if a limit is out of the range the CBOR
// library supports (MaxNesting 4–65535, MaxArrayElements and MaxMapPairs
// ≥ 16) or negative.
func NewCodec(l Limits) (*Codec, error) {
	d := DefaultLimits
	if l.MaxMessage == 0 {
		l.MaxMessage = d.MaxMessage
	}
	if l.MaxNesting == 0 {
		l.MaxNesting = d.MaxNesting
	}
	if l.MaxArrayElements == 0 {
		l.MaxArrayElements = d.MaxArrayElements
	}
	if l.MaxMapPairs == 0 {
		l.MaxMapPairs = d.MaxMapPairs
	}
	if l.MaxStringLen == 0 {
		l.MaxStringLen = d.MaxStringLen
	}
	if l.MaxMessage < 0 || l.MaxStringLen < 0 {
		return nil, newErr("codec", ErrBadValue, -1, "negative limit in Limits; use 0 for the default")
	}
	// null and undefined have no place in the protocol: reject them anywhere.
	sv, err := cbor.NewSimpleValueRegistryFromDefaults(
		cbor.WithRejectedSimpleValue(22), cbor.WithRejectedSimpleValue(23))
	if err != nil {
		return nil, err
	}
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  l.MaxNesting,
		MaxArrayElements: l.MaxArrayElements,
		MaxMapPairs:      l.MaxMapPairs,
		IntDec:           cbor.IntDecConvertSignedOrBigInt, // > MaxInt64 become uint64 in validation
		UTF8:             cbor.UTF8RejectInvalid,
		SimpleValues:     sv,
		NaN:              cbor.NaNDecodeForbidden,
		Inf:              cbor.InfDecodeForbidden,
		BignumTag:        cbor.BignumTagForbidden,
	}.DecMode()
	if err != nil {
		return nil, &Error{Code: ErrBadValue, Op: "codec", Key: -1,
			Msg: "Limits out of the CBOR library's range: " + err.Error(), Err: err}
	}
	return &Codec{lim: l, dm: dm}, nil
}

// Limits returns the codec's limits (with defaults filled in).
func (c *Codec) Limits() Limits { return c.lim }

// Marshal encodes env with DefaultLimits. See Codec.AppendMarshal.
func Marshal(env *Envelope) ([]byte, error) { return defaultCodec.Marshal(env) }

// AppendMarshal appends the encoding of env to dst with DefaultLimits. See
// Codec.AppendMarshal.
func AppendMarshal(dst []byte, env *Envelope) ([]byte, error) {
	return defaultCodec.AppendMarshal(dst, env)
}

// Unmarshal decodes one envelope with DefaultLimits. See Codec.Unmarshal.
func Unmarshal(data []byte) (*Envelope, error) { return defaultCodec.Unmarshal(data) }

// MarshalCommand encodes a command envelope.
func MarshalCommand(c *Command) ([]byte, error) {
	return defaultCodec.Marshal(&Envelope{Kind: KindCommand, Command: c})
}

// MarshalReply encodes a reply envelope.
func MarshalReply(r *Reply) ([]byte, error) {
	return defaultCodec.Marshal(&Envelope{Kind: KindReply, Reply: r})
}

// MarshalTelemetry encodes a telemetry envelope.
func MarshalTelemetry(t *Telemetry) ([]byte, error) {
	return defaultCodec.Marshal(&Envelope{Kind: KindTelemetry, Telemetry: t})
}

// MarshalState encodes a state envelope.
func MarshalState(s *State) ([]byte, error) {
	return defaultCodec.Marshal(&Envelope{Kind: KindState, State: s})
}

// MarshalHello encodes a hello envelope.
func MarshalHello(h *Hello) ([]byte, error) {
	return defaultCodec.Marshal(&Envelope{Kind: KindHello, Hello: h})
}

// MarshalHeartbeat encodes a heartbeat envelope.
func MarshalHeartbeat(h *Heartbeat) ([]byte, error) {
	return defaultCodec.Marshal(&Envelope{Kind: KindHeartbeat, Heartbeat: h})
}

// Marshal encodes env into a new slice. See AppendMarshal.
func (c *Codec) Marshal(env *Envelope) ([]byte, error) {
	if env == nil {
		return nil, newErr("encode", ErrBadValue, -1, "nil *Envelope")
	}
	return c.AppendMarshal(make([]byte, 0, sizeHint(env)), env)
}

// AppendMarshal appends the encoding of env to dst and returns the extended
// slice. The encoding is RFC 8949 core deterministic (§4.2.1): definite
// lengths, shortest integer and float forms, map keys sorted by their encoded
// bytes; the same envelope always gives the same bytes. Zero-valued fields
// are omitted, except keys 0 (version) and 1 (kind), and State.Online.
//
// If env.Kind is 0 it is taken from the one non-nil field. AppendMarshal
// validates env as Unmarshal would (required fields, value types, finite
// floats, Limits) so that it never produces bytes a receiver with the same
// Limits refuses; on error dst is returned unchanged with an *Error.
func (c *Codec) AppendMarshal(dst []byte, env *Envelope) ([]byte, error) {
	if env == nil {
		return dst, newErr("encode", ErrBadValue, -1, "nil *Envelope")
	}
	start := len(dst)
	out, err := c.encode(dst, env)
	if err != nil {
		return dst[:start], err
	}
	if n := len(out) - start; n > c.lim.MaxMessage {
		return dst[:start], newErr("encode", ErrTooLarge, -1,
			"encoded envelope is "+strconv.Itoa(n)+" bytes, over MaxMessage "+
				strconv.Itoa(c.lim.MaxMessage)+"; send fewer or shorter values")
	}
	return out, nil
}
