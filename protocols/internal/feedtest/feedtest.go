// Package feedtest helps the protocols' tests: it writes the demo clip to a
// hub producer faster than real time, and checks the timestamps a player
// got.
package feedtest

import (
	"errors"
	"fmt"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

// Loops writes loops first to first+n-1 of clip to p (its tracks already
// set), at speed times real time; 0 writes them at once.
func Loops(p *hub.Producer, clip *demo.Clip, first, n int, speed float64) error {
	start := time.Now()
	for l := first; l < first+n; l++ {
		off := time.Duration(l) * clip.Duration
		for _, f := range clip.Frames {
			if speed > 0 {
				at := time.Duration(l-first)*clip.Duration + f.DTS
				time.Sleep(time.Until(start.Add(time.Duration(float64(at) / speed))))
			}
			var err error
			if f.Video {
				err = p.WriteVideo(off+f.PTS, off+f.DTS, f.NALUs)
			} else {
				err = p.WriteAudio(off+f.DTS, f.Payload)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckVideo checks the video a player got of Loops: at least min frames,
// the first a keyframe (key), and 40 to 70 ms from each DTS to the next
// (40 ms a frame; the clip's loop point is a little longer): no gap, no
// duplicate.
func CheckVideo(dts []time.Duration, key bool, min int) error {
	if len(dts) < min {
		return fmt.Errorf("got %d video frames, want the whole feed (>= %d)", len(dts), min)
	}
	if !key {
		return errors.New("first video frame not a keyframe")
	}
	for i := 1; i < len(dts); i++ {
		if d := dts[i] - dts[i-1]; d < 40*time.Millisecond || d > 70*time.Millisecond {
			return fmt.Errorf("video frame %d: DTS step %v (gap or duplicate)", i, d)
		}
	}
	return nil
}
