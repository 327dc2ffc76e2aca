package webrtc

import (
	"encoding/binary"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// maxPayload is the largest RTP payload the packetizer makes: a 1200-byte
// packet (the common WebRTC MTU budget) less the 12-byte RTP header and
// room for header extensions and the SRTP tag.
const maxPayload = 1160

// packetizeH264 splits one access unit into RTP payloads (RFC 6184,
// packetization-mode=1): NAL units that fit are aggregated into STAP-A
// packets (or sent alone), larger ones are fragmented into FU-A packets.
// Access unit delimiters and filler data are dropped. On a keyframe that
// does not carry its parameter sets, sps and pps are put in front, so
// that every keyframe a viewer gets is decodable on its own.
//
// The payloads are freshly allocated and never modified afterwards: every
// peer of the stream sends the same slices.
func packetizeH264(nalus [][]byte, key bool, sps, pps []byte) [][]byte {
	if key && len(sps) > 0 && len(pps) > 0 {
		hasSPS, hasPPS := false, false
		for _, n := range nalus {
			if len(n) == 0 {
				continue
			}
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				hasSPS = true
			case h264.NALUTypePPS:
				hasPPS = true
			}
		}
		if !hasSPS || !hasPPS {
			withPS := make([][]byte, 0, len(nalus)+2)
			withPS = append(withPS, sps, pps)
			for _, n := range nalus {
				if len(n) > 0 {
					t := h264.NALUType(n[0] & 0x1f)
					if t == h264.NALUTypeSPS || t == h264.NALUTypePPS {
						continue
					}
				}
				withPS = append(withPS, n)
			}
			nalus = withPS
		}
	}

	var out [][]byte
	var agg [][]byte // NAL units waiting to be sent, together at most maxPayload
	aggSize := 0     // STAP-A size if agg were sent as one
	flush := func() {
		switch len(agg) {
		case 0:
			return
		case 1:
			out = append(out, append([]byte(nil), agg[0]...))
		default:
			p := make([]byte, 0, aggSize)
			p = append(p, stapHeader(agg))
			for _, n := range agg {
				p = binary.BigEndian.AppendUint16(p, uint16(len(n)))
				p = append(p, n...)
			}
			out = append(out, p)
		}
		agg, aggSize = agg[:0], 0
	}
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			continue
		}
		if len(n) > maxPayload {
			flush()
			out = appendFUA(out, n)
			continue
		}
		size := aggSize
		if size == 0 {
			size = 1 // STAP-A header
		}
		size += 2 + len(n)
		if len(agg) > 0 && size > maxPayload {
			flush()
			size = 1 + 2 + len(n)
		}
		agg = append(agg, n)
		aggSize = size
	}
	flush()
	return out
}

// stapHeader is the STAP-A NAL header: F is the OR of the units' F bits,
// NRI their maximum, type 24.
func stapHeader(nalus [][]byte) byte {
	var f, nri byte
	for _, n := range nalus {
		f |= n[0] & 0x80
		nri = max(nri, n[0]&0x60)
	}
	return f | nri | 24
}

// appendFUA appends the FU-A fragments of one NAL unit.
func appendFUA(out [][]byte, n []byte) [][]byte {
	indicator := n[0]&0xe0 | 28
	typ := n[0] & 0x1f
	data := n[1:]
	const chunk = maxPayload - 2
	for first := true; len(data) > 0; first = false {
		size := min(len(data), chunk)
		fu := typ
		if first {
			fu |= 0x80
		}
		if size == len(data) {
			fu |= 0x40
		}
		p := make([]byte, 0, 2+size)
		p = append(p, indicator, fu)
		p = append(p, data[:size]...)
		out = append(out, p)
		data = data[size:]
	}
	return out
}
