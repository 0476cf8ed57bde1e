package wire

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"testing"
)

func FuzzUnmarshal(f *testing.F) {
	// Seeds over 1 KiB (the limit cases) are left out: they add nothing the
	// tests do not cover and make corpus minimisation slow.
	for _, c := range Cases {
		if c.Kind == CaseEnvelope && len(c.Bytes) <= 1024 {
			f.Add(c.Bytes)
		}
	}
	r := rand.New(rand.NewSource(8))
	for _, k := range allKinds {
		for range 3 {
			b, err := Marshal(randEnvelope(r, k))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Unmarshal(data)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) || we.Msg == "" {
				t.Fatalf("error is not an *Error with a message: %v", err)
			}
			if we.Code == ErrInternal {
				t.Fatalf("decoder panicked: %v", err)
			}
			if env != nil {
				t.Fatal("envelope returned with an error")
			}
			return
		}
		if len(data) > DefaultLimits.MaxMessage {
			t.Fatalf("accepted %d bytes", len(data))
		}
		if k, kerr := kindOf(env); kerr != nil || k != env.Kind {
			t.Fatalf("inconsistent envelope: %v", kerr)
		}
		b, err := Marshal(env)
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v\n%s", err, dump(env))
		}
		env2, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if !reflect.DeepEqual(env, env2) {
			t.Fatalf("round trip differs:\n %s\n %s", dump(env), dump(env2))
		}
		b2, err := Marshal(env2)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding not stable: %x vs %x", b, b2)
		}
	})
}

type fuzzStream struct {
	frames []Frame
	drops  []Drop
}

func FuzzFrameDecoder(f *testing.F) {
	for _, c := range Cases {
		if c.Kind == CaseFrameStream && len(c.Bytes) <= 2100 {
			f.Add(c.Bytes, int64(1), uint8(0))
		}
	}
	r := rand.New(rand.NewSource(9))
	for i := range 5 {
		var stream []byte
		for range 1 + r.Intn(5) {
			stream, _ = AppendFrame(stream, randFrame(r, 100))
		}
		f.Add(stream, int64(i), uint8(i))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunkSeed int64, opt uint8) {
		maxPayload := []int{0, 16, 300}[int(opt)%3]
		limit := maxPayload
		if limit == 0 {
			limit = MaxFramePayload
		}
		run := func(chunks [][]byte) fuzzStream {
			d := NewFrameDecoder(FrameDecoderOptions{MaxPayload: maxPayload})
			var s fuzzStream
			for _, ch := range chunks {
				d.Feed(ch, func(fr Frame) {
					if len(fr.Payload) > limit {
						t.Fatalf("payload %d over limit %d", len(fr.Payload), limit)
					}
					if fr.Type > FrameReset {
						t.Fatalf("frame type %d emitted", fr.Type)
					}
					fr.Payload = bytes.Clone(fr.Payload)
					s.frames = append(s.frames, fr)
				}, func(dr Drop) {
					if dr.Err == nil || dr.Reason < DropBadCOBS || dr.Reason > DropBadType {
						t.Fatalf("bad drop %+v", dr)
					}
					dr.Err = nil
					s.drops = append(s.drops, dr)
				})
				if d.Buffered() > FrameEncodedMax(limit) || cap(d.acc) > FrameEncodedMax(limit) {
					t.Fatalf("buffer %d/%d over bound %d", d.Buffered(), cap(d.acc), FrameEncodedMax(limit))
				}
			}
			return s
		}
		whole := run([][]byte{stream})
		cr := rand.New(rand.NewSource(chunkSeed))
		chunked := run(randChunks(cr, stream))
		if !reflect.DeepEqual(whole, chunked) {
			t.Fatalf("chunking changes the result:\n whole   %+v\n chunked %+v", whole, chunked)
		}
		for _, fr := range whole.frames {
			if len(fr.Payload) > MaxFramePayload {
				continue
			}
			enc, err := AppendFrame(nil, fr)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			again := run([][]byte{enc})
			if len(again.frames) != 1 || len(again.drops) != 0 || !reflect.DeepEqual(again.frames[0], fr) {
				t.Fatalf("frame does not round-trip: %+v -> %+v", fr, again)
			}
		}
	})
}

func FuzzCOBS(f *testing.F) {
	for _, s := range []string{"", "00", "0000", "11220033", "01", "ff", "0211"} {
		f.Add(hx(s))
	}
	f.Add(rep(1, 254))
	f.Add(rep(1, 255))
	f.Add(AppendCOBS(nil, rep(7, 260)))
	for _, c := range Cases {
		if c.Kind == CaseFrameStream && len(c.Bytes) <= 300 {
			f.Add(c.Bytes)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		enc := AppendCOBS(nil, data)
		if bytes.IndexByte(enc, 0) >= 0 {
			t.Fatal("0x00 in COBS output")
		}
		if len(enc) > COBSMaxEncodedLen(len(data)) {
			t.Fatalf("%d encoded bytes over bound %d", len(enc), COBSMaxEncodedLen(len(data)))
		}
		dec, err := DecodeCOBS(nil, enc)
		if err != nil || !bytes.Equal(dec, data) {
			t.Fatalf("round trip: %v", err)
		}
		// data as COBS input.
		dec, err = DecodeCOBS(nil, data)
		buf := bytes.Clone(data)
		inPlace, err2 := DecodeCOBS(buf[:0], buf)
		if (err == nil) != (err2 == nil) || (err == nil && !bytes.Equal(dec, inPlace)) {
			t.Fatalf("in-place decoding differs: %v / %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error code: %v", err)
			}
			return
		}
		if len(dec) >= len(data) {
			t.Fatalf("decoded %d bytes from %d", len(dec), len(data))
		}
		again, err := DecodeCOBS(nil, AppendCOBS(nil, dec))
		if err != nil || !bytes.Equal(again, dec) {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}
