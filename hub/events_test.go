package hub_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
)

// eventLog records the hub's events; it never blocks.
type eventLog struct {
	mu  sync.Mutex
	evs []hub.Event
}

func (l *eventLog) add(ev hub.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) types() []hub.EventType {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]hub.EventType, len(l.evs))
	for i, e := range l.evs {
		out[i] = e.Type
	}
	return out
}

func (l *eventLog) get(i int) hub.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evs[i]
}

func equalTypes(a, b []hub.EventType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEventsLifecycle(t *testing.T) {
	var l eventLog
	h := newHub(t, hub.Params{Events: l.add, ProducerGrace: 50 * time.Millisecond})

	// A producer without tracks is not a started stream.
	p, err := h.Publish(name, hub.Session{Protocol: "rtmp", Remote: "1.2.3.4:5"})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.types(); len(got) != 0 {
		t.Fatalf("events before tracks: %v", got)
	}
	c, frames := clip(t)
	if err := p.SetTracks(c.Video, c.Audio); err != nil {
		t.Fatal(err)
	}
	// A second, identical configuration is no new start.
	if err := p.SetTracks(c.Video, c.Audio); err != nil {
		t.Fatal(err)
	}
	if got := l.types(); !equalTypes(got, []hub.EventType{hub.StreamStarted}) {
		t.Fatalf("events = %v, want [StreamStarted]", got)
	}
	if ev := l.get(0); ev.Stream != name || ev.Producer.Protocol != "rtmp" || ev.Producer.Remote != "1.2.3.4:5" {
		t.Fatalf("StreamStarted = %+v", ev)
	}
	writeAll(t, p, frames[:10], 0)

	// Two viewers: only the last one leaving is NoViewers; an internal
	// output's subscription is not a viewer.
	internal, err := h.Subscribe(context.Background(), name, hub.Session{Protocol: "rtmp", Remote: "fanout", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := subscribe(t, h, "rtmp"), subscribe(t, h, "flv")
	v1.Close()
	if got := l.types(); len(got) != 1 {
		t.Fatalf("events after the first of two viewers left: %v", got)
	}
	v2.Close()
	internal.Close()
	if got := l.types(); !equalTypes(got, []hub.EventType{hub.StreamStarted, hub.NoViewers}) {
		t.Fatalf("events = %v, want [StreamStarted NoViewers]", got)
	}

	// The producer leaves with nobody watching: the stream ends.
	p.Close()
	if got := l.types(); !equalTypes(got, []hub.EventType{hub.StreamStarted, hub.NoViewers, hub.StreamEnded}) {
		t.Fatalf("events = %v, want [StreamStarted NoViewers StreamEnded]", got)
	}
	if ev := l.get(2); ev.Stream != name || ev.Producer.Remote != "1.2.3.4:5" {
		t.Fatalf("StreamEnded = %+v", ev)
	}
}

func TestEventsEndAfterGrace(t *testing.T) {
	var l eventLog
	h := newHub(t, hub.Params{Events: l.add, ProducerGrace: 30 * time.Millisecond})
	p := publish(t, h)
	_, frames := clip(t)
	writeAll(t, p, frames[:5], 0)
	sub := subscribe(t, h, "rtmp")
	p.Close()
	// The viewer keeps the stream for the grace period; then it ends once.
	waitFor(t, "StreamEnded", func() bool { return len(l.types()) == 2 })
	sub.Close()
	h.Close()
	time.Sleep(10 * time.Millisecond)
	if got := l.types(); !equalTypes(got, []hub.EventType{hub.StreamStarted, hub.StreamEnded}) {
		t.Fatalf("events = %v, want [StreamStarted StreamEnded] (no NoViewers after the end)", got)
	}
}

func TestEventsNeverStarted(t *testing.T) {
	var l eventLog
	h := newHub(t, hub.Params{Events: l.add, StartTimeout: 20 * time.Millisecond})
	// A viewer gives up on a stream that never starts; a producer that
	// never sets tracks leaves: neither is an event.
	if _, err := h.Subscribe(context.Background(), "live/none", hub.Session{Protocol: "rtmp"}); !errors.Is(err, hub.ErrNotFound) {
		t.Fatalf("Subscribe: %v", err)
	}
	p, err := h.Publish(name, hub.Session{Protocol: "rtmp"})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	publish(t, h) // started, then ended by Hub.Close
	h.Close()
	if got := l.types(); !equalTypes(got, []hub.EventType{hub.StreamStarted, hub.StreamEnded}) {
		t.Fatalf("events = %v", got)
	}
}

// The hub holds none of its locks while it calls Events: the callback may
// look at the hub.
func TestEventsCallbackMayReadHub(t *testing.T) {
	var h *hub.Hub
	var mu sync.Mutex
	var seen []bool
	h = newHub(t, hub.Params{Events: func(ev hub.Event) {
		_, ok := h.Stream(ev.Stream)
		h.Streams()
		mu.Lock()
		seen = append(seen, ok)
		mu.Unlock()
	}})
	p := publish(t, h)
	sub := subscribe(t, h, "rtmp")
	sub.Close()
	p.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || !seen[0] || !seen[1] || seen[2] {
		t.Fatalf("stream visible at [started no_viewers ended] = %v, want [true true false]", seen)
	}
}

type sessionAuth struct {
	fakeAuth
	sess []hub.Session
}

func (a *sessionAuth) CheckSession(r auth.Request, s hub.Session) error {
	a.mu.Lock()
	a.sess = append(a.sess, s)
	a.mu.Unlock()
	return a.Check(r)
}

func TestAdmitSessionAuthorizer(t *testing.T) {
	a := &sessionAuth{fakeAuth: fakeAuth{deny: map[string]error{"play live/b": errDenied}}}
	h := newHub(t, hub.Params{Authorizer: a})
	if err := h.Admit(auth.Request{Action: auth.Play, Stream: "live/a"}, hub.Session{Protocol: "hls", Remote: "10.0.0.1:4000"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Admit(auth.Request{Action: auth.Play, Stream: "live/b"}, hub.Session{Protocol: "rtsp"}); !errors.Is(err, hub.ErrUnauthorized) {
		t.Fatalf("denied: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sess) != 2 || a.sess[0].Protocol != "hls" || a.sess[0].Remote != "10.0.0.1:4000" || a.sess[1].Protocol != "rtsp" {
		t.Fatalf("sessions seen: %+v", a.sess)
	}
}
