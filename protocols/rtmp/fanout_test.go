package rtmp

import (
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/internal/feedtest"
)

// TestFanoutDeliversEveryUnitOnce runs players on the shared fast path and
// players whose small socket buffers push them off it and back again: each
// must get every video frame once, in order, starting on a keyframe.
func TestFanoutDeliversEveryUnitOnce(t *testing.T) {
	e := newTestEnv(t, Params{SendBuffer: 8192}, hub.Params{GOP: cache.Limits{MaxFrames: 2048, MaxLag: 10 * time.Second},
		SlowViewerTimeout: 10 * time.Second})
	p, err := e.hub.Publish("live/fan", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, p, 1)

	type result struct {
		name string
		dts  []time.Duration
		key  bool
	}
	results := make(chan result, 16)
	var wg sync.WaitGroup
	start := func(name string, rcvbuf int, pause time.Duration) {
		c := dialPlayer(t, e.url("live/fan"), rcvbuf)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := result{name: name}
			defer func() { results <- res }()
			r := &gortmplib.Reader{Conn: c}
			if err := r.Initialize(); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			for _, tr := range r.Tracks() {
				switch tr.Codec.(type) {
				case *codecs.H264:
					r.OnDataH264(tr, func(_, dts time.Duration, au [][]byte) {
						if au[0][0]&0x1f == 7 {
							return
						}
						if len(res.dts) == 0 {
							res.key = hub.IsKeyframe(hub.CodecH264, au)
						}
						res.dts = append(res.dts, dts)
						if pause > 0 && len(res.dts)%5 == 0 {
							time.Sleep(pause)
						}
					})
				case *codecs.MPEG4Audio:
					r.OnDataMPEG4Audio(tr, func(time.Duration, []byte) {})
				}
			}
			for {
				c.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
				if err := r.Read(); err != nil {
					return
				}
			}
		}()
	}
	for i := 0; i < 6; i++ {
		start("fast", 0, 0)
	}
	for i := 0; i < 3; i++ {
		start("bursty", 4096, 30*time.Millisecond)
	}
	waitViewers(t, e.hub, "live/fan", 9)
	feedPaced(t, p, 3, 5)
	p.Close()
	e.hub.Close()
	wg.Wait()
	close(results)

	// The small-buffer players left the fast path and came back.
	j, h := e.srv.fan.Stats()
	if h < 9+3 || j != h {
		t.Errorf("fast path joins=%d handoffs=%d: the players did not go through it as intended", j, h)
	}
	t.Logf("fast path joins=%d handoffs=%d", j, h)
	var ref []time.Duration
	for res := range results {
		if err := feedtest.CheckVideo(res.dts, res.key, 700); err != nil {
			t.Errorf("%s player: %v", res.name, err)
			continue
		}
		// Every player joined at the same point: all got the same frames.
		if ref == nil {
			ref = res.dts
		} else if len(res.dts) != len(ref) || res.dts[0] != ref[0] || res.dts[len(ref)-1] != ref[len(ref)-1] {
			t.Errorf("%s player got %d frames %v..%v, another %d frames %v..%v", res.name,
				len(res.dts), res.dts[0], res.dts[len(res.dts)-1], len(ref), ref[0], ref[len(ref)-1])
		}
	}
}
