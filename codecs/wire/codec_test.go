package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func dump(env *Envelope) string {
	if env == nil {
		return "<nil>"
	}
	var v any
	switch {
	case env.Command != nil:
		v = *env.Command
	case env.Reply != nil:
		v = *env.Reply
	case env.Telemetry != nil:
		v = *env.Telemetry
	case env.State != nil:
		v = *env.State
	case env.Hello != nil:
		v = *env.Hello
	case env.Heartbeat != nil:
		v = *env.Heartbeat
	}
	return fmt.Sprintf("%v %#v", env.Kind, v)
}

var allKinds = []Kind{KindCommand, KindReply, KindTelemetry, KindState, KindHello, KindHeartbeat}

func randString(r *rand.Rand, max int) string {
	n := r.Intn(max + 1)
	var sb strings.Builder
	for range n {
		switch r.Intn(10) {
		case 0:
			sb.WriteRune(rune(0x80 + r.Intn(0x700))) // 2-byte UTF-8
		case 1:
			sb.WriteRune([]rune("°µ→€😀")[r.Intn(5)])
		case 2:
			sb.WriteByte(byte(r.Intn(0x20))) // control characters, NUL included
		default:
			sb.WriteByte(byte('a' + r.Intn(26)))
		}
	}
	return sb.String()
}

func randFloat(r *rand.Rand) float64 {
	switch r.Intn(6) {
	case 0:
		return float64(r.Intn(2001)-1000) / 4 // float16-exact
	case 1:
		return float64(r.Float32()) // float32-exact
	case 2:
		return math.Float64frombits(r.Uint64()&^(0x7ff<<52) | uint64(r.Intn(0x7ff))<<52) // any finite
	case 3:
		return []float64{0, math.Copysign(0, -1), math.SmallestNonzeroFloat64, math.MaxFloat64,
			-math.MaxFloat64, 65504, 5.960464477539063e-08, 6.103515625e-05, math.MaxFloat32, 1e-40}[r.Intn(10)]
	default:
		return r.NormFloat64() * 1000
	}
}

// randValue returns a value of one of the six types, normalised as a
// decoder returns it (uint64 only above MaxInt64, non-nil []byte).
func randValue(r *rand.Rand) Value {
	switch r.Intn(7) {
	case 0:
		return int64(r.Uint64())
	case 1:
		return int64(r.Intn(100) - 50)
	case 2:
		return uint64(math.MaxInt64) + 1 + uint64(r.Int63())
	case 3:
		return randFloat(r)
	case 4:
		return randString(r, 20)
	case 5:
		return r.Intn(2) == 1
	default:
		b := make([]byte, r.Intn(12))
		r.Read(b)
		return b
	}
}

func randBody(r *rand.Rand) map[string]Value {
	n := r.Intn(8)
	if n == 0 {
		return nil
	}
	m := make(map[string]Value, n)
	for range n {
		name := randString(r, 12)
		if name == "" {
			name = "x"
		}
		m[name] = randValue(r)
	}
	return m
}

func randU64(r *rand.Rand) uint64 {
	switch r.Intn(4) {
	case 0:
		return 0
	case 1:
		return uint64(r.Intn(30))
	case 2:
		return uint64(r.Intn(70000))
	}
	return r.Uint64()
}

func randI64(r *rand.Rand) int64 {
	switch r.Intn(3) {
	case 0:
		return 0
	case 1:
		return int64(r.Intn(2000) - 1000)
	}
	return int64(r.Uint64())
}

