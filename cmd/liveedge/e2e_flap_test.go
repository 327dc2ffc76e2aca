package main

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
)

// fdCount is the number of open file descriptors of a process.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestPullFlappingPrimary: the primary restarts every 1.5 s for about 9 s.
// The viewer stays connected with monotonic timestamps, the backup never
// sees more than one pull, the origins end with exactly one between them,
// and liveedge ends with the file descriptors it started with.
func TestPullFlappingPrimary(t *testing.T) {
	requireTools(t, "ffmpeg")
	a, b := nginxtest.Start(t), nginxtest.Start(t)
	a.Publish(t, "x")
	b.Publish(t, "x")
	s := startServer(t, pullConfig("on_demand", "live/*", "    stall_timeout: 1s\n    failback: true\n",
		"rtmp://"+a.RTMP+"/live/$stream", "rtmp://"+b.RTMP+"/live/$stream"))
	t.Cleanup(func() { logPullStates(t, s) })
	v := watch(t, s.url("live/x"))
	v.waitFrames(t, 25, 10*time.Second)
	pid := s.cmd.Process.Pid
	fds := fdCount(t, pid)

	for i := 0; i < 6; i++ {
		a.Kill()
		time.Sleep(750 * time.Millisecond)
		if n := b.Players(t, "x"); n > 1 {
			t.Fatalf("the backup sees %d pulls at once", n)
		}
		a.Restart(t)
		a.Publish(t, "x")
		// (While the primary is up, a failback probe may briefly hold a
		// second play connection to it: that is the probe, not a pull.)
		time.Sleep(750 * time.Millisecond)
	}
	v.reset()
	gap := v.checkSwitch(t, 3*time.Second)
	t.Logf("after flapping: media gap %v", gap)

	// Settle on one origin, then compare descriptors (allow the one
	// connection that may be mid-switch).
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := fdCount(t, pid)
		if n <= fds+1 {
			t.Logf("file descriptors: %d before flapping, %d after", fds, n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file descriptors: %d before flapping, %d after", fds, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for a.Players(t, "x")+b.Players(t, "x") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("origins see %d pulls, want 1", a.Players(t, "x")+b.Players(t, "x"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
