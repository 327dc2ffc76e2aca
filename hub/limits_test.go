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
