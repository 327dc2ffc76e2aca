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

// TestReloadProbes: a reload starts the background probes of the origins
// it adds and stops those of the origins it removes; an origin both
// configurations list keeps its prober and what it knows.
func TestReloadProbes(t *testing.T) {
	a, b, c := closedPort(t), closedPort(t), closedPort(t)
	cfg := config.Default()
	e := cfg.NewStream("live/*", config.ModeOnDemand, "rtmp://"+a+"/live/x", "rtmp://"+b+"/live/x")
	e.ProbeInterval = config.Duration(50 * time.Millisecond)
	cfg.Streams = []config.Stream{e}
	m, _, logs := startManager(t, cfg, Params{})
	known := func(want ...string) map[string]OriginHealth {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			got := map[string]OriginHealth{}
			for _, h := range m.Health() {
				if h.Known {
					got[h.Origin] = h
				}
			}
			ok := len(got) == len(want) && len(m.Health()) == len(want)
			for _, w := range want {
				_, in := got["rtmp://"+w+"/live/x"]
				ok = ok && in
			}
			if ok {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("probed origins %+v, want %v", m.Health(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	before := known(a, b)["rtmp://"+b+"/live/x"]

	next := cfg.Clone()
	next.Streams[0].Origins = []string{"rtmp://" + b + "/live/x", "rtmp://" + c + "/live/x"}
	if err := m.Reload(next); err != nil {
		t.Fatal(err)
	}
	after := known(b, c)["rtmp://"+b+"/live/x"]
	if !after.Since.Equal(before.Since) {
		t.Fatalf("the prober of %s was restarted: since %v, then %v", b, before.Since, after.Since)
	}
	logs.wait(t, `msg="origin no longer configured: background probe stopped" origin=rtmp://`+a+`/live/x`, time.Second)
	if n := logs.count(`background probe stopped" origin=rtmp://` + b); n != 0 {
		t.Fatalf("the prober of %s stopped", b)
	}
}
