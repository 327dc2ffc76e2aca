package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
)

// TestSessionsKickAndClose: publishers and viewers are listed with their
// protocol; kicking a viewer ends its Next, kicking a producer closes its
// Done; internal subscriptions are not listed; CloseStream ends a stream.
func TestSessionsKickAndClose(t *testing.T) {
	c, frames := clip(t)
	h := newHub(t, hub.Params{GOP: cacheLimitsLongLag()})
	p, err := h.Publish("live/a", hub.Session{Protocol: "rtmp", Remote: "10.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTracks(c.Video, c.Audio); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames[:30] {
		if f.Video {
			p.WriteVideo(f.PTS, f.DTS, f.NALUs)
		} else {
			p.WriteAudio(f.DTS, f.Payload)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := h.Subscribe(ctx, "live/a", hub.Session{Protocol: "flv", Remote: "10.0.0.2:2"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	in, err := h.Subscribe(ctx, "live/a", hub.Session{Protocol: "hls", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	_, release := h.Register("live/a", hub.Session{Protocol: "webrtc", Remote: "10.0.0.3:3"}, func() {})
	defer release()

	ss := h.Sessions()
	if len(ss) != 3 || !ss[0].Publisher || ss[0].Protocol != "rtmp" || ss[1].Protocol != "flv" ||
		ss[2].Protocol != "webrtc" || ss[1].Stream != "live/a" || ss[1].Remote != "10.0.0.2:2" {
		t.Fatalf("sessions %+v", ss)
	}
	if _, err := v.Next(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// The viewer's first units were counted as its time to first frame;
	// the internal subscription's were not.
	in.Next(ctx, nil)
	cs := h.Counters()
	if cs.TTFF["flv"].Count != 1 || cs.TTFF["hls"].Count != 0 {
		t.Fatalf("ttff %+v", cs.TTFF)
	}

	if err := h.Kick(ss[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Next(ctx, nil); !errors.Is(err, hub.ErrStreamEnded) {
		t.Fatalf("kicked viewer's Next: %v", err)
	}
	if err := h.Kick(ss[1].ID); !errors.Is(err, hub.ErrNoSession) {
		t.Fatalf("second kick: %v", err)
	}
	if err := h.Kick(ss[0].ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(time.Second):
		t.Fatal("kicked producer not told to stop")
	}
	p.Close()
	release()
	if ss := h.Sessions(); len(ss) != 0 {
		t.Fatalf("sessions left: %+v", ss)
	}

	if h.CloseStream("live/none") {
		t.Fatal("closed a stream that does not exist")
	}
	if !h.CloseStream("live/a") {
		t.Fatal("live/a not closed")
	}
	if _, err := in.Next(ctx, nil); !errors.Is(err, hub.ErrStreamEnded) {
		// The internal reader may first drain what was cached.
		for err == nil {
			_, err = in.Next(ctx, nil)
		}
		if !errors.Is(err, hub.ErrStreamEnded) {
			t.Fatalf("after CloseStream: %v", err)
		}
	}
}

func TestRefusalsCounted(t *testing.T) {
	h := newHub(t, hub.Params{Authorizer: &auth.Policy{Default: auth.AppPolicy{Secret: []byte("k"), Play: true}}})
	h.Admit(auth.Request{Action: auth.Play, Stream: "live/x"}, hub.Session{})
	h.Admit(auth.Request{Action: auth.Play, Stream: "live/x", Query: map[string][]string{"expires": {"1"}, "token": {"00"}}}, hub.Session{})
	got := h.Counters().Refusals
	if got["missing_token"] != 1 || got["malformed"] != 1 {
		t.Fatalf("refusals %v", got)
	}
}
