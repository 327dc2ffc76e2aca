package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
)

// TestLimits: max_streams, max_viewers and max_viewers_per_stream refuse
// with ErrLimit and count the refusal; a viewer leaving frees its place;
// internal subscriptions do not count.
func TestLimits(t *testing.T) {
	c, _ := clip(t)
	h := newHub(t, hub.Params{MaxStreams: 2, MaxViewers: 3, MaxViewersPerStream: 2, StartTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ps []*hub.Producer
	for _, name := range []string{"live/a", "live/b"} {
		p, err := h.Publish(name, hub.Session{Protocol: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.SetTracks(c.Video, c.Audio); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	defer func() {
		for _, p := range ps {
			p.Close()
		}
	}()
	if _, err := h.Publish("live/c", hub.Session{Protocol: "test"}); !errors.Is(err, hub.ErrLimit) {
		t.Fatalf("third stream: %v", err)
	}
	sub := func(name string, internal bool) (*hub.Subscriber, error) {
		return h.Subscribe(ctx, name, hub.Session{Protocol: "test", Internal: internal})
	}
	a1, err := sub("live/a", false)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := sub("live/a", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub("live/a", false); !errors.Is(err, hub.ErrLimit) {
		t.Fatalf("third viewer of live/a: %v", err)
	}
	if in, err := sub("live/a", true); err != nil {
		t.Fatalf("internal subscription refused: %v", err)
	} else {
		defer in.Close()
	}
	b1, err := sub("live/b", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub("live/b", false); !errors.Is(err, hub.ErrLimit) {
		t.Fatalf("fourth viewer in total: %v", err)
	}
	a2.Close()
	b2, err := sub("live/b", false)
	if err != nil {
		t.Fatalf("a place was freed: %v", err)
	}
	for _, s := range []*hub.Subscriber{a1, b1, b2} {
		s.Close()
	}
	r := h.Counters().Refusals
	if r["max_streams"] != 1 || r["max_viewers_per_stream"] != 1 || r["max_viewers"] != 1 {
		t.Fatalf("refusals %v", r)
	}
}

// feedAudio publishes an audio-only stream name at about bps (units of
// 2,500 bytes) until the test ends.
func feedAudio(t *testing.T, h *hub.Hub, name string, bps int) {
	t.Helper()
	c, _ := clip(t)
	p, err := h.Publish(name, hub.Session{Protocol: "test", Remote: "10.9.9.9:1935"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTracks(nil, c.Audio); err != nil {
		t.Fatal(err)
	}
	const size = 2500
	every := time.Duration(float64(time.Second) * size * 8 / float64(bps))
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		start := time.Now()
		for {
			if err := p.WriteAudio(time.Since(start), make([]byte, size)); err != nil {
				return
			}
			select {
			case <-tk.C:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		p.Close()
	})
}

// waitBitrate waits until name's recent bitrate in is at least bps.
func waitBitrate(t *testing.T, h *hub.Hub, name string, bps float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, ok := h.Stream(name)
		if ok && in.BitrateIn >= bps {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: bitrate in %v, want >= %v", name, in.BitrateIn, bps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMaxBitratePerIP: with a cap of 1.5 Mbit/s and streams of about
// 1 Mbit/s, an IP watches one stream; its second viewer (same stream or
// another) is refused and counted, another IP and internal subscriptions
// are not affected, a viewer leaving frees its share, and the cap can be
// lifted at run time.
func TestMaxBitratePerIP(t *testing.T) {
	h := newHub(t, hub.Params{MaxBitratePerIP: 1_500_000, StartTimeout: time.Second})
	feedAudio(t, h, "live/a", 1_000_000)
	feedAudio(t, h, "live/b", 1_000_000)
	waitBitrate(t, h, "live/a", 800_000)
	waitBitrate(t, h, "live/b", 800_000)
	if in, _ := h.Stream("live/a"); in.BitrateIn > 1_400_000 {
		t.Fatalf("live/a bitrate in %v, want about 1 Mbit/s", in.BitrateIn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub := func(name, remote string, internal bool) (*hub.Subscriber, error) {
		return h.Subscribe(ctx, name, hub.Session{Protocol: "rtmp", Remote: remote, Internal: internal})
	}
	a1, err := sub("live/a", "10.0.0.1:5000", false)
	if err != nil {
		t.Fatalf("first viewer of 10.0.0.1: %v", err)
	}
	if _, err := sub("live/a", "10.0.0.1:5001", false); !errors.Is(err, hub.ErrLimit) {
		t.Fatalf("second viewer of live/a from 10.0.0.1: %v, want ErrLimit", err)
	}
	if _, err := sub("live/b", "[::ffff:10.0.0.1]:5002", false); !errors.Is(err, hub.ErrLimit) {
		t.Fatalf("viewer of live/b from 10.0.0.1 (v4-mapped): %v, want ErrLimit", err)
	}
	other, err := sub("live/a", "10.0.0.2:5000", false)
	if err != nil {
		t.Fatalf("viewer from another IP: %v", err)
	}
	defer other.Close()
	in, err := sub("live/a", "10.0.0.1:5003", true)
	if err != nil {
		t.Fatalf("internal subscription: %v", err)
	}
	defer in.Close()
	a1.Close()
	b1, err := sub("live/b", "10.0.0.1:5004", false)
	if err != nil {
		t.Fatalf("after the first viewer left: %v", err)
	}
	defer b1.Close()
	h.SetMaxBitratePerIP(0)
	a2, err := sub("live/a", "10.0.0.1:5005", false)
	if err != nil {
		t.Fatalf("cap lifted: %v", err)
	}
	a2.Close()
	if n := h.Counters().Refusals["bitrate_per_ip"]; n != 2 {
		t.Fatalf("bitrate_per_ip refusals %d, want 2", n)
	}
}

// TestBytesOut: bytes counted by subscribers and by Hub.CountOut show in
// StreamInfo by protocol, with a bitrate out.
func TestBytesOut(t *testing.T) {
	h := newHub(t, hub.Params{StartTimeout: time.Second})
	feedAudio(t, h, "live/a", 500_000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s1, err := h.Subscribe(ctx, "live/a", hub.Session{Protocol: "rtmp", Remote: "10.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	sh, err := h.Subscribe(ctx, "live/a", hub.Session{Protocol: "flv", Remote: "fanout", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	deadline := time.Now().Add(5 * time.Second)
	var info hub.StreamInfo
	for {
		s1.CountOut(1000)
		sh.CountOut(3000)
		h.CountOut("live/a", "hls", 500)
		h.CountOut("live/none", "hls", 500) // no such stream: ignored
		info, _ = h.Stream("live/a")
		if info.BitrateOut["rtmp"] > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := info.BytesOut["rtmp"] / 1000
	if n == 0 || info.BytesOut["flv"] != 3000*n || info.BytesOut["hls"] != 500*n {
		t.Fatalf("bytes out %v", info.BytesOut)
	}
	if info.BitrateOut["rtmp"] <= 0 || info.BitrateOut["flv"] <= info.BitrateOut["rtmp"] {
		t.Fatalf("bitrate out %v", info.BitrateOut)
	}
	if _, ok := h.Stream("live/none"); ok {
		t.Fatal("CountOut made a stream")
	}
}
