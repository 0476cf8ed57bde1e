package wire

import (
	"bytes"
	"slices"
	"strconv"
)

// COBS (Consistent Overhead Byte Stuffing, Cheshire & Baker 1999) removes
// every 0x00 from a frame so that 0x00 can delimit frames on a serial line.
// The encoding is a sequence of blocks: a code byte n (1–255) followed by
// n−1 non-zero data bytes; a block with n < 255 stands for its data followed
// by one 0x00, except the last block of the frame; n = 255 means 254 data
// bytes with no 0x00 after them.

// COBSMaxEncodedLen is the largest COBS encoding of n bytes, without the
// 0x00 delimiter: n + ⌊n/254⌋ + 1.
func COBSMaxEncodedLen(n int) int { return n + n/254 + 1 }

// AppendCOBS appends the COBS encoding of src to dst (without a trailing
// 0x00 delimiter) and returns the extended slice. The encoding of an empty
// src is the single byte 0x01.
func AppendCOBS(dst, src []byte) []byte {
	dst = slices.Grow(dst, COBSMaxEncodedLen(len(src)))
	var w cobsWriter
	w.begin(dst)
	w.write(src)
	return w.end()
}

// cobsWriter encodes a frame written in several pieces.
type cobsWriter struct {
	b    []byte
	code int // index of the current block's code byte in b
	n    int // data bytes in the current block (0..253)
}

func (w *cobsWriter) begin(dst []byte) {
	w.code = len(dst)
	w.b = append(dst, 0)
	w.n = 0
}

func (w *cobsWriter) closeBlock(code byte) {
	w.b[w.code] = code
	w.code = len(w.b)
	w.b = append(w.b, 0)
	w.n = 0
}

func (w *cobsWriter) write(p []byte) {
	for len(p) > 0 {
		chunk := p
		if room := 254 - w.n; len(chunk) > room {
			chunk = chunk[:room]
		}
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			w.b = append(w.b, chunk[:i]...)
			w.n += i
			w.closeBlock(byte(w.n + 1))
			p = p[i+1:]
			continue
		}
		w.b = append(w.b, chunk...)
		w.n += len(chunk)
		p = p[len(chunk):]
		if w.n == 254 {
			w.closeBlock(0xff)
		}
	}
}

func (w *cobsWriter) end() []byte {
	w.b[w.code] = byte(w.n + 1)
	return w.b
}

// DecodeCOBS appends the decoding of the COBS data src (without its 0x00
// delimiter) to dst and returns the extended slice. It fails with ErrMalformed
// if src is empty, contains 0x00, or its last block is cut short. dst may be
// src[:0]: decoding in place is safe, the output never overtakes the input.
//
// A final 0xFF block may or may not be followed by a 0x01 block; both decode
// to the same bytes (AppendCOBS writes the 0x01).
func DecodeCOBS(dst, src []byte) ([]byte, error) {
	if len(src) == 0 {
		return dst, newErr("cobs", ErrMalformed, -1, "empty COBS data (the shortest encoding is 0x01)")
	}
	for i := 0; i < len(src); {
		code := int(src[i])
		if code == 0 {
			return dst, newErr("cobs", ErrMalformed, -1, "0x00 inside COBS data at offset "+strconv.Itoa(i))
		}
		i++
		end := i + code - 1
		if end > len(src) {
			return dst, newErr("cobs", ErrMalformed, -1, "COBS block at offset "+strconv.Itoa(i-1)+
				" runs past the end of the frame (torn frame)")
		}
		blk := src[i:end]
		if j := bytes.IndexByte(blk, 0); j >= 0 {
			return dst, newErr("cobs", ErrMalformed, -1, "0x00 inside COBS data at offset "+strconv.Itoa(i+j))
		}
		dst = append(dst, blk...)
		i = end
		if code < 0xff && i < len(src) {
			dst = append(dst, 0)
		}
	}
	return dst, nil
}
