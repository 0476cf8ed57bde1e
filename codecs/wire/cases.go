package wire

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// CaseKind says what a Case's Bytes are.
type CaseKind uint8

// Case kinds.
const (
	// CaseEnvelope: Bytes are one CBOR envelope, input to Unmarshal.
	CaseEnvelope CaseKind = iota + 1
	// CaseFrameStream: Bytes are a serial byte stream, input to a
	// FrameDecoder with default options.
	CaseFrameStream
)

func (k CaseKind) String() string {
	switch k {
	case CaseEnvelope:
		return "envelope"
	case CaseFrameStream:
		return "frame-stream"
	}
	return "case-kind-" + strconv.Itoa(int(k))
}

// Case is one byte-level test vector of the protocol. The package tests run
// every case, the fuzz targets use their bytes as seeds, and the firmware
// simulator replays them against device code.
type Case struct {
	Name        string
	Description string
	Kind        CaseKind
	Bytes       []byte

	// Envelope cases.

	// Want is the decoded envelope, nil when an error is expected.
	Want *Envelope
	// WantErr is the ErrorCode expected (match with errors.Is), nil if the
	// bytes must decode.
	WantErr error
	// NonCanonical marks valid Bytes that a receiver accepts but that are
	// not what Marshal(Want) produces (unknown keys, key order, longer
	// integer or float forms). For the other valid cases Marshal(Want) must
	// give Bytes exactly.
	NonCanonical bool

	// Frame stream cases.

	// WantFrames is how many frames the FrameDecoder emits.
	WantFrames int
	// WantDrops are the drops it reports, in order (nil: none).
	WantDrops []DropReason
}

