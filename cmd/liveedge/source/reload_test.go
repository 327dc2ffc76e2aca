package source

import (
	"context"
	"testing"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
)

// TestReloadRestartsChangedPulls: a reload that changes a running pull's
// entry restarts that pull, on the new entry, while its viewer keeps
// receiving; an unchanged entry's pull is left alone; a new static entry
// starts.
func TestReloadRestartsChangedPulls(t *testing.T) {
	cfg := config.Default()
	a := cfg.NewStream("live/a", config.ModeStatic, config.DemoOrigin)
	b := cfg.NewStream("live/b", config.ModeStatic, config.DemoOrigin)
	cfg.Streams = []config.Stream{a, b}
	m, h, logs := startManager(t, cfg, Params{})
	waitUp(t, m, "live/a", 5*time.Second)
	waitUp(t, m, "live/b", 5*time.Second)
	before, _ := m.Stats("live/b")
	sub := subscribe(t, h, "live/a")

	next := cfg.Clone()
	next.Streams[0].StallTimeout = config.Duration(3 * time.Second) // live/a changes
	next.Streams = append(next.Streams, next.NewStream("live/c", config.ModeStatic, config.DemoOrigin))
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(next); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, `msg="configuration changed: restarting the pull" stream=live/a`, 2*time.Second)
	waitUp(t, m, "live/c", 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, ok := m.Stats("live/a")
		if ok && st.Up && st.Since.After(before.Since) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live/a not restarted: %+v %v", st, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after, _ := m.Stats("live/b"); after.Since != before.Since {
		t.Fatal("the unchanged live/b pull was restarted")
	}
	if n := logs.count(`restarting the pull" stream=live/b`); n != 0 {
		t.Fatal("live/b restarted")
	}
	// The viewer of live/a kept its subscription across the restart.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for got := 0; got < 50; {
		units, err := sub.Next(ctx, nil)
		if err != nil {
			t.Fatalf("viewer of live/a after the reload: %v", err)
		}
		got += len(units)
	}
}
