package sim

import (
	"math/rand/v2"
	"strconv"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// invalidCases are the envelope cases of wire.Cases that every receiver must
// refuse (WantErr set).
var invalidCases = func() []wire.Case {
	var out []wire.Case
	for _, c := range wire.Cases {
		if c.Kind == wire.CaseEnvelope && c.WantErr != nil {
			out = append(out, c)
		}
	}
	return out
}()

// InvalidEnvelopeCases returns the names of the wire.Cases envelopes the
// simulator injects as malformed messages.
func InvalidEnvelopeCases() []string {
	names := make([]string, len(invalidCases))
	for i, c := range invalidCases {
		names[i] = c.Name
	}
	return names
}

// malformedPayload picks an invalid envelope of at most maxLen bytes.
func malformedPayload(rng *rand.Rand, maxLen int) (string, []byte) {
	for range 64 {
		c := invalidCases[rng.IntN(len(invalidCases))]
		if len(c.Bytes) <= maxLen {
			return c.Name, append([]byte(nil), c.Bytes...)
		}
	}
	return "empty", []byte{}
}

// rawFrame builds an encoded frame without AppendFrame's checks: header
// byte h0, the given seq and payload; the CRC is correct unless badCRC.
func rawFrame(h0 byte, seq uint16, payload []byte, badCRC bool) []byte {
	raw := append([]byte{h0, byte(seq >> 8), byte(seq)}, payload...)
	crc := wire.CRC16(raw)
	if badCRC {
		crc ^= 0x5a5a
	}
	raw = append(raw, byte(crc>>8), byte(crc))
	return append(wire.AppendCOBS(nil, raw), 0)
}

// malformedSerial returns bytes for a serial line that carry nothing the
// bridge may take: mostly an invalid envelope (wire.Cases) in an intact DATA
// frame, sometimes a frame with a bad CRC, version or type, or a torn frame.
// Frames use the given seq: 0 on a stop-and-wait link, whose receiver takes
// any seq but the last one's; on a windowed link (§8.6) one well ahead of the
// device's next, which the in-order receiver drops as out of order, so the
// bridge's sequence is not disturbed either way. Every frame starts after a
// 0x00.
//
// A stop-and-wait receiver takes an intact DATA frame with a bad envelope as
// delivered for its duplicate detection (§8.4), so a second seq-0 envelope
// right after the first would only be ACKed as a duplicate: with envelope
// false the frame-level kinds are used.
func malformedSerial(rng *rand.Rand, envelope bool, seq uint16) (string, []byte) {
	tel, _ := wire.MarshalTelemetry(&wire.Telemetry{Seq: 1, Values: map[string]any{"x": int64(1)}})
	for range 16 {
		var name string
		var b []byte
		k := rng.IntN(10)
		if !envelope {
			k = 6 + rng.IntN(4)
		}
		switch {
		case k < 6:
			n, p := malformedPayload(rng, wire.MaxFramePayload)
			name, b = "frame:"+n, rawFrame(wire.FrameVersion<<4|byte(wire.FrameData), seq, p, false)
		case k == 6:
			name, b = "frame-bad-crc", rawFrame(wire.FrameVersion<<4|byte(wire.FrameData), seq, tel, true)
		case k == 7:
			name, b = "frame-bad-version", rawFrame(2<<4|byte(wire.FrameData), seq, tel, false)
		case k == 8:
			name, b = "frame-bad-type", rawFrame(wire.FrameVersion<<4|0x0e, seq, tel, false)
		default:
			f := rawFrame(wire.FrameVersion<<4|byte(wire.FrameData), seq, tel, false)
			name, b = "frame-torn", append(f[:len(f)/2:len(f)/2], 0)
		}
		b = append([]byte{0}, b...)
		if refusedOnSerial(b) {
			return name, b
		}
	}
	return "frame-only-zeros", []byte{0, 0, 0}
}

// garbage returns n random bytes. For serial they hold no 0x00 and are
// followed by one (noise that ends like a bootloader line), so they cost the
// receiver one dropped frame and do not tear the next real one. They are
// checked not to decode (as frames, or as an envelope for MQTT).
func garbage(rng *rand.Rand, n int, serial bool) []byte {
	for range 16 {
		b := make([]byte, n, n+2)
		for i := range b {
			if serial {
				b[i] = byte(1 + rng.IntN(255))
			} else {
				b[i] = byte(rng.IntN(256))
			}
		}
		if serial {
			b = append(append([]byte{0}, b...), 0)
			if refusedOnSerial(b) {
				return b
			}
			continue
		}
		if _, err := wire.Unmarshal(b); err != nil {
			return b
		}
	}
	return []byte{0xff} // a lone break: never an envelope, never a frame
}

// refusedOnSerial reports whether a bridge's frame decoder takes nothing
// from b: every frame is dropped, or is a DATA frame whose envelope does
// not decode.
func refusedOnSerial(b []byte) bool {
	ok := true
	dec := wire.NewFrameDecoder(wire.FrameDecoderOptions{})
	dec.Feed(b, func(f wire.Frame) {
		if f.Type != wire.FrameData {
			ok = false
			return
		}
		if _, err := wire.Unmarshal(f.Payload); err == nil {
			ok = false
		}
	}, nil)
	return ok && dec.Buffered() == 0
}

// bootBanner is what a bootloader prints before the firmware starts.
func bootBanner(id string, boot uint64) []byte {
	return []byte("\r\nBOOT v2.1 (sim) reset cause: power-on\r\nfirmware-sim " + id +
		" boot " + strconv.FormatUint(boot, 10) + "\r\n\x00")
}
