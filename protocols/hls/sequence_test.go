package hls

import (
	"net/url"
	"strings"
	"testing"
)

// TestSequenceAcrossRestarts: after a muxer restart the media sequence
// numbers a player sees go on from the last ones served, and its blocking
// requests are mapped back to the new muxer's numbering.
func TestSequenceAcrossRestarts(t *testing.T) {
	old := strings.Join([]string{"#EXTM3U", "#EXT-X-MEDIA-SEQUENCE:40",
		"#EXTINF:1.0,", "a_seg47.mp4", "#EXTINF:1.0,", "a_seg48.mp4",
		`#EXT-X-PART:DURATION=0.2,URI="a_part90.mp4"`,
		`#EXT-X-RENDITION-REPORT:URI="b.m3u8",LAST-MSN=49,LAST-PART=0`, ""}, "\n")
	var q sequence
	if got := q.rewrite([]byte(old), numbering{}); string(got) != old {
		t.Fatalf("base 0 changed the playlist:\n%s", got)
	}
	// Segments 40 and 41 listed, 42 in progress: a new LL-HLS muxer's
	// first segment (its number 7, after the gaps) is served as 43.
	n := q.restart(true)
	if n != (numbering{base: 36, disc: 1}) {
		t.Fatalf("numbering = %+v, want base 36, disc 1", n)
	}
	base := n.base
	gap := "#EXT-X-GAP\n#EXTINF:1.0,\ngap.mp4"
	fresh := strings.Join([]string{"#EXTM3U", "#EXT-X-MEDIA-SEQUENCE:2",
		gap, gap, gap, gap, gap, "#EXTINF:1.0,", "b_seg7.mp4",
		`#EXT-X-RENDITION-REPORT:URI="b.m3u8",LAST-MSN=8,LAST-PART=0`, ""}, "\n")
	got := string(q.rewrite([]byte(fresh), n))
	if !strings.Contains(got, "#EXT-X-MEDIA-SEQUENCE:38\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n") || !strings.Contains(got, "LAST-MSN=44,") ||
		!strings.Contains(got, "b_seg7.mp4") {
		t.Fatalf("rewritten playlist:\n%s", got)
	}
	if q.next != 44 {
		t.Fatalf("next = %d, want 44", q.next) // 38 + 5 gaps + b_seg7 (43)
	}
	for _, tc := range []struct {
		msn, want string
	}{
		{"42", ""},   // the old muxer's segment in progress: answer at once
		{"43", "7"},  // the new muxer's first segment
		{"50", "14"}, // later ones
		{"x", "x"},   // left to the muxer (400)
	} {
		v := url.Values{"_HLS_msn": {tc.msn}, "_HLS_part": {"1"}}
		mapDirectives(v, base, true)
		if v.Get("_HLS_msn") != tc.want || (tc.want == "") != (v.Get("_HLS_part") == "") {
			t.Fatalf("_HLS_msn=%s mapped to %v, want %q", tc.msn, v, tc.want)
		}
	}
	// Classic HLS has no gaps: the new first segment is the next number.
	var c sequence
	c.rewrite([]byte("#EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:2,\ns11.ts\n#EXTINF:2,\ns12.ts\n"), numbering{})
	if n := c.restart(false); n != (numbering{base: 12, disc: 1}) {
		t.Fatalf("classic numbering = %+v, want base 12, disc 1", n)
	}
	// Every restart is one more discontinuity, even one so early that the
	// numbers need no offset.
	var e sequence
	if n := e.restart(true); n != (numbering{disc: 1}) {
		t.Fatalf("early restart = %+v, want disc 1 only", n)
	}
	n2 := e.restart(true)
	pl := string(e.rewrite([]byte("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1,\ns0.mp4\n"), n2))
	if !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXTINF") {
		t.Fatalf("second restart playlist:\n%s", pl)
	}
}
