package hub

import (
	"testing"
	"time"
)

// TestTimelineRebaseKeepsCadence: after a cut (a source switch), the first
// video unit follows the last one by the video frame interval, not just by
// the minimum gap after whatever track came last.
func TestTimelineRebaseKeepsCadence(t *testing.T) {
	ms := time.Millisecond
	var tl timeline
	in := []struct {
		video bool
		dts   time.Duration
	}{{true, 1000 * ms}, {false, 1000 * ms}, {true, 1040 * ms}, {false, 1021 * ms}, {true, 1080 * ms}, {false, 1083 * ms}}
	var out []time.Duration
	for _, u := range in {
		out = append(out, tl.mapDTS(u.video, u.dts))
	}
	if out[4] != 80*ms || out[5] != 83*ms {
		t.Fatalf("before the cut: %v", out)
	}
	tl.rebase = true
	v := tl.mapDTS(true, 7000*ms)  // the new source's first keyframe
	a := tl.mapDTS(false, 7000*ms) // and its audio
	if v != 120*ms {
		t.Fatalf("first video unit after the cut at %v, want 120ms (80ms + the 40ms interval)", v)
	}
	if a <= 83*ms {
		t.Fatalf("audio after the cut at %v, not after 83ms", a)
	}
	if n := tl.mapDTS(true, 7040*ms); n != 160*ms {
		t.Fatalf("second video unit at %v, want 160ms", n)
	}
}
