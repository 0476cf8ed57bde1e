package wire

import (
	"bytes"
	"slices"
	"strconv"
)

// A serial frame on the wire is
//
//	COBS( header[3] || payload || CRC-16 big-endian over header||payload ) || 0x00
//
// with header byte 0 = FrameVersion<<4 | FrameType and bytes 1–2 = sequence
// number, big-endian. docs/protocol.md describes the link rules (acks,
// retransmission, hello, heartbeats).

// FrameType is the low nibble of a frame's first header byte.
type FrameType uint8

// Frame types. The numbers are part of the wire protocol.
const (
	FrameData  FrameType = 0 // payload is one CBOR envelope
	FrameAck   FrameType = 1 // acknowledges the DATA frame with the same Seq; empty payload
	FrameNack  FrameType = 2 // asks for the DATA frame Seq again; optional 1-byte NackReason
	FrameReset FrameType = 3 // the sender restarted its link state; the peer resets its sequence numbers
)

func (t FrameType) String() string {
	switch t {
	case FrameData:
		return "DATA"
	case FrameAck:
		return "ACK"
	case FrameNack:
		return "NACK"
	case FrameReset:
		return "RESET"
	}
	return "type" + strconv.Itoa(int(t))
}

// NackReason is the optional one-byte payload of a NACK frame.
type NackReason uint8

// NACK reasons. The numbers are part of the wire protocol.
const (
	NackUnspecified NackReason = 0 // as if no payload: retransmit
	NackCorrupt     NackReason = 1 // bad CRC: retransmit
	NackBusy        NackReason = 2 // no room to take it now: retransmit after the retransmit interval
	NackRejected    NackReason = 3 // received intact but the envelope is invalid: do not retransmit
)

// Frame layout constants.
const (
	// FrameVersion is the high nibble of header byte 0.
	FrameVersion = 1
	// FrameHeaderLen is the header size: type/version byte and 16-bit sequence number.
	FrameHeaderLen = 3
	// FrameCRCLen is the size of the CRC trailer.
	FrameCRCLen = 2
	// MaxFramePayload is the default (and the protocol's minimum guaranteed)
	// largest payload; a Hello's MaxFrame may announce more.
	MaxFramePayload = 1024
	// MaxFrameEncoded is the largest frame on the wire for MaxFramePayload,
	// including the 0x00 delimiter: 1035 bytes.
	MaxFrameEncoded = 1029 + 1029/254 + 1 + 1
)

// FrameEncodedMax returns the largest encoded frame, delimiter included,
// for a payload of up to maxPayload bytes.
func FrameEncodedMax(maxPayload int) int {
	return COBSMaxEncodedLen(FrameHeaderLen+maxPayload+FrameCRCLen) + 1
}

// Frame is one decoded serial frame.
type Frame struct {
	Type    FrameType
	Seq     uint16
	Payload []byte
}

// AppendFrame appends the encoded frame f, delimiter included, to dst. It
// fails with ErrTooLarge if the payload is over MaxFramePayload and with
// ErrBadValue if the type does not fit in 4 bits; dst is then returned
// unchanged.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxFramePayload {
		return dst, newErr("frame", ErrTooLarge, -1, "payload is "+strconv.Itoa(len(f.Payload))+
			" bytes, over MaxFramePayload "+strconv.Itoa(MaxFramePayload)+"; send a smaller envelope")
	}
	if f.Type > 0x0f {
		return dst, newErr("frame", ErrBadValue, -1, "frame type "+strconv.Itoa(int(f.Type))+" does not fit in 4 bits")
	}
	hdr := [FrameHeaderLen]byte{FrameVersion<<4 | byte(f.Type), byte(f.Seq >> 8), byte(f.Seq)}
	crc := UpdateCRC16(CRC16(hdr[:]), f.Payload)
	trailer := [FrameCRCLen]byte{byte(crc >> 8), byte(crc)}
	dst = slices.Grow(dst, FrameEncodedMax(len(f.Payload)))
	var w cobsWriter
	w.begin(dst)
	w.write(hdr[:])
	w.write(f.Payload)
	w.write(trailer[:])
	return append(w.end(), 0), nil
}

// DropReason says why the FrameDecoder dropped a frame.
type DropReason uint8

// Drop reasons.
const (
	DropBadCOBS    DropReason = iota + 1 // invalid COBS (garbage, torn frame)
	DropBadCRC                           // CRC mismatch
	DropTooLarge                         // over the size limit; bytes discarded up to the next 0x00
	DropTooShort                         // fewer bytes than header and CRC
	DropBadVersion                       // CRC fine, header version is not FrameVersion
	DropBadType                          // CRC fine, frame type unknown (4–15)
)

func (r DropReason) String() string {
	switch r {
	case DropBadCOBS:
		return "bad_cobs"
	case DropBadCRC:
		return "bad_crc"
	case DropTooLarge:
		return "too_large"
	case DropTooShort:
		return "too_short"
	case DropBadVersion:
		return "bad_version"
	case DropBadType:
		return "bad_type"
	}
	return "drop" + strconv.Itoa(int(r))
}

// Drop describes one dropped frame.
type Drop struct {
	Reason DropReason
	// HasSeq says the header bytes were there; Seq is what they say. Unless
	// Reason is DropBadVersion, DropBadType or DropTooLarge the CRC did not
	// vouch for it. The link NACKs a DropBadCRC frame that has a Seq.
	HasSeq bool
	Seq    uint16
	// Err details the problem, for logs.
	Err error
}

// FrameDecoderOptions configure a FrameDecoder.
type FrameDecoderOptions struct {
	// MaxPayload is the largest payload accepted; 0 means MaxFramePayload.
	// Values are capped at 65535.
	MaxPayload int
}

