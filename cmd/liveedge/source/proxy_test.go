package source

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
)

// TestProxiesAddRemovePersist: a static proxy added at run time pulls at
// once; invalid ones are refused naming the field; removing it stops the
// pull; the state file brings the proxies back after a restart.
func TestProxiesAddRemovePersist(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	cfg := config.Default()
	cfg.Streams = nil
	m, h, _ := startManager(t, cfg, Params{StateFile: state})

	bad := []struct {
		p    Proxy
		want string
	}{
		{Proxy{Stream: "nope", Origins: []string{"demo"}}, "stream:"},
		{Proxy{Stream: "live/p", Origins: []string{"http://x/y"}}, "proxy.origins[0]: unsupported scheme"},
		{Proxy{Stream: "live/p"}, "proxy.origins: required"},
		{Proxy{Stream: "live/p", Origins: []string{"demo"}, Mode: "publish"}, "mode:"},
	}
	for _, tc := range bad {
		if err := m.AddProxy(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddProxy(%+v) = %v, want %q", tc.p, err, tc.want)
		}
	}
	if err := m.AddProxy(Proxy{Stream: "live/p", Origins: []string{config.DemoOrigin}}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddProxy(Proxy{Stream: "live/p", Origins: []string{config.DemoOrigin}}); !errors.Is(err, ErrProxyExists) {
		t.Fatalf("second add: %v", err)
	}
	waitUp(t, m, "live/p", 5*time.Second)
	if ps := m.Proxies(); len(ps) != 1 || ps[0].Mode != config.ModeStatic || ps[0].Stream != "live/p" {
		t.Fatalf("proxies %+v", ps)
	}
	if _, ok := m.Pulls()["live/p"]; !ok {
		t.Fatal("no running pull listed")
	}
	b, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(b), `"live/p"`) {
		t.Fatalf("state file: %s, %v", b, err)
	}
	sub := subscribe(t, h, "live/p")
	sub.Close()

	if err := m.RemoveProxy("live/p"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveProxy("live/p"); !errors.Is(err, ErrNoProxy) {
		t.Fatalf("second remove: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := m.Stats("live/p"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pull still runs after RemoveProxy")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Restart with a state file holding one proxy.
	m.AddProxy(Proxy{Stream: "live/q", Origins: []string{config.DemoOrigin}, Mode: config.ModeOnDemand})
	m2, h2, _ := startManager(t, cfg, Params{StateFile: state})
	if ps := m2.Proxies(); len(ps) != 1 || ps[0].Stream != "live/q" || ps[0].Mode != config.ModeOnDemand {
		t.Fatalf("restored proxies %+v", ps)
	}
	subscribe(t, h2, "live/q") // on demand: the viewer starts it
	waitUp(t, m2, "live/q", 5*time.Second)
}

func TestProxyStateFileBroken(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(state, []byte("{not json"), 0o600)
	cfg := config.Default()
	cfg.Streams = nil
	m, _, logs := startManager(t, cfg, Params{StateFile: state})
	if len(m.Proxies()) != 0 {
		t.Fatal("proxies from a broken file")
	}
	logs.wait(t, `state file not read`, time.Second)
}
