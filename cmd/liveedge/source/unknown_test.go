package source

import (
	"slices"
	"sync"
	"testing"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
)

// Want tells OnUnknown of the streams no pull covers: no entry, or only
// a publish entry; an on_demand, static or run-time proxy entry is known.
func TestWantUnknown(t *testing.T) {
	cfg := config.Default()
	cfg.Streams = []config.Stream{
		cfg.NewStream("live/demo", config.ModeStatic, config.DemoOrigin),
		cfg.NewStream("cam/*", config.ModeOnDemand, "rtmp://origin.invalid/cam/$stream"),
		cfg.NewStream("push/*", config.ModePublish),
	}
	var mu sync.Mutex
	var unknown []string
	m, err := New(Params{Config: cfg, OnUnknown: func(name string) {
		mu.Lock()
		unknown = append(unknown, name)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, name := range []string{"live/demo", "cam/a", "push/b", "other/c"} {
		m.Want(name) // without a hub, Want starts nothing
	}
	if err := m.AddProxy(Proxy{Stream: "other/d", Origins: []string{"rtmp://o.invalid/x/y"}, Mode: config.ModeOnDemand}); err != nil {
		t.Fatal(err)
	}
	m.Want("other/d")
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(unknown, []string{"push/b", "other/c"}) {
		t.Fatalf("OnUnknown calls = %q, want [push/b other/c]", unknown)
	}
}