// randEnvelope returns a valid envelope of kind k, as Unmarshal would return it.
func randEnvelope(r *rand.Rand, k Kind) *Envelope {
	env := &Envelope{Kind: k}
	switch k {
	case KindCommand:
		env.Command = &Command{ID: randU64(r) | 1, Device: randString(r, 10), Verb: "v" + randString(r, 8),
			Args: randBody(r), Deadline: randI64(r), IdemKey: randString(r, 16), ReplyTo: randString(r, 8)}
	case KindReply:
		env.Reply = &Reply{ID: randU64(r) | 1, Device: randString(r, 10), Outcome: Outcome(1 + r.Intn(3)),
			Code: randI64(r), Text: randString(r, 30), Result: randBody(r)}
	case KindTelemetry:
		env.Telemetry = &Telemetry{Device: randString(r, 10), Seq: randU64(r), TS: randI64(r), Values: randBody(r)}
	case KindState:
		env.State = &State{Device: randString(r, 10), Online: r.Intn(2) == 1, Seq: randU64(r),
			Firmware: randString(r, 8), Profile: randString(r, 8), ProfileVersion: randString(r, 3)}
	case KindHello:
		env.Hello = &Hello{Device: "d" + randString(r, 10), Firmware: randString(r, 8), Profile: randString(r, 8),
			ProfileVersion: randString(r, 3), Boot: randU64(r), MaxFrame: uint32(randU64(r)), Window: uint32(randU64(r))}
	case KindHeartbeat:
		env.Heartbeat = &Heartbeat{Device: randString(r, 10), Seq: randU64(r), Uptime: randU64(r)}
	}
	return env
}

// generic maps env to the map a general-purpose CBOR encoder should produce
// for it, following the key table and omission rules of docs/protocol.md.
func generic(env *Envelope) map[uint64]any {
	m := map[uint64]any{KeyVersion: uint64(ProtocolVersion), KeyKind: uint64(env.Kind)}
	u := func(k int, v uint64) {
		if v != 0 {
			m[uint64(k)] = v
		}
	}
	i := func(k int, v int64) {
		if v != 0 {
			m[uint64(k)] = v
		}
	}
	s := func(k int, v string) {
		if v != "" {
			m[uint64(k)] = v
		}
	}
	b := func(k int, v map[string]Value) {
		if len(v) > 0 {
			m[uint64(k)] = v
		}
	}
	switch {
	case env.Command != nil:
		c := env.Command
		u(KeyID, c.ID)
		s(KeyDevice, c.Device)
		s(KeyVerb, c.Verb)
		b(KeyBody, c.Args)
		i(KeyDeadline, c.Deadline)
		s(KeyIdemKey, c.IdemKey)
		s(KeyReplyTo, c.ReplyTo)
	case env.Reply != nil:
		c := env.Reply
		u(KeyID, c.ID)
		s(KeyDevice, c.Device)
		b(KeyBody, c.Result)
		u(KeyOutcome, uint64(c.Outcome))
		i(KeyCode, c.Code)
		s(KeyText, c.Text)
	case env.Telemetry != nil:
		c := env.Telemetry
		u(KeyID, c.Seq)
		s(KeyDevice, c.Device)
		b(KeyBody, c.Values)
		i(KeyTS, c.TS)
	case env.State != nil:
		c := env.State
		u(KeyID, c.Seq)
		s(KeyDevice, c.Device)
		m[KeyOnline] = c.Online
		s(KeyFirmware, c.Firmware)
		s(KeyProfile, c.Profile)
		s(KeyProfileVersion, c.ProfileVersion)
	case env.Hello != nil:
		c := env.Hello
		s(KeyDevice, c.Device)
		s(KeyFirmware, c.Firmware)
		s(KeyProfile, c.Profile)
		s(KeyProfileVersion, c.ProfileVersion)
		u(KeyBoot, c.Boot)
		u(KeyMaxFrame, uint64(c.MaxFrame))
		u(KeyWindow, uint64(c.Window))
	case env.Heartbeat != nil:
		c := env.Heartbeat
		u(KeyID, c.Seq)
		s(KeyDevice, c.Device)
		u(KeyUptime, c.Uptime)
	}
	return m
}