// hx decodes hex with spaces allowed between bytes.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic("wire: bad hex in cases.go: " + err.Error())
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func rep(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

// rawFrame builds a frame without AppendFrame's checks: header byte 0 as
// given, CRC correct, COBS, delimiter.
func rawFrame(h0 byte, seq uint16, payload []byte) []byte {
	raw := cat([]byte{h0, byte(seq >> 8), byte(seq)}, payload)
	crc := CRC16(raw)
	raw = append(raw, byte(crc>>8), byte(crc))
	return append(AppendCOBS(nil, raw), 0)
}

// Envelopes used in several cases.
var (
	caseCmdMin = &Envelope{Kind: KindCommand, Command: &Command{ID: 1, Verb: "ping"}}
	// caseCmdMinBytes: {0: 1, 1: 1, 2: 1, 4: "ping"}
	caseCmdMinBytes = hx("a4 00 01 01 01 02 01 04 64 70696e67")
	// caseCmdMinFrame is caseCmdMinBytes in a DATA frame with Seq 1 (the
	// worked example of docs/protocol.md).
	caseCmdMinFrame = hx("02 10 03 01 a4 0e 01 01 01 02 01 04 64 70 69 6e 67 21 7c 00")
	// caseMoveFrame is the command-move envelope in a DATA frame with Seq 1
	// (the worked example of docs/protocol.md).
	caseMoveFrame = hx("02 10 03 01 a6 20 01 01 01 02 18 2a 03 67 72 6f 76 65 72 2d 31 04 64 6d 6f 76 65" +
		" 05 a2 65 73 70 65 65 64 f9 38 0c 67 64 69 73 74 5f 63 6d 0a 2d 64 00")
	caseAckFrame   = hx("02 11 04 01 a8 ee 00")          // ACK seq 1
	caseNackFrame  = hx("02 12 05 02 01 04 4c 00")       // NACK seq 2, reason 1 (corrupt)
	caseResetFrame = hx("02 13 01 03 d6 af 00")          // RESET seq 0
	caseTornFrame  = hx("02 10 03 01 a4 0e 01 01 01 02") // first 10 bytes of caseCmdMinFrame
)

func cmdWith(body string) []byte {
	// {0: 1, 1: 1, 2: 1, 4: "ping", 5: body}
	return cat(hx("a5 00 01 01 01 02 01 04 64 70696e67 05"), hx(body))
}

// Cases is the shared table of byte-level cases.
var Cases = []Case{
	// ---- valid envelopes, canonical bytes ----
	{
		Name:        "command-minimal",
		Description: "{0: 1, 1: 1, 2: 1, 4: \"ping\"}: the smallest valid command",
		Kind:        CaseEnvelope, Bytes: caseCmdMinBytes, Want: caseCmdMin,
	},
	{
		Name: "command-move",
		Description: "{0: 1, 1: 1, 2: 42, 3: \"rover-1\", 4: \"move\", 5: {\"speed\": 0.5, \"dist_cm\": 10}}: " +
			"value names sorted shorter-first, 0.5 as float16",
		Kind: CaseEnvelope,
		Bytes: hx("a6 00 01 01 01 02 18 2a 03 67 726f7665722d31 04 64 6d6f7665 05 a2" +
			" 65 7370656564 f9 3800 67 646973745f636d 0a"),
		Want: &Envelope{Kind: KindCommand, Command: &Command{ID: 42, Device: "rover-1", Verb: "move",
			Args: map[string]Value{"dist_cm": int64(10), "speed": 0.5}}},
	},
	{
		Name: "command-full",
		Description: "every command key: deadline 1767225600000 (2026-01-01T00:00:00Z), " +
			"idempotency key, reply-to",
		Kind: CaseEnvelope,
		Bytes: hx("a9 00 01 01 01 02 18 2a 03 67 726f7665722d31 04 64 6d6f7665 05 a2" +
			" 65 7370656564 f9 3800 67 646973745f636d 0a 06 1b 0000019b76daa800" +
			" 07 6a 616c6963652f31323334 08 68 6272696467652d61"),
		Want: &Envelope{Kind: KindCommand, Command: &Command{ID: 42, Device: "rover-1", Verb: "move",
			Args:     map[string]Value{"dist_cm": int64(10), "speed": 0.5},
			Deadline: 1767225600000, IdemKey: "alice/1234", ReplyTo: "bridge-a"}},
	},
	{
		Name: "command-value-types",
		Description: "every value type: bool, float64 (0.1), float16 (65504), float32 (100000.5), negative int, " +
			"text, uint64 above MaxInt64, byte string",
		Kind: CaseEnvelope,
		Bytes: hx("a5 00 01 01 01 02 07 04 63 736574 05 a8 61 62 f5 61 66 fb 3fb999999999999a" +
			" 61 68 f9 7bff 61 69 39 012b 61 73 62 6869 61 75 1b ffffffffffffffff" +
			" 63 663332 fa 47c35040 63 726177 43 010200"),
		Want: &Envelope{Kind: KindCommand, Command: &Command{ID: 7, Verb: "set", Args: map[string]Value{
			"b": true, "f": 0.1, "h": 65504.0, "i": int64(-300), "s": "hi", "u": uint64(1<<64 - 1),
			"f32": 100000.5, "raw": []byte{1, 2, 0}}}},
	},
	{
		Name: "command-resend",
		Description: "a command sent again after a reconnection: idempotency key and key 17, the boot counter " +
			"(7) the bridge knew when it first sent it; a device in another boot answers failed, code 9",
		Kind: CaseEnvelope,
		Bytes: hx("a7 00 01 01 01 02 18 2a 03 67 726f7665722d31 04 64 6d6f7665" +
			" 07 6a 616c6963652f31323334 11 07"),
		Want: &Envelope{Kind: KindCommand, Command: &Command{ID: 42, Device: "rover-1", Verb: "move",
			IdemKey: "alice/1234", Boot: 7}},
	},
	{
		Name:        "reply-accepted",
		Description: "{0: 1, 1: 2, 2: 42, 9: 1}",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 02 02 18 2a 09 01"),
		Want: &Envelope{Kind: KindReply, Reply: &Reply{ID: 42, Outcome: OutcomeAccepted}},
	},
	{
		Name:        "reply-done",
		Description: "done with a result value",
		Kind:        CaseEnvelope,
		Bytes:       hx("a6 00 01 01 02 02 18 2a 03 67 726f7665722d31 05 a1 6b 6f646f6d657465725f636d 19 04d2 09 02"),
		Want: &Envelope{Kind: KindReply, Reply: &Reply{ID: 42, Device: "rover-1", Outcome: OutcomeDone,
			Result: map[string]Value{"odometer_cm": int64(1234)}}},
	},
	{
		Name:        "reply-failed",
		Description: "failed with code 8 (expired) and a text",
		Kind:        CaseEnvelope,
		Bytes:       hx("a7 00 01 01 02 02 18 2a 03 67 726f7665722d31 09 03 0a 08 0b 6f 646561646c696e6520706173736564"),
		Want: &Envelope{Kind: KindReply, Reply: &Reply{ID: 42, Device: "rover-1", Outcome: OutcomeFailed,
			Code: int64(ReplyExpired), Text: "deadline passed"}},
	},
	{
		Name:        "telemetry",
		Description: "seq 17, ts, three values",
		Kind:        CaseEnvelope,
		Bytes: hx("a6 00 01 01 03 02 11 03 67 726f7665722d31 05 a3 62 6f6b f5 63 68756d 18 28" +
			" 66 74656d705f63 f9 4d60 0c 1b 0000019b76daa87b"),
		Want: &Envelope{Kind: KindTelemetry, Telemetry: &Telemetry{Device: "rover-1", Seq: 17, TS: 1767225600123,
			Values: map[string]Value{"temp_c": 21.5, "hum": int64(40), "ok": true}}},
	},
	{
		Name:        "state-online",
		Description: "retained presence with identity; seq = boot<<32 | counter",
		Kind:        CaseEnvelope,
		Bytes:       hx("a8 00 01 01 04 02 1b 0000000100000001 03 67 726f7665722d31 0d f5 0e 65 312e322e30 0f 65 726f766572 10 61 33"),
		Want: &Envelope{Kind: KindState, State: &State{Device: "rover-1", Online: true, Seq: 1<<32 | 1,
			Firmware: "1.2.0", Profile: "rover", ProfileVersion: "3"}},
	},
	{
		Name:        "state-offline-last-will",
		Description: "the MQTT last will: online false is always encoded",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 04 03 67 726f7665722d31 0d f4"),
		Want: &Envelope{Kind: KindState, State: &State{Device: "rover-1"}},
	},
	{
		Name:        "hello",
		Description: "link opening: boot counter 12, max frame 1024",
		Kind:        CaseEnvelope,
		Bytes:       hx("a8 00 01 01 05 03 67 726f7665722d31 0e 65 312e322e30 0f 65 726f766572 10 61 33 11 0c 12 19 0400"),
		Want: &Envelope{Kind: KindHello, Hello: &Hello{Device: "rover-1", Firmware: "1.2.0", Profile: "rover",
			ProfileVersion: "3", Boot: 12, MaxFrame: 1024}},
	},
	{
		Name:        "heartbeat",
		Description: "seq 99, uptime 61 s",
		Kind:        CaseEnvelope, Bytes: hx("a5 00 01 01 06 02 18 63 03 67 726f7665722d31 13 19 ee48"),
		Want: &Envelope{Kind: KindHeartbeat, Heartbeat: &Heartbeat{Device: "rover-1", Seq: 99, Uptime: 61000}},
	},

	// ---- valid envelopes a receiver must accept, not canonical ----
	{
		Name: "unknown-keys-ignored",
		Description: "command-minimal plus key 13 (known, unused by commands), 21 (future), 99 with an array, " +
			"-1 (vendor) with a map, and a text key: all ignored",
		Kind: CaseEnvelope,
		Bytes: hx("a9 00 01 01 01 02 01 04 64 70696e67 0d f5 15 66 667574757265 18 63 82 01 02" +
			" 20 a1 61 78 01 64 6e6f7465 62 6869"),
		Want: caseCmdMin, NonCanonical: true,
	},
	{
		Name:        "non-canonical-order-and-widths",
		Description: "keys in reverse order, id as a 2-byte integer, a float64 that fits float16: accepted as is",
		Kind:        CaseEnvelope,
		Bytes:       hx("a5 05 a1 61 78 fb 4035800000000000 04 64 70696e67 02 18 01 01 01 00 01"),
		Want: &Envelope{Kind: KindCommand, Command: &Command{ID: 1, Verb: "ping",
			Args: map[string]Value{"x": 21.5}}},
		NonCanonical: true,
	},
	{
		Name:        "empty-body-map",
		Description: "an empty args map decodes as nil (Marshal omits it)",
		Kind:        CaseEnvelope, Bytes: cmdWith("a0"),
		Want: caseCmdMin, NonCanonical: true,
	},

	// ---- version and kind ----
	{
		Name:        "wrong-version",
		Description: "version 2: refused with ErrVersion",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 02 01 01 02 01 04 64 70696e67"), WantErr: ErrVersion,
	},
	{
		Name:        "wrong-version-other-layout",
		Description: "version 2 whose key 3 is an integer: ErrVersion, not a type error",
		Kind:        CaseEnvelope, Bytes: hx("a3 00 02 01 01 03 00"), WantErr: ErrVersion,
	},
	{
		Name:        "version-zero",
		Description: "version 0 is not 1",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 00 01 01 02 01 04 64 70696e67"), WantErr: ErrVersion,
	},
	{
		Name:        "missing-version",
		Description: "no key 0",
		Kind:        CaseEnvelope, Bytes: hx("a3 01 01 02 01 04 64 70696e67"), WantErr: ErrMissingField,
	},
	{
		Name:        "missing-kind",
		Description: "no key 1",
		Kind:        CaseEnvelope, Bytes: hx("a3 00 01 02 01 04 64 70696e67"), WantErr: ErrMissingField,
	},
	{
		Name:        "unknown-kind",
		Description: "kind 7: ignored by receivers (ErrUnknownKind)",
		Kind:        CaseEnvelope, Bytes: hx("a2 00 01 01 07"), WantErr: ErrUnknownKind,
	},
	{
		Name:        "kind-zero",
		Description: "kind 0 is not a kind",
		Kind:        CaseEnvelope, Bytes: hx("a2 00 01 01 00"), WantErr: ErrUnknownKind,
	},

	// ---- forbidden encodings ----
	{
		Name:        "duplicate-key",
		Description: "key 2 twice",
		Kind:        CaseEnvelope, Bytes: hx("a5 00 01 01 01 02 01 02 02 04 64 70696e67"), WantErr: ErrForbidden,
	},
	{
		Name:        "duplicate-unknown-key",
		Description: "unknown key 99 twice: duplicates are refused even among ignored keys",
		Kind:        CaseEnvelope, Bytes: hx("a6 00 01 01 01 02 01 04 64 70696e67 18 63 01 18 63 02"), WantErr: ErrForbidden,
	},
	{
		Name:        "duplicate-value-name",
		Description: "args {\"a\": 1, \"a\": 2}",
		Kind:        CaseEnvelope, Bytes: cmdWith("a2 61 61 01 61 61 02"), WantErr: ErrForbidden,
	},
	{
		Name:        "indefinite-length-map",
		Description: "the envelope as an indefinite-length map",
		Kind:        CaseEnvelope, Bytes: hx("bf 00 01 01 01 02 01 04 64 70696e67 ff"), WantErr: ErrForbidden,
	},
	{
		Name:        "indefinite-length-text",
		Description: "the verb as an indefinite-length text string of two chunks",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 01 02 01 04 7f 62 7069 62 6e67 ff"), WantErr: ErrForbidden,
	},
	{
		Name:        "tag",
		Description: "deadline wrapped in tag 1 (epoch time)",
		Kind:        CaseEnvelope, Bytes: hx("a5 00 01 01 01 02 01 04 64 70696e67 06 c1 1a 6955b900"), WantErr: ErrForbidden,
	},
	{
		Name:        "tag-in-value",
		Description: "a bignum (tag 2) as a value",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 c2 41 01"), WantErr: ErrForbidden,
	},

	// ---- limits ----
	{
		Name:        "nesting-too-deep",
		Description: "args {\"a\": [[[[1]]]]}: deeper than MaxNesting 4",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 81 81 81 81 01"), WantErr: ErrTooLarge,
	},
	{
		Name:        "oversize-message",
		Description: "a command with a 65536-byte byte string: over MaxMessage (64 KiB), refused before decoding",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 64 626c6f62 5a 00010000" + strings.Repeat("00", 65536)),
		WantErr: ErrTooLarge,
	},
	{
		Name:        "string-too-long",
		Description: "a 4097-byte verb: over MaxStringLen",
		Kind:        CaseEnvelope, Bytes: cat(hx("a4 00 01 01 01 02 01 04 79 1001"), rep('a', 4097)), WantErr: ErrTooLarge,
	},
	{
		Name:        "value-too-long",
		Description: "a 4097-byte text value: over MaxStringLen",
		Kind:        CaseEnvelope, Bytes: cat(cmdWith("a1 61 61 79 1001"), rep('a', 4097)), WantErr: ErrTooLarge,
	},
	{
		Name:        "too-many-values",
		Description: "257 args: over MaxMapPairs",
		Kind:        CaseEnvelope, Bytes: manyValues(257), WantErr: ErrTooLarge,
	},
	{
		Name:        "max-values",
		Description: "256 args: exactly MaxMapPairs",
		Kind:        CaseEnvelope, Bytes: manyValues(256), Want: manyValuesWant(256),
	},

	// ---- wrong types and values ----
	{
		Name:        "verb-not-text",
		Description: "verb is the integer 5",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 01 02 01 04 05"), WantErr: ErrBadValue,
	},
	{
		Name:        "id-not-integer",
		Description: "id is the text \"1\"",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 01 02 61 31 04 64 70696e67"), WantErr: ErrBadValue,
	},
	{
		Name:        "id-negative",
		Description: "id is -1",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 01 02 20 04 64 70696e67"), WantErr: ErrBadValue,
	},
	{
		Name:        "device-byte-string",
		Description: "device id as a byte string instead of text",
		Kind:        CaseEnvelope, Bytes: hx("a3 00 01 01 05 03 41 64"), WantErr: ErrBadValue,
	},
	{
		Name:        "online-not-bool",
		Description: "state online is the integer 1",
		Kind:        CaseEnvelope, Bytes: hx("a3 00 01 01 04 0d 01"), WantErr: ErrBadValue,
	},
	{
		Name:        "deadline-float",
		Description: "deadline is a float",
		Kind:        CaseEnvelope, Bytes: hx("a5 00 01 01 01 02 01 04 64 70696e67 06 f9 3c00"), WantErr: ErrBadValue,
	},
	{
		Name:        "max-frame-overflow",
		Description: "hello max frame 2^32 does not fit 32 bits",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 05 03 61 64 12 1b 0000000100000000"), WantErr: ErrBadValue,
	},
	{
		Name:        "outcome-out-of-range",
		Description: "reply outcome 4",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 02 02 18 2a 09 04"), WantErr: ErrBadValue,
	},
	{
		Name:        "key-byte-string",
		Description: "an envelope key that is a byte string",
		Kind:        CaseEnvelope, Bytes: hx("a5 00 01 01 01 02 01 04 64 70696e67 41 00 01"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-array",
		Description: "args {\"a\": [1, 2]}",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 82 01 02"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-map",
		Description: "args {\"a\": {\"b\": 1}}",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 a1 61 62 01"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-null",
		Description: "args {\"a\": null}",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 f6"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-undefined",
		Description: "args {\"a\": undefined}",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 f7"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-nan",
		Description: "args {\"a\": NaN}: omit a value with no reading instead",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 f9 7e00"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-infinity",
		Description: "args {\"a\": Infinity}",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 f9 7c00"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-below-int64",
		Description: "args {\"a\": -2^64}: below int64",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 3b ffffffffffffffff"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-simple",
		Description: "args {\"a\": simple(16)}",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 61 61 f0"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-name-integer",
		Description: "args {1: 1}: value names are text",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 01 01"), WantErr: ErrBadValue,
	},
	{
		Name:        "value-name-empty",
		Description: "args {\"\": 1}",
		Kind:        CaseEnvelope, Bytes: cmdWith("a1 60 01"), WantErr: ErrBadValue,
	},

	// ---- missing required fields ----
	{
		Name:        "command-no-id",
		Description: "command without key 2",
		Kind:        CaseEnvelope, Bytes: hx("a3 00 01 01 01 04 64 70696e67"), WantErr: ErrMissingField,
	},
	{
		Name:        "command-id-zero",
		Description: "command id 0 (ids start at 1)",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 01 02 00 04 64 70696e67"), WantErr: ErrMissingField,
	},
	{
		Name:        "command-no-verb",
		Description: "command without key 4",
		Kind:        CaseEnvelope, Bytes: hx("a3 00 01 01 01 02 01"), WantErr: ErrMissingField,
	},
	{
		Name:        "command-empty-verb",
		Description: "command with verb \"\"",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 01 02 01 04 60"), WantErr: ErrMissingField,
	},
	{
		Name:        "reply-no-id",
		Description: "reply without key 2",
		Kind:        CaseEnvelope, Bytes: hx("a3 00 01 01 02 09 02"), WantErr: ErrMissingField,
	},
	{
		Name:        "reply-no-outcome",
		Description: "reply without key 9",
		Kind:        CaseEnvelope, Bytes: hx("a3 00 01 01 02 02 18 2a"), WantErr: ErrMissingField,
	},
	{
		Name:        "hello-no-device",
		Description: "hello without key 3",
		Kind:        CaseEnvelope, Bytes: hx("a2 00 01 01 05"), WantErr: ErrMissingField,
	},

	// ---- malformed ----
	{
		Name:        "truncated",
		Description: "command-full cut after 30 bytes",
		Kind:        CaseEnvelope,
		Bytes:       hx("a9 00 01 01 01 02 18 2a 03 67 726f7665722d31 04 64 6d6f7665 05 a2 65 7370656564 f9"),
		WantErr:     ErrMalformed,
	},
	{
		Name:        "truncated-header",
		Description: "a map head announcing 4 pairs and one key",
		Kind:        CaseEnvelope, Bytes: hx("a4 00"), WantErr: ErrMalformed,
	},
	{
		Name:        "trailing-bytes",
		Description: "command-minimal followed by 0x00",
		Kind:        CaseEnvelope, Bytes: cat(caseCmdMinBytes, hx("00")), WantErr: ErrMalformed,
	},
	{
		Name:        "not-a-map",
		Description: "an array at the top level",
		Kind:        CaseEnvelope, Bytes: hx("84 00 01 01 01"), WantErr: ErrMalformed,
	},
	{
		Name:        "empty",
		Description: "zero bytes",
		Kind:        CaseEnvelope, Bytes: []byte{}, WantErr: ErrMalformed,
	},
	{
		Name:        "stray-break",
		Description: "a break byte where the verb should be",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 01 02 01 04 ff"), WantErr: ErrMalformed,
	},
	{
		Name:        "invalid-utf8",
		Description: "verb bytes c3 28 are not UTF-8",
		Kind:        CaseEnvelope, Bytes: hx("a4 00 01 01 01 02 01 04 62 c328"), WantErr: ErrMalformed,
	},

	// ---- frame streams ----
	{
		Name:        "frame-data",
		Description: "one DATA frame, seq 1, carrying command-minimal",
		Kind:        CaseFrameStream, Bytes: caseCmdMinFrame, WantFrames: 1,
	},
	{
		Name:        "frame-command-move",
		Description: "one DATA frame, seq 1, carrying command-move (the worked example of docs/protocol.md)",
		Kind:        CaseFrameStream, Bytes: caseMoveFrame, WantFrames: 1,
	},
	{
		Name:        "frame-control",
		Description: "ACK seq 1, NACK seq 2 reason 1, RESET seq 0",
		Kind:        CaseFrameStream, Bytes: cat(caseAckFrame, caseNackFrame, caseResetFrame), WantFrames: 3,
	},
	{
		Name:        "frame-leading-zeros",
		Description: "0x00 bytes before and between frames are empty frames, skipped silently",
		Kind:        CaseFrameStream, Bytes: cat(hx("00 00 00"), caseCmdMinFrame, hx("00 00"), caseAckFrame), WantFrames: 2,
	},
	{
		Name:        "frame-only-zeros",
		Description: "nothing but delimiters",
		Kind:        CaseFrameStream, Bytes: hx("00 00 00 00"), WantFrames: 0,
	},
	{
		Name:        "frame-garbage-between",
		Description: "text noise (boot messages) between two frames: dropped, then resync",
		Kind:        CaseFrameStream,
		Bytes:       cat(caseCmdMinFrame, []byte("boot v1.2\r\n"), hx("00"), caseAckFrame),
		WantFrames:  2, WantDrops: []DropReason{DropBadCOBS},
	},
	{
		Name: "frame-torn",
		Description: "the first 10 bytes of a frame, then a complete ACK frame: the torn bytes swallow the ACK " +
			"(one bad frame), the next frame arrives",
		Kind:       CaseFrameStream,
		Bytes:      cat(caseTornFrame, caseAckFrame, caseCmdMinFrame),
		WantFrames: 1, WantDrops: []DropReason{DropBadCOBS},
	},
	{
		Name:        "frame-torn-then-zero",
		Description: "a torn frame, then the 0x00 a restarting sender sends first: only the torn frame is lost",
		Kind:        CaseFrameStream,
		Bytes:       cat(caseTornFrame, hx("00"), caseAckFrame),
		WantFrames:  1, WantDrops: []DropReason{DropBadCOBS},
	},
	{
		Name:        "frame-bad-crc",
		Description: "the worked example with \"ping\" changed to \"pinh\": CRC mismatch (NACK seq 1), then a good frame",
		Kind:        CaseFrameStream,
		Bytes:       cat(hx("02 10 03 01 a4 0e 01 01 01 02 01 04 64 70 69 6e 68 21 7c 00"), caseAckFrame),
		WantFrames:  1, WantDrops: []DropReason{DropBadCRC},
	},
	{
		Name:        "frame-oversize",
		Description: "2000 non-zero bytes without a delimiter, then a good frame: dropped once, memory bounded",
		Kind:        CaseFrameStream,
		Bytes:       cat(rep(0x01, 2000), hx("00"), caseAckFrame),
		WantFrames:  1, WantDrops: []DropReason{DropTooLarge},
	},
	{
		Name:        "frame-payload-over-limit",
		Description: "a well-formed frame whose payload is 1025 zero bytes (fits the encoded limit, not the payload limit)",
		Kind:        CaseFrameStream,
		Bytes:       cat(rawFrame(0x10, 5, rep(0, 1025)), caseAckFrame),
		WantFrames:  1, WantDrops: []DropReason{DropTooLarge},
	},
	{
		Name:        "frame-max-payload",
		Description: "a DATA frame with exactly 1024 payload bytes of 0xff",
		Kind:        CaseFrameStream, Bytes: rawFrame(0x10, 6, rep(0xff, 1024)), WantFrames: 1,
	},
	{
		Name:        "frame-too-short",
		Description: "frames of 1 byte and of 3 bytes (header, no CRC)",
		Kind:        CaseFrameStream,
		Bytes:       cat(hx("02 41 00"), hx("02 10 02 01 00"), caseAckFrame),
		WantFrames:  1, WantDrops: []DropReason{DropTooShort, DropTooShort},
	},
	{
		Name:        "frame-bad-version",
		Description: "header version 2 with a correct CRC",
		Kind:        CaseFrameStream, Bytes: cat(rawFrame(0x20, 1, nil), caseAckFrame),
		WantFrames: 1, WantDrops: []DropReason{DropBadVersion},
	},
	{
		Name:        "frame-bad-type",
		Description: "frame type 5 with a correct CRC",
		Kind:        CaseFrameStream, Bytes: cat(rawFrame(0x15, 1, nil), caseAckFrame),
		WantFrames: 1, WantDrops: []DropReason{DropBadType},
	},
	{
		Name:        "frame-unterminated",
		Description: "a frame without its delimiter is held, not emitted",
		Kind:        CaseFrameStream, Bytes: caseCmdMinFrame[:len(caseCmdMinFrame)-1], WantFrames: 0,
	},
}

func manyValues(n int) []byte {
	b := hx("a5 00 01 01 01 02 01 04 64 70696e67 05")
	b = appendHead(b, majMap, uint64(n))
	for i := range n {
		b = appendText(b, "v"+strconv.Itoa(1000+i))
		b = append(b, 0x00)
	}
	return b
}

func manyValuesWant(n int) *Envelope {
	args := make(map[string]Value, n)
	for i := range n {
		args["v"+strconv.Itoa(1000+i)] = int64(0)
	}
	return &Envelope{Kind: KindCommand, Command: &Command{ID: 1, Verb: "ping", Args: args}}
}
