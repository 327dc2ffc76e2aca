package main

import (
	"bytes"
	"encoding/binary"
)

// H.264 NAL unit types the bench writes or looks for.
const (
	naluTypeIDR    = 5
	naluTypeSEI    = 6
	naluTypeFiller = 12

	seiTypeUserDataUnregistered = 5
)

// benchUUID marks the bench's SEI message (user_data_unregistered). It has
// no zero byte, and the timestamp after it is written as hex ASCII, so the
// encoded SEI holds no 0x00 at all and never needs emulation prevention.
// The encoder still escapes and the decoder still unescapes, so that the
// format stays correct if either choice changes.
var benchUUID = [16]byte{'l', 'i', 'v', 'e', 'e', 'd', 'g', 'e', '-', 'b', 'e', 'n', 'c', 'h', '/', '1'}

// seiPayloadSize is the user_data_unregistered payload: UUID + 16 hex digits.
const seiPayloadSize = 16 + 16

// seiNALUSize is the size of the NAL unit appendSEI writes: header, payload
// type, payload size, payload, rbsp_trailing_bits.
const seiNALUSize = 1 + 1 + 1 + seiPayloadSize + 1

const hexDigits = "0123456789abcdef"

// appendSEI appends an SEI NAL unit (nal_ref_idc 0, type 6) with one
// user_data_unregistered message carrying benchUUID and unixNano as 16
// big-endian hex digits.
func appendSEI(dst []byte, unixNano int64) []byte {
	var rbsp [seiNALUSize - 1]byte
	rbsp[0] = seiTypeUserDataUnregistered
	rbsp[1] = seiPayloadSize
	copy(rbsp[2:], benchUUID[:])
	v := uint64(unixNano)
	for i := 15; i >= 0; i-- {
		rbsp[2+16+i] = hexDigits[v&0xf]
		v >>= 4
	}
	rbsp[len(rbsp)-1] = 0x80 // rbsp_stop_one_bit + alignment
	dst = append(dst, naluTypeSEI)
	return appendEscaped(dst, rbsp[:])
}

// appendEscaped appends rbsp with emulation prevention: a 0x03 is inserted
// after every 00 00 that is followed by a byte <= 3.
func appendEscaped(dst, rbsp []byte) []byte {
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}

// unescape removes emulation prevention bytes (the 03 of 00 00 03).
func unescape(b []byte) []byte {
	if !bytes.Contains(b, []byte{0, 0, 3}) {
		return b
	}
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// parseSEITime returns the publisher timestamp of a bench SEI NAL unit.
func parseSEITime(nalu []byte) (int64, bool) {
	if len(nalu) < 2 || nalu[0]&0x1f != naluTypeSEI {
		return 0, false
	}
	b := unescape(nalu[1:])
	for len(b) > 0 && b[0] != 0x80 {
		var typ, size int
		for len(b) > 0 && b[0] == 0xff {
			typ += 255
			b = b[1:]
		}
		if len(b) == 0 {
			return 0, false
		}
		typ += int(b[0])
		b = b[1:]
		for len(b) > 0 && b[0] == 0xff {
			size += 255
			b = b[1:]
		}
		if len(b) == 0 {
			return 0, false
		}
		size += int(b[0])
		b = b[1:]
		if size > len(b) {
			return 0, false
		}
		payload := b[:size]
		b = b[size:]
		if typ != seiTypeUserDataUnregistered || size < seiPayloadSize ||
			!bytes.Equal(payload[:16], benchUUID[:]) {
			continue
		}
		var v uint64
		for _, c := range payload[16:32] {
			var d byte
			switch {
			case c >= '0' && c <= '9':
				d = c - '0'
			case c >= 'a' && c <= 'f':
				d = c - 'a' + 10
			default:
				return 0, false
			}
			v = v<<4 | uint64(d)
		}
		return int64(v), true
	}
	return 0, false
}

// appendFiller appends a filler-data NAL unit (type 12) of n bytes in
// total: header, n-2 bytes 0xFF, rbsp_trailing_bits. n must be >= 2.
func appendFiller(dst []byte, n int) []byte {
	dst = append(dst, naluTypeFiller)
	for range n - 2 {
		dst = append(dst, 0xff)
	}
	return append(dst, 0x80)
}

// auInfo is what the bench looks for in an access unit: whether it holds
// an IDR slice, and the publisher timestamp of its first bench SEI. Every
// viewer kind feeds it the NAL units it received, whatever their framing.
type auInfo struct {
	idr    bool
	pub    int64
	hasPub bool
}

// add looks at one NAL unit.
func (a *auInfo) add(nalu []byte) {
	if len(nalu) == 0 {
		return
	}
	switch nalu[0] & 0x1f {
	case naluTypeIDR:
		a.idr = true
	case naluTypeSEI:
		if !a.hasPub {
			a.pub, a.hasPub = parseSEITime(nalu)
		}
	}
}

// avccInfo scans an AVCC access unit (4-byte NAL unit lengths): whether it
// holds an IDR slice, and the bench SEI timestamp if it holds one.
func avccInfo(b []byte) (idr bool, pub int64, hasPub bool) {
	var a auInfo
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) || n == 0 {
			break
		}
		a.add(b[:n])
		b = b[n:]
	}
	return a.idr, a.pub, a.hasPub
}

// nalusInfo is avccInfo for an access unit already split into NAL units
// (RTP depacketizers).
func nalusInfo(nalus [][]byte) (idr bool, pub int64, hasPub bool) {
	var a auInfo
	for _, n := range nalus {
		a.add(n)
	}
	return a.idr, a.pub, a.hasPub
}

// isVCL reports whether an H.264 NAL unit type carries slice data.
func isVCL(typ byte) bool { return typ >= 1 && typ <= 5 }
