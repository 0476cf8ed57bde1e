package wire

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"testing"
)

func TestCRC16CheckValue(t *testing.T) {
	if got := CRC16([]byte("123456789")); got != 0x29B1 || CRC16Check != 0x29B1 {
		t.Fatalf("CRC16(123456789) = %#04x, want 0x29B1", got)
	}
	if got := CRC16(nil); got != 0xFFFF {
		t.Fatalf("CRC16(empty) = %#04x", got)
	}
	// Table-driven equals the bitwise definition; incremental equals whole.
	bitwise := func(p []byte) uint16 {
		crc := uint16(0xFFFF)
		for _, b := range p {
			crc ^= uint16(b) << 8
			for range 8 {
				if crc&0x8000 != 0 {
					crc = crc<<1 ^ 0x1021
				} else {
					crc <<= 1
				}
			}
		}
		return crc
	}
	r := rand.New(rand.NewSource(4))
	for range 1000 {
		p := make([]byte, r.Intn(300))
		r.Read(p)
		if CRC16(p) != bitwise(p) {
			t.Fatalf("table and bitwise differ for %x", p)
		}
		k := r.Intn(len(p) + 1)
		if UpdateCRC16(CRC16(p[:k]), p[k:]) != CRC16(p) {
			t.Fatal("incremental CRC differs")
		}
	}
}

func TestCOBSVectors(t *testing.T) {
	// Vectors from the COBS paper / common references.
	vectors := []struct{ in, out string }{
		{"", "01"},
		{"00", "01 01"},
		{"00 00", "01 01 01"},
		{"11 22 00 33", "03 11 22 02 33"},
		{"11 22 33 44", "05 11 22 33 44"},
		{"11 00 00 00", "02 11 01 01 01"},
	}
	for _, v := range vectors {
		in, out := hx(v.in), hx(v.out)
		if got := AppendCOBS(nil, in); !bytes.Equal(got, out) {
			t.Errorf("AppendCOBS(%x) = %x, want %x", in, got, out)
		}
		got, err := DecodeCOBS(nil, out)
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("DecodeCOBS(%x) = %x, %v", out, got, err)
		}
	}
	// 254 non-zero bytes: one full block then an empty final block.
	in := rep(0x01, 254)
	enc := AppendCOBS(nil, in)
	if enc[0] != 0xff || len(enc) != 256 || enc[255] != 0x01 {
		t.Fatalf("254 bytes: %x", enc)
	}
	// The form without the final 0x01 decodes the same.
	if got, err := DecodeCOBS(nil, enc[:255]); err != nil || !bytes.Equal(got, in) {
		t.Fatalf("short form: %v", err)
	}
	// 255 non-zero bytes.
	enc = AppendCOBS(nil, rep(0x01, 255))
	if !bytes.Equal(enc[:1], []byte{0xff}) || enc[255] != 0x02 || len(enc) != 257 {
		t.Fatalf("255 bytes: %x", enc)
	}
	for _, bad := range []string{"", "00", "05 11 22", "03 11 00", "02 11 00 01"} {
		if _, err := DecodeCOBS(nil, hx(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeCOBS(%s): %v", bad, err)
		}
	}
}

func TestCOBSRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for range 5000 {
		n := r.Intn(2000)
		in := make([]byte, n)
		zeroRate := r.Intn(4)
		for i := range in {
			switch {
			case zeroRate > 0 && r.Intn(zeroRate*50) == 0:
				in[i] = 0
			default:
				in[i] = byte(1 + r.Intn(255))
			}
		}
		enc := AppendCOBS([]byte{0xAA}, in)[1:]
		if bytes.IndexByte(enc, 0) >= 0 {
			t.Fatalf("zero in encoding")
		}
		if len(enc) > COBSMaxEncodedLen(n) {
			t.Fatalf("encoding %d bytes over bound %d", len(enc), COBSMaxEncodedLen(n))
		}
		dec, err := DecodeCOBS(nil, enc)
		if err != nil || !bytes.Equal(dec, in) {
			t.Fatalf("round trip failed: %v", err)
		}
		// In place.
		buf := append([]byte(nil), enc...)
		dec, err = DecodeCOBS(buf[:0], buf)
		if err != nil || !bytes.Equal(dec, in) {
			t.Fatalf("in-place round trip failed: %v", err)
		}
	}
}

func TestFrameConstants(t *testing.T) {
	if MaxFrameEncoded != FrameEncodedMax(MaxFramePayload) || MaxFrameEncoded != 1035 {
		t.Fatalf("MaxFrameEncoded %d, FrameEncodedMax %d", MaxFrameEncoded, FrameEncodedMax(MaxFramePayload))
	}
	// The worst case is reached: a payload without zero bytes.
	f, err := AppendFrame(nil, Frame{Payload: rep(0xff, MaxFramePayload)})
	if err != nil || len(f) > MaxFrameEncoded {
		t.Fatalf("%d bytes, %v", len(f), err)
	}
}

func TestAppendFrameErrors(t *testing.T) {
	dst := []byte("x")
	out, err := AppendFrame(dst, Frame{Payload: make([]byte, MaxFramePayload+1)})
	if !errors.Is(err, ErrTooLarge) || string(out) != "x" {
		t.Fatalf("%v %q", err, out)
	}
	if _, err := AppendFrame(nil, Frame{Type: 16}); !errors.Is(err, ErrBadValue) {
		t.Fatal(err)
	}
}

