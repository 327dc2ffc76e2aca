package hub

import (
	"bytes"
	"math"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// Parameter sets of real streams: the demo clip (H.264 Constrained
// Baseline 640x360, AAC-LC 48 kHz stereo) and protocols/rtmp's
// testdata/clip.h265 (x265).
var (
	seedH264SPS = []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00,
		0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xca, 0x80}
	seedH264PPS = []byte{0x68, 0xce, 0x3c, 0x80}
	seedH265VPS = []byte{0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
		0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x98, 0x09}
	seedH265SPS = []byte{0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
		0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a, 0x02, 0x00, 0x00,
		0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10}
	seedH265PPS = []byte{0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40}
	seedAAC     = []byte{0x11, 0x90, 0x56, 0xe5, 0x00}
)

// checkVideoTrack checks what every video track must satisfy: the
// parameter sets are copies of the input, the picture size is not
// negative and the frame rate is a usable number (0 when unknown).
func checkVideoTrack(t *testing.T, tr *Track, c Codec, vps, sps, pps []byte) {
	t.Helper()
	if tr.Codec != c || !bytes.Equal(tr.VPS, vps) || !bytes.Equal(tr.SPS, sps) || !bytes.Equal(tr.PPS, pps) {
		t.Fatalf("track %+v does not carry its parameter sets", tr)
	}
	if len(sps) > 0 && &tr.SPS[0] == &sps[0] {
		t.Fatal("the track shares the caller's SPS")
	}
	if tr.Width < 0 || tr.Height < 0 {
		t.Fatalf("size %dx%d", tr.Width, tr.Height)
	}
	if math.IsNaN(tr.FPS) || math.IsInf(tr.FPS, 0) || tr.FPS < 0 {
		t.Fatalf("FPS = %v", tr.FPS)
	}
}

func FuzzNewH264Track(f *testing.F) {
	f.Add(seedH264SPS, seedH264PPS)
	f.Add(seedH264SPS[:10], seedH264PPS)
	f.Add([]byte{0x67, 0xff}, seedH264PPS)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, sps, pps []byte) {
		tr, err := NewH264Track(sps, pps)
		if err != nil {
			return
		}
		checkVideoTrack(t, tr, CodecH264, nil, sps, pps)
		again, err := NewH264Track(tr.SPS, tr.PPS)
		if err != nil || !again.Equal(tr) {
			t.Fatalf("the track's own parameter sets give %+v, %v", again, err)
		}
	})
}

func FuzzNewH265Track(f *testing.F) {
	f.Add(seedH265VPS, seedH265SPS, seedH265PPS)
	f.Add(seedH265VPS, seedH265SPS[:12], seedH265PPS)
	f.Add([]byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, vps, sps, pps []byte) {
		tr, err := NewH265Track(vps, sps, pps)
		if err != nil {
			return
		}
		checkVideoTrack(t, tr, CodecH265, vps, sps, pps)
		again, err := NewH265Track(tr.VPS, tr.SPS, tr.PPS)
		if err != nil || !again.Equal(tr) {
			t.Fatalf("the track's own parameter sets give %+v, %v", again, err)
		}
	})
}

// FuzzNewAACTrack: an AudioSpecificConfig that parses gives a track with a
// positive rate and a channel count (0 when a program config element
// defines the layout), and its config re-marshals to a config that parses
// to the same track.
func FuzzNewAACTrack(f *testing.F) {
	f.Add(seedAAC)
	f.Add(seedAAC[:2])
	f.Add([]byte{0x12, 0x10})
	f.Add([]byte{0x13, 0x88})
	f.Add([]byte{0x11, 0x00}) // channel configuration 0: layout in a PCE
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, asc []byte) {
		tr, err := NewAACTrack(asc)
		if err != nil {
			return
		}
		if tr.Codec != CodecAAC || !bytes.Equal(tr.AudioConfig, asc) || tr.SampleRate <= 0 || tr.Channels < 0 {
			t.Fatalf("track %+v from % x", tr, asc)
		}
		var c mpeg4audio.AudioSpecificConfig
		if err := c.Unmarshal(asc); err != nil {
			t.Fatal(err)
		}
		b, err := c.Marshal()
		if err != nil {
			return // not every parsed config re-marshals (e.g. PCE)
		}
		again, err := NewAACTrack(b)
		if err != nil || again.SampleRate != tr.SampleRate || again.Channels != tr.Channels {
			t.Fatalf("re-marshaled % x gives %+v, %v; want %+v", b, again, err, tr)
		}
	})
}

func FuzzNewOpusTrack(f *testing.F) {
	for _, n := range []int{-1, 0, 1, 2, 8, 255} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int) {
		tr := NewOpusTrack(n)
		if tr.Codec != CodecOpus || tr.SampleRate != 48000 || tr.Channels <= 0 || (n > 0 && tr.Channels != n) {
			t.Fatalf("NewOpusTrack(%d) = %+v", n, tr)
		}
	})
}

// splitNALUs reads NALUs each prefixed by a one-byte length (so empty
// NALUs can be expressed); a short last NALU takes what is left.
func splitNALUs(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(int(b[0]), len(b)-1)
		out = append(out, b[1:1+n])
		b = b[1+n:]
	}
	return out
}

func joinNALUs(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, byte(len(n)))
		b = append(b, n...)
	}
	return b
}

// FuzzIsKeyframe: IsKeyframe never panics on what a publisher sends, is
// true exactly when a NALU is an IDR (H.264) or IRAP picture the codec
// starts on (H.265: IDR_W_RADL, IDR_N_LP, CRA), and false for audio.
func FuzzIsKeyframe(f *testing.F) {
	f.Add(uint8(CodecH264), joinNALUs(seedH264SPS, seedH264PPS, []byte{0x65, 0x88, 0x84}))
	f.Add(uint8(CodecH264), joinNALUs([]byte{0x41, 0x9a}))
	f.Add(uint8(CodecH264), joinNALUs([]byte{}, []byte{0x65}))
	f.Add(uint8(CodecH265), joinNALUs(seedH265VPS, seedH265SPS, seedH265PPS, []byte{0x26, 0x01, 0xaf}))
	f.Add(uint8(CodecH265), joinNALUs([]byte{0x02, 0x01}))
	f.Add(uint8(CodecAAC), joinNALUs([]byte{0x65}))
	f.Fuzz(func(t *testing.T, codec uint8, b []byte) {
		c := Codec(codec)
		nalus := splitNALUs(b)
		got := IsKeyframe(c, nalus)
		want := false
		for _, n := range nalus {
			if len(n) == 0 {
				continue
			}
			switch c {
			case CodecH264:
				want = want || n[0]&0x1f == 5
			case CodecH265:
				typ := (n[0] >> 1) & 0x3f
				want = want || typ == 19 || typ == 20 || typ == 21
			}
		}
		if got != want {
			t.Fatalf("IsKeyframe(%v, %x) = %v, want %v", c, nalus, got, want)
		}
	})
}
