package main

import (
	"testing"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
)

// TestPullProbesPickHealthyOrigin: the primary nginx is down when the
// first viewer comes; the background probes know it, so the pull starts on
// the backup without trying the primary. When the primary is back, the
// probes log it up (once) and the pull fails back.
func TestPullProbesPickHealthyOrigin(t *testing.T) {
	requireTools(t, "ffmpeg")
	a, b := nginxtest.Start(t), nginxtest.Start(t)
	b.Publish(t, "x")
	a.Kill()
	s := startServer(t, pullConfig("on_demand", "live/x", "    probe_interval: 300ms\n    failback: true\n",
		a.URL("x"), b.URL("x")))
	t.Cleanup(func() { logPullStates(t, s) })
	s.waitLog(t, `msg="origin health" origin=rtmp://`+a.RTMP+`/live/x state=down reason=refused`, 5*time.Second)
	s.waitLog(t, `msg="origin health" origin=rtmp://`+b.RTMP+`/live/x state=up rtt=`, 5*time.Second)

	v := watch(t, s.url("live/x"))
	v.waitFrames(t, 25, 10*time.Second)
	lines := s.logLines()
	if n := countLines(lines, `msg="origin down"`); n != 0 {
		t.Fatalf("%d failed origin attempts, want 0 (the primary was known down)", n)
	}
	if n := countLines(lines, `msg="starting on a backup: the probes found the origins before it down" stream=live/x origin=rtmp://`+b.RTMP); n != 1 {
		t.Fatalf("%d 'starting on a backup' lines, want 1", n)
	}
	if n := countLines(lines, `msg="origin health" origin=rtmp://`+a.RTMP); n != 1 {
		t.Fatalf("%d health lines for the primary while down, want 1", n)
	}

	a.Restart(t)
	a.Publish(t, "x")
	s.waitLog(t, `msg="origin health" origin=rtmp://`+a.RTMP+`/live/x state=up`, 5*time.Second)
	s.waitLog(t, `msg=failback stream=live/x`, 10*time.Second)
	v.waitFrames(t, 25, 10*time.Second)
	if st := v.state(); st.err != nil || st.backward > 0 {
		t.Fatalf("viewer: %+v", st)
	}
}
