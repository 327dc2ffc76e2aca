package hub_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/liveedge/liveedge/hub"
)

// An internal subscriber is not a viewer, but the viewers it reports
// serving are.
func TestInternalSubscriberViewers(t *testing.T) {
	h := newHub(t, hub.Params{})
	publish(t, h)
	var n atomic.Int64
	sub, err := h.Subscribe(context.Background(), name, hub.Session{Protocol: "hls", Internal: true,
		Viewers: func() int { return int(n.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	plain, err := h.Subscribe(context.Background(), name, hub.Session{Protocol: "shared", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	in, _ := h.Stream(name)
	if len(in.Viewers) != 0 {
		t.Fatalf("viewers = %v, want none", in.Viewers)
	}
	n.Store(3)
	in, _ = h.Stream(name)
	if in.Viewers["hls"] != 3 || len(in.Viewers) != 1 {
		t.Fatalf("viewers = %v, want hls:3", in.Viewers)
	}
}