// FrameDecoder splits a byte stream into frames. It keeps at most one
// encoded frame's worth of bytes (FrameEncodedMax(MaxPayload)) plus one
// decoded frame. It is not safe for concurrent use; one goroutine reads the
// port and feeds it.
type FrameDecoder struct {
	maxPayload int
	maxEnc     int // largest COBS-encoded frame without the delimiter
	acc        []byte
	out        []byte
	discarding bool
}

// NewFrameDecoder returns a decoder with the given options.
func NewFrameDecoder(opts FrameDecoderOptions) *FrameDecoder {
	mp := opts.MaxPayload
	if mp <= 0 {
		mp = MaxFramePayload
	}
	if mp > 65535 {
		mp = 65535
	}
	enc := FrameEncodedMax(mp) - 1
	return &FrameDecoder{
		maxPayload: mp,
		maxEnc:     enc,
		acc:        make([]byte, 0, enc),
		out:        make([]byte, 0, enc),
	}
}

// Reset forgets any partial frame (after reopening a port, say). The next
// bytes are taken as the start of a frame.
func (d *FrameDecoder) Reset() {
	d.acc = d.acc[:0]
	d.discarding = false
}

// Buffered returns how many bytes of a partial frame are held.
func (d *FrameDecoder) Buffered() int { return len(d.acc) }

// Feed consumes p, which may hold any number of frames or parts of frames.
// For each complete frame it calls onFrame; for each dropped frame it calls
// onDrop (either may be nil). Frame.Payload aliases the decoder's buffer: it
// is valid only until onFrame returns; copy it to keep it. The callbacks
// must not call Feed. p is not retained.
//
// Empty frames (0x00 bytes with nothing before them, such as leading zeros
// sent to flush a line) are skipped silently. After garbage, a torn frame, a
// bad CRC or an oversize frame, the decoder resynchronises at the next 0x00.
// An oversize frame is reported as soon as it passes the limit, and its
// remaining bytes are discarded without being stored.
func (d *FrameDecoder) Feed(p []byte, onFrame func(Frame), onDrop func(Drop)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, 0)
		seg := p
		if i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if d.discarding {
			if i >= 0 {
				d.discarding = false
			}
			continue
		}
		if len(d.acc)+len(seg) > d.maxEnc {
			d.acc = d.acc[:0]
			d.discarding = i < 0
			if onDrop != nil {
				onDrop(Drop{Reason: DropTooLarge, Err: newErr("frame", ErrTooLarge, -1,
					"frame longer than "+strconv.Itoa(d.maxEnc)+" encoded bytes; discarded up to the next 0x00")})
			}
			continue
		}
		if i < 0 {
			d.acc = append(d.acc, seg...)
			continue
		}
		enc := seg
		if len(d.acc) > 0 {
			d.acc = append(d.acc, seg...)
			enc = d.acc
		}
		if len(enc) > 0 {
			d.frame(enc, onFrame, onDrop)
		}
		d.acc = d.acc[:0]
	}
}

// frame decodes one COBS-encoded frame (delimiter removed).
func (d *FrameDecoder) frame(enc []byte, onFrame func(Frame), onDrop func(Drop)) {
	raw, err := DecodeCOBS(d.out[:0], enc)
	d.out = raw[:0]
	drop := func(r DropReason, hasSeq bool, seq uint16, err error) {
		if onDrop != nil {
			onDrop(Drop{Reason: r, HasSeq: hasSeq, Seq: seq, Err: err})
		}
	}
	if err != nil {
		drop(DropBadCOBS, false, 0, err)
		return
	}
	if len(raw) < FrameHeaderLen {
		drop(DropTooShort, false, 0, newErr("frame", ErrMalformed, -1,
			"frame of "+strconv.Itoa(len(raw))+" bytes, shorter than a header"))
		return
	}
	seq := uint16(raw[1])<<8 | uint16(raw[2])
	if len(raw) < FrameHeaderLen+FrameCRCLen {
		drop(DropTooShort, true, seq, newErr("frame", ErrMalformed, -1,
			"frame of "+strconv.Itoa(len(raw))+" bytes, shorter than header and CRC"))
		return
	}
	n := len(raw) - FrameCRCLen
	got := uint16(raw[n])<<8 | uint16(raw[n+1])
	if want := CRC16(raw[:n]); got != want {
		drop(DropBadCRC, true, seq, newErr("frame", ErrMalformed, -1,
			"CRC 0x"+strconv.FormatUint(uint64(got), 16)+", computed 0x"+strconv.FormatUint(uint64(want), 16)))
		return
	}
	if v := raw[0] >> 4; v != FrameVersion {
		drop(DropBadVersion, true, seq, newErr("frame", ErrVersion, -1,
			"frame version "+strconv.Itoa(int(v))+", this end speaks "+strconv.Itoa(FrameVersion)))
		return
	}
	t := FrameType(raw[0] & 0x0f)
	if t > FrameReset {
		drop(DropBadType, true, seq, newErr("frame", ErrBadValue, -1, "unknown frame type "+strconv.Itoa(int(t))))
		return
	}
	payload := raw[FrameHeaderLen:n]
	if len(payload) > d.maxPayload {
		drop(DropTooLarge, true, seq, newErr("frame", ErrTooLarge, -1, "payload of "+
			strconv.Itoa(len(payload))+" bytes, over "+strconv.Itoa(d.maxPayload)))
		return
	}
	if onFrame != nil {
		onFrame(Frame{Type: t, Seq: seq, Payload: payload})
	}
}
