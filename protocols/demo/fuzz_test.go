package demo

import (
	"encoding/binary"
	"testing"
	"time"
)

// clipPrefix returns the FLV header and the first n tags of the embedded
// clip: a small but real file (sequence headers and the first frames).
func clipPrefix(n int) []byte {
	off := int(binary.BigEndian.Uint32(clipFLV[5:9])) + 4
	for i := 0; i < n && off+11 <= len(clipFLV); i++ {
		size := int(clipFLV[off+1])<<16 | int(clipFLV[off+2])<<8 | int(clipFLV[off+3])
		off += 11 + size + 4
	}
	return clipFLV[:min(off, len(clipFLV))]
}

// flvTag encodes one FLV tag and its PreviousTagSize.
func flvTag(typ byte, ms uint32, body []byte) []byte {
	n := len(body)
	b := []byte{typ, byte(n >> 16), byte(n >> 8), byte(n), byte(ms >> 16), byte(ms >> 8), byte(ms), byte(ms >> 24), 0, 0, 0}
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, uint32(11+n))
}

// smallClip is the clip's header and sequence headers followed by tiny
// video (a 4-byte IDR or non-IDR slice) and audio frames at the given
// timestamps (ms; negative for audio), after the audio frame at 0 that
// the first four tags of the clip end with.
func smallClip(ts ...int) []byte {
	b := append([]byte(nil), clipPrefix(4)...)
	for i, t := range ts {
		switch {
		case t < 0:
			b = append(b, flvTag(8, uint32(-t), []byte{0xaf, 1, 0x21, 0x10})...)
		case i == 0:
			b = append(b, flvTag(9, uint32(t), []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 4, 0x65, 0x88, 0x84, 0x00})...)
		default:
			b = append(b, flvTag(9, uint32(t), []byte{0x27, 1, 0, 0, 0x28, 0, 0, 0, 4, 0x41, 0x9a, 0x02, 0x00})...)
		}
	}
	return b
}

// fuzzFLVSeeds are the seed files: real prefixes of the clip, truncations
// of one, and the bad inputs of TestParseFLVRejectsBadInput.
func fuzzFLVSeeds() [][]byte {
	small := clipPrefix(4)
	return [][]byte{
		nil,
		[]byte("GIF89a......."),
		clipFLV[:13],
		clipFLV[:200],
		clipPrefix(2),
		small,
		clipPrefix(8),
		small[:len(small)-7],
		smallClip(0, -1, 40, -21, 80),
		smallClip(1000, 1040, -1050, 0),
		smallClip(-5, 100, -90, 140),
	}
}

// FuzzParseFLV feeds random and truncated FLV files (offline slates are
// files read from disk) to ParseFLV. A clip that parses must be playable
// by Feed: a positive loop period, a video track, and frames on the loop's
// timeline (0 <= DTS < Duration) so that looping keeps timestamps
// increasing.
func FuzzParseFLV(f *testing.F) {
	for _, b := range fuzzFLVSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseFLV(b)
		if err != nil {
			if c != nil {
				t.Fatal("a clip with an error")
			}
			return
		}
		if c.Video == nil || len(c.Frames) == 0 {
			t.Fatalf("clip without video or frames: %+v", c)
		}
		if c.Duration <= 0 {
			t.Fatalf("Duration = %v", c.Duration)
		}
		for i, fr := range c.Frames {
			if fr.DTS < 0 || fr.DTS >= c.Duration {
				t.Fatalf("frame %d: DTS %v outside [0, %v)", i, fr.DTS, c.Duration)
			}
		}
	})
}

// TestParseFLVSeedsInvariants runs the seeds with the real clip, which
// must parse, as a table test.
func TestParseFLVSeedsInvariants(t *testing.T) {
	c, err := ParseFLV(clipFLV)
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range c.Frames {
		if fr.DTS < 0 || fr.DTS >= c.Duration {
			t.Fatalf("frame %d: DTS %v outside [0, %v)", i, fr.DTS, c.Duration)
		}
	}
	if c.Duration < time.Second {
		t.Fatalf("Duration = %v", c.Duration)
	}
}

// TestParseFLVSmallClips: the hand-made seeds, as a table.
func TestParseFLVSmallClips(t *testing.T) {
	for _, tc := range []struct {
		name   string
		b      []byte
		ok     bool
		frames int
	}{
		{"video and audio", smallClip(0, -1, 40, -21, 80), true, 6},
		// The last video frame goes back in time: the loop still spans
		// the latest one, and the audio frame before 0 is dropped.
		{"timestamps going back", smallClip(1000, 1040, -1050, 0), true, 3},
		{"audio before video", smallClip(-5, 100, -90, 140), true, 2},
		{"sequence headers only", clipPrefix(4), false, 0},
		{"audio frames only", smallClip(-1, -2), false, 0},
	} {
		c, err := ParseFLV(tc.b)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if err == nil && len(c.Frames) != tc.frames {
			t.Errorf("%s: %d frames, want %d", tc.name, len(c.Frames), tc.frames)
		}
	}
}
