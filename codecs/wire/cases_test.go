package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestCasesTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Cases {
		if c.Name == "" || c.Description == "" {
			t.Errorf("case %q: name and description are required", c.Name)
		}
		if seen[c.Name] {
			t.Errorf("case %q: duplicate name", c.Name)
		}
		seen[c.Name] = true
		switch c.Kind {
		case CaseEnvelope:
			if (c.Want == nil) == (c.WantErr == nil) {
				t.Errorf("case %q: exactly one of Want and WantErr must be set", c.Name)
			}
		case CaseFrameStream:
			if c.Want != nil || c.WantErr != nil {
				t.Errorf("case %q: frame streams use WantFrames/WantDrops", c.Name)
			}
		default:
			t.Errorf("case %q: bad kind %v", c.Name, c.Kind)
		}
	}
}

func TestCasesEnvelope(t *testing.T) {
	for _, c := range Cases {
		if c.Kind != CaseEnvelope {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			env, err := Unmarshal(c.Bytes)
			if c.WantErr != nil {
				if err == nil {
					t.Fatalf("decoded %+v, want error %v", env, c.WantErr)
				}
				if !errors.Is(err, c.WantErr) {
					t.Fatalf("error %v, want code %v", err, c.WantErr)
				}
				var we *Error
				if !errors.As(err, &we) || we.Msg == "" {
					t.Fatalf("error %v is not an *Error with a message", err)
				}
				if env != nil {
					t.Fatalf("non-nil envelope with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(env, c.Want) {
				t.Fatalf("decoded\n %s\nwant\n %s", dump(env), dump(c.Want))
			}
			got, err := Marshal(c.Want)
			if err != nil {
				t.Fatalf("Marshal(Want): %v", err)
			}
			if !c.NonCanonical && !bytes.Equal(got, c.Bytes) {
				t.Fatalf("Marshal(Want) = %x\nwant           %x", got, c.Bytes)
			}
			if c.NonCanonical && bytes.Equal(got, c.Bytes) {
				t.Fatalf("case is marked NonCanonical but Marshal reproduces it")
			}
		})
	}
}

type streamResult struct {
	frames []Frame
	drops  []Drop
}

func feedAll(d *FrameDecoder, chunks [][]byte) streamResult {
	var r streamResult
	for _, ch := range chunks {
		d.Feed(ch, func(f Frame) {
			f.Payload = bytes.Clone(f.Payload)
			r.frames = append(r.frames, f)
		}, func(dr Drop) {
			dr.Err = nil
			r.drops = append(r.drops, dr)
		})
	}
	return r
}

func TestCasesFrameStream(t *testing.T) {
	for _, c := range Cases {
		if c.Kind != CaseFrameStream {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			whole := feedAll(NewFrameDecoder(FrameDecoderOptions{}), [][]byte{c.Bytes})
			if len(whole.frames) != c.WantFrames {
				t.Errorf("%d frames, want %d", len(whole.frames), c.WantFrames)
			}
			var reasons []DropReason
			for _, d := range whole.drops {
				reasons = append(reasons, d.Reason)
			}
			if !reflect.DeepEqual(reasons, c.WantDrops) {
				t.Errorf("drops %v, want %v", reasons, c.WantDrops)
			}
			// Byte by byte gives the same result.
			var chunks [][]byte
			for i := range c.Bytes {
				chunks = append(chunks, c.Bytes[i:i+1])
			}
			single := feedAll(NewFrameDecoder(FrameDecoderOptions{}), chunks)
			if !reflect.DeepEqual(single, whole) {
				t.Errorf("byte-by-byte feeding differs: %+v vs %+v", single, whole)
			}
			// Every frame re-encodes to bytes that decode to the same frame.
			for _, f := range whole.frames {
				enc, err := AppendFrame(nil, f)
				if err != nil {
					t.Fatalf("AppendFrame(%+v): %v", f, err)
				}
				again := feedAll(NewFrameDecoder(FrameDecoderOptions{}), [][]byte{enc})
				if len(again.frames) != 1 || !reflect.DeepEqual(again.frames[0], f) {
					t.Errorf("re-encoded frame decodes to %+v, want %+v", again.frames, f)
				}
			}
		})
	}
}

// The worked example: the DATA frame carrying command-minimal is exactly
// what AppendFrame produces, and its payload decodes to the command.
func TestWorkedExampleFrame(t *testing.T) {
	payload, err := MarshalCommand(&Command{ID: 1, Verb: "ping"})
	if err != nil {
		t.Fatal(err)
	}
	fr, err := AppendFrame(nil, Frame{Type: FrameData, Seq: 1, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fr, caseCmdMinFrame) {
		t.Fatalf("frame %x\nwant  %x", fr, caseCmdMinFrame)
	}
	move, err := MarshalCommand(&Command{ID: 42, Device: "rover-1", Verb: "move",
		Args: map[string]Value{"dist_cm": int64(10), "speed": 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		f    Frame
		want []byte
	}{
		{Frame{Type: FrameData, Seq: 1, Payload: move}, caseMoveFrame},
		{Frame{Type: FrameAck, Seq: 1}, caseAckFrame},
		{Frame{Type: FrameNack, Seq: 2, Payload: []byte{byte(NackCorrupt)}}, caseNackFrame},
		{Frame{Type: FrameReset, Seq: 0}, caseResetFrame},
	} {
		got, err := AppendFrame(nil, f.f)
		if err != nil || !bytes.Equal(got, f.want) {
			t.Errorf("AppendFrame(%+v) = %x, %v; want %x", f.f, got, err, f.want)
		}
	}
}
