package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

func TestSEIRoundTrip(t *testing.T) {
	for _, ts := range []int64{0, 1, 0x0100000000000000, 1_700_000_000_123_456_789, math.MaxInt64, -1} {
		n := appendSEI(nil, ts)
		if len(n) != seiNALUSize {
			t.Errorf("%d: SEI is %d bytes, want %d", ts, len(n), seiNALUSize)
		}
		if n[0]&0x1f != naluTypeSEI || n[len(n)-1] != 0x80 {
			t.Errorf("%d: bad NAL header or trailing bits: % x", ts, n)
		}
		// No start code or emulation-prone sequence may appear.
		if bytes.Contains(n, []byte{0, 0}) {
			t.Errorf("%d: SEI holds 00 00: % x", ts, n)
		}
		got, ok := parseSEITime(n)
		if !ok || got != ts {
			t.Errorf("%d: parsed %d, %v", ts, got, ok)
		}
	}
}

func TestEscapeUnescape(t *testing.T) {
	for _, rbsp := range [][]byte{
		{0, 0, 0}, {0, 0, 1}, {0, 0, 2}, {0, 0, 3}, {0, 0, 4}, {1, 0, 0, 0, 0, 3, 0, 0},
		{0, 0, 3, 0, 0, 3}, {}, {0xff, 0, 0, 0, 0, 0, 0, 1},
	} {
		esc := appendEscaped(nil, rbsp)
		for i := 2; i < len(esc); i++ {
			if esc[i-2] == 0 && esc[i-1] == 0 && esc[i] <= 2 {
				t.Errorf("% x escaped to % x: holds 00 00 %02x", rbsp, esc, esc[i])
			}
		}
		if got := unescape(esc); !bytes.Equal(got, rbsp) {
			t.Errorf("% x -> % x -> % x", rbsp, esc, got)
		}
	}
}

// A SEI from another source (different payload type or UUID) before the
// bench's message in the same NAL unit, with escaped bytes, still parses.
func TestParseSEIForeign(t *testing.T) {
	rbsp := []byte{
		1, 3, 0, 0, 1, // payload type 1 (pic timing), size 3, holding 00 00 01
		5, 18, // user data unregistered from someone else
	}
	rbsp = append(rbsp, bytes.Repeat([]byte{0}, 16)...)
	rbsp = append(rbsp, 'x', 'y')
	own := appendSEI(nil, 42)[1 : seiNALUSize-1] // type, size, payload
	rbsp = append(rbsp, own...)
	rbsp = append(rbsp, 0x80)
	nalu := appendEscaped([]byte{naluTypeSEI}, rbsp)
	if got, ok := parseSEITime(nalu); !ok || got != 42 {
		t.Fatalf("got %d, %v", got, ok)
	}
	if _, ok := parseSEITime(append([]byte{naluTypeSEI}, rbsp[:7]...)); ok {
		t.Fatal("truncated SEI parsed")
	}
	if _, ok := parseSEITime([]byte{0x65, 1, 2}); ok {
		t.Fatal("IDR slice parsed as SEI")
	}
}

func TestFiller(t *testing.T) {
	f := appendFiller(nil, 10)
	if len(f) != 10 || f[0] != naluTypeFiller || f[9] != 0x80 || !bytes.Equal(f[1:9], bytes.Repeat([]byte{0xff}, 8)) {
		t.Fatalf("% x", f)
	}
	if f := appendFiller(nil, 2); !bytes.Equal(f, []byte{naluTypeFiller, 0x80}) {
		t.Fatalf("% x", f)
	}
}

func TestAVCCInfo(t *testing.T) {
	var au []byte
	add := func(n []byte) {
		au = binary.BigEndian.AppendUint32(au, uint32(len(n)))
		au = append(au, n...)
	}
	add([]byte{0x09, 0xf0})          // AUD
	add(appendSEI(nil, 123456789))   // ours
	add([]byte{0x65, 0x88, 0x84, 0}) // IDR
	add(appendFiller(nil, 100))
	idr, pub, ok := avccInfo(au)
	if !idr || !ok || pub != 123456789 {
		t.Fatalf("idr %v pub %d ok %v", idr, pub, ok)
	}
	idr, _, ok = avccInfo([]byte{0, 0, 0, 2, 0x41, 0x9a})
	if idr || ok {
		t.Fatal("P slice reported as IDR or with SEI")
	}
	// A length running past the end stops the scan without panicking.
	if idr, _, _ := avccInfo([]byte{0, 0, 0, 9, 0x65}); idr {
		t.Fatal("truncated NALU counted")
	}
}

func TestNALUsInfo(t *testing.T) {
	sei := appendSEI(nil, 42)
	other := append([]byte{naluTypeSEI}, appendEscaped(nil, []byte{1, 1, 0x80})...) // another SEI message
	tests := []struct {
		name        string
		nalus       [][]byte
		idr, hasPub bool
		pub         int64
	}{
		{"IDR with SEI", [][]byte{{0x67, 0x42}, {0x68, 0xce}, sei, {0x65, 0x88}}, true, true, 42},
		{"P with SEI", [][]byte{sei, {0x41, 0x9a}}, false, true, 42},
		{"foreign SEI only", [][]byte{other, {0x41, 0x9a}}, false, false, 0},
		{"first bench SEI wins", [][]byte{other, sei, appendSEI(nil, 7), {0x41}}, false, true, 42},
		{"empty NAL units skipped", [][]byte{nil, {}, {0x65}}, true, false, 0},
		{"nothing", nil, false, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idr, pub, ok := nalusInfo(tc.nalus)
			if idr != tc.idr || ok != tc.hasPub || pub != tc.pub {
				t.Fatalf("idr %v pub %d ok %v, want %v %d %v", idr, pub, ok, tc.idr, tc.pub, tc.hasPub)
			}
		})
	}
}