var coreDet = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// TestRoundTrip: random envelopes of every kind encode, decode to the same
// value, and encode to exactly what the CBOR library's core deterministic
// encoder produces for the same map.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, k := range allKinds {
		t.Run(k.String(), func(t *testing.T) {
			for range 2000 {
				env := randEnvelope(r, k)
				b, err := Marshal(env)
				if err != nil {
					t.Fatalf("Marshal(%s): %v", dump(env), err)
				}
				got, err := Unmarshal(b)
				if err != nil {
					t.Fatalf("Unmarshal(%x): %v\n%s", b, err, dump(env))
				}
				if !reflect.DeepEqual(got, env) {
					t.Fatalf("round trip\n got %s\nwant %s\nbytes %x", dump(got), dump(env), b)
				}
				oracle, err := coreDet.Marshal(generic(env))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, oracle) {
					d1, _ := cbor.Diagnose(b)
					d2, _ := cbor.Diagnose(oracle)
					t.Fatalf("not core deterministic:\n ours   %x\n %s\n oracle %x\n %s", b, d1, oracle, d2)
				}
				// AppendMarshal appends the same bytes after a prefix.
				pre := []byte("prefix")
				ab, err := AppendMarshal(pre, env)
				if err != nil || !bytes.Equal(ab[:6], []byte("prefix")) || !bytes.Equal(ab[6:], b) {
					t.Fatalf("AppendMarshal differs: %x, %v", ab, err)
				}
			}
		})
	}
}

// TestDeterministic: the same value gives the same bytes whatever the map's
// insertion order, and re-encoding decoded bytes is the identity.
func TestDeterministic(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for range 500 {
		env := randEnvelope(r, KindTelemetry)
		if env.Telemetry.Values == nil {
			continue
		}
		b1, err := Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		// Rebuild the map with a different insertion order.
		names := make([]string, 0, len(env.Telemetry.Values))
		for n := range env.Telemetry.Values {
			names = append(names, n)
		}
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		m2 := make(map[string]Value)
		for _, n := range names {
			m2[n] = env.Telemetry.Values[n]
		}
		env2 := *env
		t2 := *env.Telemetry
		t2.Values = m2
		env2.Telemetry = &t2
		for range 3 {
			b2, err := Marshal(&env2)
			if err != nil || !bytes.Equal(b1, b2) {
				t.Fatalf("not deterministic: %x vs %x (%v)", b1, b2, err)
			}
		}
		dec, err := Unmarshal(b1)
		if err != nil {
			t.Fatal(err)
		}
		b3, _ := Marshal(dec)
		if !bytes.Equal(b1, b3) {
			t.Fatalf("re-encoding differs: %x vs %x", b1, b3)
		}
	}
}

// TestFloatShortest compares appendFloat with the CBOR library for every
// float16 bit pattern, float32 and float64 values.
func TestFloatShortest(t *testing.T) {
	check := func(f float64) {
		if math.IsNaN(f) {
			return
		}
		got := appendFloat(nil, f)
		want, err := coreDet.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("float %v (%x): got %x want %x", f, math.Float64bits(f), got, want)
		}
	}
	for h := range 1 << 16 {
		// Decode binary16 through the library to get the exact value.
		var f float64
		if err := cbor.Unmarshal([]byte{0xf9, byte(h >> 8), byte(h)}, &f); err != nil {
			t.Fatal(err)
		}
		check(f)
		check(math.Nextafter(f, math.Inf(1)))
		check(float64(math.Nextafter32(float32(f), float32(math.Inf(-1)))))
	}
	r := rand.New(rand.NewSource(3))
	for range 50000 {
		check(math.Float64frombits(r.Uint64()))
		check(float64(math.Float32frombits(r.Uint32())))
		check(randFloat(r))
	}
}

