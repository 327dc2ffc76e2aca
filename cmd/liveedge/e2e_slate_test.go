package main

import (
	"testing"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
)

// TestOfflineSlate: the only origin dies; the viewer stays connected and
// keeps getting frames from the slate; the origin returns and the stream
// goes back to it.
func TestOfflineSlate(t *testing.T) {
	requireTools(t, "ffmpeg")
	a := nginxtest.Start(t)
	a.Publish(t, "x")
	s := startServer(t, pullConfig("on_demand", "live/*",
		"    stall_timeout: 1s\n    failback: false\n    offline_slate: demo\n",
		"rtmp://"+a.RTMP+"/live/$stream"))
	t.Cleanup(func() { logPullStates(t, s) })
	v := watch(t, s.url("live/x"))
	v.waitFrames(t, 25, 10*time.Second)

	v.reset()
	a.Kill()
	s.waitLog(t, `msg="every origin is down: playing the offline slate" stream=live/x`, 5*time.Second)
	gap := v.checkSwitch(t, 3*time.Second) // two more seconds of video from the slate
	t.Logf("origin killed, slate on: media gap %v", gap)

	a.Restart(t)
	a.Publish(t, "x")
	s.waitLog(t, `msg="origin back: offline slate ended" stream=live/x`, 15*time.Second)
	v.reset()
	gap = v.checkSwitch(t, 3*time.Second)
	t.Logf("origin back, slate off: media gap %v", gap)
	if n := a.Players(t, "x"); n != 1 {
		t.Fatalf("origin has %d players, want 1", n)
	}
}
