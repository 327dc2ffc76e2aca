package hub_test

import (
	"fmt"
	"testing"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

func TestExplore(t *testing.T) {
	c, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("video %+v\naudio %+v\nframes %d dur %v\n", *c.Video, *c.Audio, len(c.Frames), c.Duration)
	fmt.Printf("sps % x\npps % x\n", c.Video.SPS, c.Video.PPS)
	nv, na, nk := 0, 0, 0
	for i, f := range c.Frames {
		if f.Video {
			nv++
			k := hub.IsKeyframe(hub.CodecH264, f.NALUs)
			if k {
				nk++
				fmt.Println("key at", i, f.DTS)
			}
			if i < 5 {
				for _, n := range f.NALUs {
					fmt.Printf(" nal %d len %d;", n[0]&0x1f, len(n))
				}
				fmt.Println()
			}
		} else {
			na++
		}
		if i < 12 {
			fmt.Println(i, f.Video, f.DTS, f.PTS)
		}
	}
	fmt.Println(nv, na, nk)
}