func TestMarshalErrors(t *testing.T) {
	long := strings.Repeat("x", 4097)
	tests := []struct {
		name string
		env  *Envelope
		want ErrorCode
	}{
		{"nil", nil, ErrBadValue},
		{"no field", &Envelope{Kind: KindCommand}, ErrBadValue},
		{"two fields", &Envelope{Command: &Command{ID: 1, Verb: "a"}, Reply: &Reply{ID: 1, Outcome: 1}}, ErrBadValue},
		{"kind mismatch", &Envelope{Kind: KindReply, Command: &Command{ID: 1, Verb: "a"}}, ErrBadValue},
		{"command id 0", &Envelope{Command: &Command{Verb: "a"}}, ErrMissingField},
		{"command no verb", &Envelope{Command: &Command{ID: 1}}, ErrMissingField},
		{"reply id 0", &Envelope{Reply: &Reply{Outcome: OutcomeDone}}, ErrMissingField},
		{"reply outcome 0", &Envelope{Reply: &Reply{ID: 1}}, ErrBadValue},
		{"reply outcome 9", &Envelope{Reply: &Reply{ID: 1, Outcome: 9}}, ErrBadValue},
		{"hello no device", &Envelope{Hello: &Hello{}}, ErrMissingField},
		{"int value", &Envelope{Command: &Command{ID: 1, Verb: "a", Args: map[string]Value{"x": 1}}}, ErrBadValue},
		{"nil value", &Envelope{Command: &Command{ID: 1, Verb: "a", Args: map[string]Value{"x": nil}}}, ErrBadValue},
		{"float32 value", &Envelope{Command: &Command{ID: 1, Verb: "a", Args: map[string]Value{"x": float32(1)}}}, ErrBadValue},
		{"array value", &Envelope{Command: &Command{ID: 1, Verb: "a", Args: map[string]Value{"x": []any{}}}}, ErrBadValue},
		{"NaN", &Envelope{Telemetry: &Telemetry{Values: map[string]Value{"t": math.NaN()}}}, ErrBadValue},
		{"Inf", &Envelope{Telemetry: &Telemetry{Values: map[string]Value{"t": math.Inf(-1)}}}, ErrBadValue},
		{"empty name", &Envelope{Telemetry: &Telemetry{Values: map[string]Value{"": int64(1)}}}, ErrBadValue},
		{"bad utf8 name", &Envelope{Telemetry: &Telemetry{Values: map[string]Value{"\xff": int64(1)}}}, ErrBadValue},
		{"bad utf8 value", &Envelope{Telemetry: &Telemetry{Values: map[string]Value{"a": "\xc3("}}}, ErrBadValue},
		{"bad utf8 device", &Envelope{Telemetry: &Telemetry{Device: "\xff"}}, ErrBadValue},
		{"long verb", &Envelope{Command: &Command{ID: 1, Verb: long}}, ErrTooLarge},
		{"long value", &Envelope{Command: &Command{ID: 1, Verb: "a", Args: map[string]Value{"x": long}}}, ErrTooLarge},
		{"long bytes", &Envelope{Command: &Command{ID: 1, Verb: "a", Args: map[string]Value{"x": []byte(long)}}}, ErrTooLarge},
		{"long name", &Envelope{Command: &Command{ID: 1, Verb: "a", Args: map[string]Value{long: true}}}, ErrTooLarge},
		{"too many values", manyValuesWant(257), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := AppendMarshal(dst, tt.env)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed on error: %q", out)
			}
			if !strings.Contains(err.Error(), ";") && !strings.Contains(err.Error(), "needs") &&
				!strings.Contains(err.Error(), "must") && !strings.Contains(err.Error(), "is not") {
				t.Logf("message may not say what to do: %v", err)
			}
		})
	}
}

func TestMessageSizeLimit(t *testing.T) {
	c, err := NewCodec(Limits{MaxMessage: 100})
	if err != nil {
		t.Fatal(err)
	}
	big := &Envelope{Command: &Command{ID: 1, Verb: "a", Args: map[string]Value{"x": strings.Repeat("y", 200)}}}
	if _, err := c.Marshal(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Marshal over MaxMessage: %v", err)
	}
	b, err := Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unmarshal(b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Unmarshal over MaxMessage: %v", err)
	}
	if got := c.Limits(); got.MaxMessage != 100 || got.MaxStringLen != DefaultLimits.MaxStringLen {
		t.Fatalf("limits %+v", got)
	}
	for _, bad := range []Limits{{MaxNesting: 2}, {MaxMapPairs: 3}, {MaxArrayElements: 1}, {MaxMessage: -1}} {
		if _, err := NewCodec(bad); err == nil {
			t.Errorf("NewCodec(%+v) accepted", bad)
		}
	}
}

