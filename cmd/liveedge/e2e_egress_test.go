package main

import (
	"slices"
	"testing"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
)

// TestPullEgressBindAddress: with bind_address 127.0.0.2 the origin sees
// the pull coming from 127.0.0.2; with bind_device lo the pull works.
func TestPullEgressBindAddress(t *testing.T) {
	requireTools(t, "ffmpeg")
	o := nginxtest.Start(t)
	o.Publish(t, "x")
	for _, tt := range []struct {
		name, extra, wantAddr string
	}{
		{"bind_address", "    bind_address: 127.0.0.2\n    probe_interval: 0s\n", "127.0.0.2"},
		{"bind_device", "    bind_device: lo\n    bind_address: 127.0.0.3\n    mark: 7\n    probe_interval: 0s\n", "127.0.0.3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, pullConfig("on_demand", "live/*", tt.extra, "rtmp://"+o.RTMP+"/live/$stream"))
			v := watch(t, s.url("live/x"))
			v.waitFrames(t, 25, 10*time.Second)
			st, err := o.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if addrs := st.PlayerAddresses("x"); !slices.Equal(addrs, []string{tt.wantAddr}) {
				t.Fatalf("origin players come from %v, want [%s]", addrs, tt.wantAddr)
			}
		})
	}
}

// TestPullEgressBadDevice: a bind_device that does not exist fails the
// pull from the nginx origin with a log line naming the origin and the
// device, and the pull fails over to the next origin (demo).
func TestPullEgressBadDevice(t *testing.T) {
	requireTools(t, "ffmpeg")
	o := nginxtest.Start(t)
	o.Publish(t, "x")
	s := startServer(t, pullConfig("on_demand", "live/*", "    bind_device: nosuchdev0\n",
		"rtmp://"+o.RTMP+"/live/$stream", "demo"))
	v := watch(t, s.url("live/x"))
	v.waitFrames(t, 25, 10*time.Second)
	s.waitLog(t, `msg="origin down" stream=live/x origin=rtmp://`+o.RTMP+`/live/x reason=bind err=".*bind_device \\"nosuchdev0\\": no such device \(origin rtmp://`+o.RTMP+`/live/x\)"`, time.Second)
	s.waitLog(t, `msg=failover stream=live/x from=rtmp://`+o.RTMP+`/live/x to=demo reason=bind`, time.Second)
	if n := o.Players(t, "x"); n != 0 {
		t.Fatalf("origin has %d players, want 0", n)
	}
}