func randFrame(r *rand.Rand, maxPayload int) Frame {
	f := Frame{Type: FrameType(r.Intn(4)), Seq: uint16(r.Intn(65536))}
	if r.Intn(3) > 0 {
		f.Payload = make([]byte, r.Intn(maxPayload+1))
		r.Read(f.Payload)
		if r.Intn(2) == 0 {
			for i := range f.Payload { // many zeros
				if r.Intn(4) == 0 {
					f.Payload[i] = 0
				}
			}
		}
	} else {
		f.Payload = []byte{}
	}
	return f
}

func randChunks(r *rand.Rand, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := 1 + r.Intn(min(len(b), []int{1, 7, 64, 2000}[r.Intn(4)]))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// Random frames, random noise between some of them, random chunking: every
// frame is delivered intact and in order, noise only produces drops.
func TestFrameStreamRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	for iter := range 300 {
		var stream []byte
		var want []Frame
		noise := iter%2 == 1
		for range 1 + r.Intn(20) {
			f := randFrame(r, MaxFramePayload)
			var err error
			stream, err = AppendFrame(stream, f)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, f)
			if noise && r.Intn(3) == 0 {
				g := make([]byte, r.Intn(40))
				r.Read(g)
				stream = append(append(stream, g...), 0)
			}
		}
		got := feedAll(NewFrameDecoder(FrameDecoderOptions{}), randChunks(r, stream))
		if len(got.frames) < len(want) {
			t.Fatalf("iter %d: %d frames, want %d (drops %+v)", iter, len(got.frames), len(want), got.drops)
		}
		// With noise a garbage chunk can (rarely) form a valid frame: match
		// the wanted frames as a subsequence.
		j := 0
		for _, f := range got.frames {
			if j < len(want) && reflect.DeepEqual(f, want[j]) {
				j++
			}
		}
		if j != len(want) {
			t.Fatalf("iter %d: frames lost or damaged", iter)
		}
		if !noise && (len(got.drops) != 0 || len(got.frames) != len(want)) {
			t.Fatalf("iter %d: clean stream had drops %+v", iter, got.drops)
		}
	}
}

func TestFrameDecoderBounded(t *testing.T) {
	d := NewFrameDecoder(FrameDecoderOptions{MaxPayload: 64})
	drops := 0
	onDrop := func(dr Drop) {
		if dr.Reason != DropTooLarge {
			t.Fatalf("drop %v", dr.Reason)
		}
		drops++
	}
	junk := rep(0x42, 100)
	for range 1000 {
		d.Feed(junk, nil, onDrop)
		if d.Buffered() > FrameEncodedMax(64) || cap(d.acc) > FrameEncodedMax(64) {
			t.Fatalf("buffer grew to %d (cap %d)", d.Buffered(), cap(d.acc))
		}
	}
	if drops != 1 {
		t.Fatalf("%d drops for one oversize frame", drops)
	}
	// The next frame after the delimiter is decoded.
	n := 0
	d.Feed([]byte{0}, nil, onDrop)
	d.Feed(caseAckFrame, func(Frame) { n++ }, onDrop)
	if n != 1 {
		t.Fatal("no resync")
	}
	// A frame with a payload over the limit is dropped.
	f, _ := AppendFrame(nil, Frame{Payload: rep(0, 65)})
	d.Feed(f, func(Frame) { t.Fatal("delivered") }, onDrop)
	if drops != 2 {
		t.Fatal("oversize payload not dropped")
	}
	// Reset forgets a partial frame.
	d.Feed(caseAckFrame[:3], nil, nil)
	d.Reset()
	if d.Buffered() != 0 {
		t.Fatal("Reset kept bytes")
	}
	d.Feed(caseAckFrame, func(Frame) { n++ }, onDrop)
	if n != 2 {
		t.Fatal("frame after Reset lost")
	}
}

func TestDropSeq(t *testing.T) {
	bad := append([]byte(nil), caseCmdMinFrame...)
	bad[16] ^= 0x01 // a payload byte
	var got []Drop
	NewFrameDecoder(FrameDecoderOptions{}).Feed(bad, func(Frame) { t.Fatal("delivered") },
		func(d Drop) { got = append(got, d) })
	if len(got) != 1 || got[0].Reason != DropBadCRC || !got[0].HasSeq || got[0].Seq != 1 || got[0].Err == nil {
		t.Fatalf("%+v", got)
	}
	for r := DropBadCOBS; r <= DropBadType; r++ {
		if r.String() == "" || r.String()[:4] == "drop" {
			t.Errorf("reason %d unnamed", r)
		}
	}
}

// Single-bit errors anywhere in a frame never deliver a wrong frame.
func TestFrameBitFlips(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for range 200 {
		f := randFrame(r, 200)
		enc, _ := AppendFrame(nil, f)
		for i := 0; i < len(enc)-1; i++ {
			for bit := range 8 {
				m := append([]byte(nil), enc...)
				m[i] ^= 1 << bit
				NewFrameDecoder(FrameDecoderOptions{}).Feed(m, func(g Frame) {
					if !reflect.DeepEqual(g, f) {
						t.Fatalf("bit flip at %d.%d delivered a wrong frame", i, bit)
					}
				}, nil)
			}
		}
	}
}