func TestMarshalHelpers(t *testing.T) {
	for _, f := range []func() ([]byte, error){
		func() ([]byte, error) { return MarshalCommand(&Command{ID: 1, Verb: "ping"}) },
		func() ([]byte, error) { return MarshalReply(&Reply{ID: 1, Outcome: OutcomeDone}) },
		func() ([]byte, error) { return MarshalTelemetry(&Telemetry{Device: "d"}) },
		func() ([]byte, error) { return MarshalState(&State{Device: "d"}) },
		func() ([]byte, error) { return MarshalHello(&Hello{Device: "d"}) },
		func() ([]byte, error) { return MarshalHeartbeat(&Heartbeat{Device: "d"}) },
	} {
		b, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Unmarshal(b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestErrorType(t *testing.T) {
	_, err := Unmarshal([]byte{0xa2, 0x00, 0x02, 0x01, 0x01})
	var e *Error
	if !errors.As(err, &e) || e.Code != ErrVersion || e.Key != KeyVersion {
		t.Fatalf("%#v", err)
	}
	if errors.Is(err, ErrMalformed) {
		t.Fatal("matches another code")
	}
	if !strings.Contains(err.Error(), "version") || !strings.Contains(err.Error(), "update") {
		t.Fatalf("message %q", err)
	}
	for c := ErrTooLarge; c <= ErrInternal; c++ {
		if strings.HasPrefix(c.String(), "error code") {
			t.Errorf("code %d has no name", c)
		}
	}
	// The underlying CBOR error is reachable.
	_, err = Unmarshal([]byte{0xbf, 0xff})
	var ie *cbor.IndefiniteLengthError
	if !errors.As(err, &ie) {
		t.Fatalf("cause not unwrapped: %v", err)
	}
}

func TestReplyCodeString(t *testing.T) {
	want := map[ReplyCode]string{
		ReplyOK: "ok", ReplyBadRequest: "bad_request", ReplyUnknownVerb: "unknown_verb",
		ReplyBadArgument: "bad_argument", ReplyBusy: "busy", ReplyTimeout: "timeout",
		ReplyNotAllowed: "not_allowed", ReplyInternal: "internal", ReplyExpired: "expired", ReplyRestarted: "restarted", 1234: "code_1234",
	}
	for c, s := range want {
		if c.String() != s {
			t.Errorf("%d: %q, want %q", int64(c), c.String(), s)
		}
	}
}

// Bad values reported are the same whatever the map iteration order.
func TestBodyErrorDeterministic(t *testing.T) {
	b := cmdWith("a3 61 61 f0 61 62 80 61 63 79 1001" + strings.Repeat("61", 4097))
	var first string
	for i := range 50 {
		_, err := Unmarshal(b)
		if err == nil {
			t.Fatal("accepted")
		}
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("error varies: %q vs %q", err, first)
		}
	}
	if !strings.Contains(first, "too large") {
		t.Fatalf("want the limit error first: %v", first)
	}
}

func TestConcurrentUse(t *testing.T) {
	done := make(chan bool)
	for g := range 8 {
		go func() {
			r := rand.New(rand.NewSource(int64(g)))
			for range 300 {
				env := randEnvelope(r, allKinds[r.Intn(len(allKinds))])
				b, err := Marshal(env)
				if err == nil {
					var got *Envelope
					got, err = Unmarshal(b)
					if err == nil && !reflect.DeepEqual(got, env) {
						err = errors.New("mismatch")
					}
				}
				if err != nil {
					t.Error(err)
					break
				}
			}
			done <- true
		}()
	}
	for range 8 {
		<-done
	}
}
