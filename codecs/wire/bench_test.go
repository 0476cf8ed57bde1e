package wire

import (
	"testing"
)

// benchCommand is a typical command: "move 10cm speed=0.5" to a named device
// with a deadline and an idempotency key.
var benchCommand = &Command{
	ID: 4242, Device: "rover-1", Verb: "move",
	Args:     map[string]Value{"dist_cm": int64(10), "speed": 0.5},
	Deadline: 1767225600000, IdemKey: "alice@example/8812",
}

// benchTelemetry is a typical telemetry message with six readings.
var benchTelemetry = &Telemetry{
	Device: "greenhouse-3", Seq: 1812, TS: 1767225600123,
	Values: map[string]Value{"temp_c": 21.5, "hum_pct": int64(48), "co2_ppm": int64(612),
		"light_lux": 1234.5, "door_open": false, "battery_mv": int64(3712)},
}

func BenchmarkCommandEncode(b *testing.B) {
	env := &Envelope{Kind: KindCommand, Command: benchCommand}
	out, _ := Marshal(env)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandAppendEncode reuses the output buffer.
func BenchmarkCommandAppendEncode(b *testing.B) {
	env := &Envelope{Kind: KindCommand, Command: benchCommand}
	buf, _ := Marshal(env)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendMarshal(buf[:0], env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTelemetryDecode(b *testing.B) {
	data, err := MarshalTelemetry(benchTelemetry)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCommandDecode(b *testing.B) {
	data, err := MarshalCommand(benchCommand)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFrameEncode(b *testing.B) {
	payload, _ := MarshalCommand(benchCommand)
	f := Frame{Type: FrameData, Seq: 77, Payload: payload}
	buf, _ := AppendFrame(nil, f)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendFrame(buf[:0], f)
	}
}

// BenchmarkFrameDecode feeds one DATA frame carrying the benchmark
// telemetry per op.
func BenchmarkFrameDecode(b *testing.B) {
	payload, _ := MarshalTelemetry(benchTelemetry)
	stream, _ := AppendFrame(nil, Frame{Type: FrameData, Seq: 9, Payload: payload})
	d := NewFrameDecoder(FrameDecoderOptions{})
	n := 0
	onFrame := func(Frame) { n++ }
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(stream, onFrame, nil)
	}
	if n == 0 {
		b.Fatal("no frame")
	}
}

func BenchmarkFrameDecodeMax(b *testing.B) {
	stream, _ := AppendFrame(nil, Frame{Type: FrameData, Seq: 1, Payload: rep(0x5a, MaxFramePayload)})
	d := NewFrameDecoder(FrameDecoderOptions{})
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(stream, func(Frame) {}, nil)
	}
}

func BenchmarkCRC16(b *testing.B) {
	p := rep(0x5a, 1024)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		CRC16(p)
	}
}
