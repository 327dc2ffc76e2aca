package whepclient

import (
	"bytes"
	"testing"
)

// pkt is one RTP packet of a test: sequence number, timestamp, marker and
// payload.
type pkt struct {
	seq    uint16
	ts     uint32
	marker bool
	data   []byte
}

func TestAssemblerNALUs(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1f}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	sei := []byte{0x06, 0x05, 0x01, 0xaa, 0x80}
	idr := append([]byte{0x65}, bytes.Repeat([]byte{0x11, 0x22, 0x33}, 10)...)
	stap := func(nalus ...[]byte) []byte {
		b := []byte{0x78} // NRI 3, type 24
		for _, n := range nalus {
			b = append(b, byte(len(n)>>8), byte(len(n)))
			b = append(b, n...)
		}
		return b
	}
	// fu splits a NAL unit into FU-A fragments of the given sizes (of
	// the unit's payload after its header).
	fu := func(n []byte, sizes ...int) [][]byte {
		var out [][]byte
		data := n[1:]
		for i, s := range sizes {
			h := n[0] & 0x1f
			if i == 0 {
				h |= 0x80
			}
			if i == len(sizes)-1 {
				h |= 0x40
			}
			out = append(out, append([]byte{n[0]&0xe0 | 28, h}, data[:s]...))
			data = data[s:]
		}
		return out
	}
	frag := fu(idr, 10, 10, len(idr)-21)
	tests := []struct {
		name       string
		pkts       []pkt
		want       [][][]byte // NAL units of each complete frame
		incomplete int
	}{
		{
			name: "single NAL units",
			pkts: []pkt{{1, 90, false, sei}, {2, 90, true, []byte{0x41, 0x9a}}},
			want: [][][]byte{{sei, {0x41, 0x9a}}},
		},
		{
			name: "STAP-A then FU-A",
			pkts: []pkt{{1, 90, false, stap(sps, pps, sei)}, {2, 90, false, frag[0]}, {3, 90, false, frag[1]}, {4, 90, true, frag[2]}},
			want: [][][]byte{{sps, pps, sei, idr}},
		},
		{
			name:       "lost FU-A fragment drops the frame",
			pkts:       []pkt{{1, 90, false, stap(sps, pps)}, {2, 90, false, frag[0]}, {4, 90, true, frag[2]}, {5, 180, true, []byte{0x41, 1}}},
			want:       [][][]byte{{{0x41, 1}}},
			incomplete: 1,
		},
		{
			name:       "first packet mid FU-A",
			pkts:       []pkt{{7, 90, false, frag[1]}, {8, 90, true, frag[2]}, {9, 180, true, sei}},
			want:       [][][]byte{{sei}},
			incomplete: 1,
		},
		{
			name:       "new timestamp before the marker",
			pkts:       []pkt{{1, 90, false, frag[0]}, {2, 180, true, []byte{0x41, 2}}},
			want:       [][][]byte{{{0x41, 2}}},
			incomplete: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := assembler{keep: true}
			var got [][][]byte
			incomplete := 0
			for _, p := range tc.pkts {
				f, ok, broken := a.push(p.seq, p.ts, p.marker, p.data)
				if broken {
					incomplete++
				}
				if ok {
					if len(f.NALUs) != len(f.NALTypes) {
						t.Fatalf("%d NAL units, %d types", len(f.NALUs), len(f.NALTypes))
					}
					got = append(got, f.NALUs)
				}
			}
			if incomplete != tc.incomplete {
				t.Errorf("incomplete %d, want %d", incomplete, tc.incomplete)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d frames, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if len(got[i]) != len(tc.want[i]) {
					t.Fatalf("frame %d: %d NAL units, want %d", i, len(got[i]), len(tc.want[i]))
				}
				for j := range got[i] {
					if !bytes.Equal(got[i][j], tc.want[i][j]) {
						t.Errorf("frame %d NAL unit %d: % x, want % x", i, j, got[i][j], tc.want[i][j])
					}
				}
			}
		})
	}

	// Without keep, no NAL unit is kept.
	a := assembler{}
	if f, ok, _ := a.push(1, 90, true, sei); !ok || f.NALUs != nil {
		t.Fatalf("without keep: %v %v", ok, f.NALUs)
	}
}
