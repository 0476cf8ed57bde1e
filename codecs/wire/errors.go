package wire

import "strconv"

// ErrorCode classifies what was wrong with a message or a frame. An ErrorCode
// is itself an error, so callers match a decoding error with
//
//	errors.Is(err, wire.ErrTooLarge)
//
// The codes are part of this package's API, not of the wire protocol (a device
// never sees them; it sees the reply codes of ReplyCode).
type ErrorCode uint8

// Error codes returned (inside an *Error) by Marshal, Unmarshal, AppendFrame
// and DecodeCOBS.
const (
	// ErrTooLarge: the message, a string, a map, an array or the nesting depth
	// is over a Limits value, or a frame payload is over its maximum.
	ErrTooLarge ErrorCode = iota + 1
	// ErrMalformed: not well-formed CBOR (truncated, trailing bytes, invalid
	// UTF-8 text, not a map at the top level) or invalid COBS.
	ErrMalformed
	// ErrForbidden: well-formed CBOR that uses a feature this protocol
	// forbids: indefinite lengths, tags, duplicate map keys.
	ErrForbidden
	// ErrVersion: the envelope's protocol version (key 0) is not
	// ProtocolVersion.
	ErrVersion
	// ErrUnknownKind: the envelope's kind (key 1) is not one this package
	// knows.
	ErrUnknownKind
	// ErrMissingField: a field the kind requires is absent or zero.
	ErrMissingField
	// ErrBadValue: a known key holds a value of the wrong type or out of
	// range, a value is of a type the protocol does not allow (null, array,
	// map, NaN, infinity, a Go type other than the six Value types), or the
	// Envelope is inconsistent (Kind does not match the non-nil field).
	ErrBadValue
	// ErrInternal: the CBOR library panicked while decoding. The input was
	// dropped; it is a bug worth reporting with the input bytes.
	ErrInternal
)

// Error implements error, so an ErrorCode can be the target of errors.Is.
func (c ErrorCode) Error() string { return "wire: " + c.String() }

// String names the code.
func (c ErrorCode) String() string {
	switch c {
	case ErrTooLarge:
		return "too large"
	case ErrMalformed:
		return "malformed"
	case ErrForbidden:
		return "forbidden encoding"
	case ErrVersion:
		return "unsupported protocol version"
	case ErrUnknownKind:
		return "unknown envelope kind"
	case ErrMissingField:
		return "missing field"
	case ErrBadValue:
		return "bad value"
	case ErrInternal:
		return "internal error"
	}
	return "error code " + strconv.Itoa(int(c))
}

// Error is the error type of this package. Match its Code with errors.Is
// (errors.Is(err, wire.ErrVersion)) or read it with errors.As.
type Error struct {
	Code ErrorCode
	// Op is what failed: "decode", "encode", "frame", "cobs".
	Op string
	// Key is the envelope map key concerned (see docs/protocol.md), or -1.
	Key int
	// Msg says what was wrong and what to do about it.
	Msg string
	// Err is the underlying error (from the CBOR library), if any.
	Err error
}

func (e *Error) Error() string {
	s := "wire: " + e.Op + ": " + e.Code.String()
	if e.Key >= 0 {
		s += " (key " + strconv.Itoa(e.Key)
		if n := keyName(e.Key); n != "" {
			s += " " + n
		}
		s += ")"
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += " [" + e.Err.Error() + "]"
	}
	return s
}

// Is reports whether target is e's ErrorCode.
func (e *Error) Is(target error) bool {
	c, ok := target.(ErrorCode)
	return ok && c == e.Code
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func newErr(op string, code ErrorCode, key int, msg string) *Error {
	return &Error{Code: code, Op: op, Key: key, Msg: msg}
}
