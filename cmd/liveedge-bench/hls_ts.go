package main

import (
	"bytes"
	"errors"
	"fmt"
)

// A small MPEG-TS scanner for the bench's HLS-TS clients. Hundreds of
// clients decode every segment on the machine that runs the server, so the
// decoding has to be cheap: this one finds the first program's H.264
// stream through PAT and PMT and hands each of its PES payloads (one access
// unit, Annex-B) to a callback, without copying packets or allocating per
// packet. mediacommon's mpegts reader (astits) does the same ~10× slower;
// hls_ts_test.go checks this one against segments it writes.

const tsPacketSize = 188

var errTSSync = errors.New("mpegts: lost sync")

// tsScanner holds the buffer reused across segments.
type tsScanner struct{ pes []byte }

// scan calls fn with each H.264 access unit of a segment, in order. The
// slice is valid during the call only.
func (s *tsScanner) scan(b []byte, fn func(au []byte)) error {
	pmtPID, videoPID := -1, -1
	s.pes = s.pes[:0]
	started := false
	for off := 0; off+tsPacketSize <= len(b); off += tsPacketSize {
		p := b[off : off+tsPacketSize]
		if p[0] != 0x47 {
			return errTSSync
		}
		pusi := p[1]&0x40 != 0
		pid := int(p[1]&0x1f)<<8 | int(p[2])
		afc := p[3] >> 4 & 3
		payload := p[4:]
		if afc&2 != 0 {
			n := int(p[4])
			if 5+n > len(p) {
				return fmt.Errorf("mpegts: bad adaptation field length %d", n)
			}
			payload = p[5+n:]
		}
		if afc&1 == 0 || len(payload) == 0 {
			continue
		}
		switch {
		case pid == 0 && pusi && pmtPID < 0:
			pmtPID = tsPATFirstPMT(payload)
		case pid == pmtPID && pusi && videoPID < 0:
			videoPID = tsPMTH264(payload)
		case pid == videoPID && videoPID >= 0:
			if pusi {
				if started && len(s.pes) > 0 {
					fn(s.pes)
				}
				s.pes = s.pes[:0]
				started = false
				// PES header: start code, stream id, length, two flag
				// bytes, header data length.
				if len(payload) < 9 || payload[0] != 0 || payload[1] != 0 || payload[2] != 1 {
					continue
				}
				h := 9 + int(payload[8])
				if h > len(payload) {
					continue
				}
				payload = payload[h:]
				started = true
			}
			if started {
				s.pes = append(s.pes, payload...)
			}
		}
	}
	if videoPID < 0 {
		return errors.New("mpegts: no H.264 stream")
	}
	if started && len(s.pes) > 0 {
		fn(s.pes)
	}
	return nil
}

// psiSection returns the section a PSI payload starts (after the pointer
// field), bounded by its section_length, without the CRC.
func psiSection(payload []byte) []byte {
	ptr := int(payload[0])
	if 1+ptr+3 > len(payload) {
		return nil
	}
	sec := payload[1+ptr:]
	n := int(sec[1]&0x0f)<<8 | int(sec[2])
	if 3+n > len(sec) || n < 9 {
		return nil
	}
	return sec[:3+n-4]
}

// tsPATFirstPMT returns the PMT PID of the PAT's first program (-1: none).
func tsPATFirstPMT(payload []byte) int {
	sec := psiSection(payload)
	if sec == nil || sec[0] != 0 {
		return -1
	}
	for e := sec[8:]; len(e) >= 4; e = e[4:] {
		if e[0] != 0 || e[1] != 0 { // program 0 is the network PID
			return int(e[2]&0x1f)<<8 | int(e[3])
		}
	}
	return -1
}

// tsPMTH264 returns the PID of a PMT's first H.264 stream (-1: none).
func tsPMTH264(payload []byte) int {
	sec := psiSection(payload)
	if sec == nil || sec[0] != 2 || len(sec) < 12 {
		return -1
	}
	pil := int(sec[10]&0x0f)<<8 | int(sec[11])
	if 12+pil > len(sec) {
		return -1
	}
	for e := sec[12+pil:]; len(e) >= 5; {
		typ, pid := e[0], int(e[1]&0x1f)<<8|int(e[2])
		n := int(e[3]&0x0f)<<8 | int(e[4])
		if typ == 0x1b {
			return pid
		}
		if 5+n > len(e) {
			break
		}
		e = e[5+n:]
	}
	return -1
}

var annexBStart = []byte{0, 0, 1}

// annexBInfo scans an Annex-B access unit: whether it holds an IDR slice,
// and the bench SEI timestamp if it holds one.
func annexBInfo(au []byte) (idr bool, pub int64, hasPub bool) {
	for {
		i := bytes.Index(au, annexBStart)
		if i < 0 {
			return idr, pub, hasPub
		}
		au = au[i+3:]
		end := bytes.Index(au, annexBStart)
		nalu := au
		if end >= 0 {
			nalu = au[:end]
		}
		if len(nalu) > 0 {
			switch nalu[0] & 0x1f {
			case naluTypeIDR:
				idr = true
			case naluTypeSEI:
				if !hasPub {
					pub, hasPub = parseSEITime(nalu)
				}
			}
		}
		if end < 0 {
			return idr, pub, hasPub
		}
	}
}
