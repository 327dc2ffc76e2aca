package source

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSignIsAcceptedByThePolicy(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Algorithm = config.AlgorithmSHA1
	cfg.Auth.Secrets = map[string]string{"live": "s1", "*": "other"}
	cfg.Auth.ExpiresParam, cfg.Auth.TokenParam = "e", "t"
	m, err := New(Params{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	signed, err := m.sign("rtmp://origin:1935/live/cam?keep=1&t=stale", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("keep") != "1" || len(q["t"]) != 1 || q.Get("t") == "stale" || u.Path != "/live/cam" {
		t.Fatalf("signed URL %s", signed)
	}
	pol := &auth.Policy{Algorithm: auth.SHA1, Apps: map[string]auth.AppPolicy{"live": {Secret: []byte("s1"), Play: true}},
		ExpiresParam: "e", TokenParam: "t"}
	if err := pol.Check(auth.Request{Action: auth.Play, Stream: "live/cam", Query: q}); err != nil {
		t.Fatalf("origin policy refuses the signed pull: %v", err)
	}
	if err := pol.Check(auth.Request{Action: auth.Play, Stream: "live/other", Query: q}); err == nil {
		t.Fatal("the signature is valid for another stream")
	}
}

// TestOnDemandSharedAndIdleClosed: concurrent first viewers share one pull
// (the demo origin here), which closes idle_close after the last one left.
func TestOnDemandSharedAndIdleClosed(t *testing.T) {
	cfg := config.Default()
	e := cfg.NewStream("live/*", config.ModeOnDemand, config.DemoOrigin)
	e.IdleClose = config.Duration(300 * time.Millisecond)
	cfg.Streams = []config.Stream{e}
	m, err := New(Params{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Params{Sourcer: m, StartTimeout: 3 * time.Second})
	defer func() {
		m.Close()
		h.Close()
	}()
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	subs := make(chan *hub.Subscriber, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, err := h.Subscribe(context.Background(), "live/a", hub.Session{Protocol: "test"})
			if err != nil {
				t.Error(err)
				return
			}
			subs <- sub
		}()
	}
	wg.Wait()
	close(subs)
	// The viewers are released by the tracks, just before the first unit.
	st, ok := m.Stats("live/a")
	for i := 0; i < 100 && ok && st.Connects == 0; i++ {
		time.Sleep(10 * time.Millisecond)
		st, ok = m.Stats("live/a")
	}
	if !ok || st.Connects != 1 || !st.Up || st.Origin != config.DemoOrigin {
		t.Fatalf("stats = %+v, %v; want one connect, up on demo", st, ok)
	}
	in, _ := h.Stream("live/a")
	if in.Producers != 1 {
		t.Fatalf("stream had %d producers, want 1", in.Producers)
	}
	// Still watched after idle_close: the pull stays.
	time.Sleep(500 * time.Millisecond)
	if _, ok := m.Stats("live/a"); !ok {
		t.Fatal("pull closed while watched")
	}
	for sub := range subs {
		sub.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, pulling := m.Stats("live/a")
		_, exists := h.Stream("live/a")
		if !pulling && !exists {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pull %v, stream %v 2 s after the last viewer left", pulling, exists)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Streams without an on_demand entry start nothing.
	m.Want("other/x")
	if _, ok := m.Stats("other/x"); ok {
		t.Fatal("a pull started for a stream without an entry")
	}
}

// TestWantBeforeStart: a viewer that arrives between the listeners
// opening and Start (the hub asks for its stream before the manager has
// the hub) gets its pull when Start runs, not a "stream not found".
func TestWantBeforeStart(t *testing.T) {
	cfg := config.Default()
	cfg.Streams = []config.Stream{cfg.NewStream("live/*", config.ModeOnDemand, config.DemoOrigin)}
	m, err := New(Params{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Params{Sourcer: m, StartTimeout: 5 * time.Second})
	t.Cleanup(func() {
		m.Close()
		h.Close()
	})
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sub, err := h.Subscribe(ctx, "live/early", hub.Session{Protocol: "test"})
		if err == nil {
			_, err = sub.Next(ctx, nil)
			sub.Close()
		}
		got <- err
	}()
	// The subscription is waiting for its stream (and has asked for it).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if in, ok := h.Stream("live/early"); ok && in.Waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the viewer is not waiting")
		}
	}
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("viewer that came before Start: %v", err)
	}
}
