package source

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
)

// logBuffer collects a manager's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// count returns how many lines match re.
func (b *logBuffer) count(re string) int {
	rx := regexp.MustCompile(re)
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}

// wait waits until a line matches re.
func (b *logBuffer) wait(t *testing.T, re string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for b.count(re) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %q within %v; log:\n%s", re, timeout, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startManager runs a manager and a hub on cfg; both are closed when the
// test ends.
func startManager(t *testing.T, cfg *config.Config, p Params) (*Manager, *hub.Hub, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	p.Config, p.Logger = cfg, logs.logger()
	m, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Params{Sourcer: m, StartTimeout: 5 * time.Second})
	t.Cleanup(func() {
		m.Close()
		h.Close()
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	return m, h, logs
}

// subscribe plays name and waits for its first unit.
func subscribe(t *testing.T, h *hub.Hub, name string) *hub.Subscriber {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub, err := h.Subscribe(ctx, name, hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// waitUp waits until name's pull has media from an origin.
func waitUp(t *testing.T, m *Manager, name string, timeout time.Duration) Stats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, ok := m.Stats(name)
		if ok && st.Up {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no media within %v (stats %+v, %v)", name, timeout, st, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProbeStartsOnHealthyOrigin: the probes found the primary down, so a
// new pull starts straight on the backup, without a failed attempt.
func TestProbeStartsOnHealthyOrigin(t *testing.T) {
	primary := "rtmp://" + closedPort(t) + "/live/x"
	cfg := config.Default()
	e := cfg.NewStream("live/x", config.ModeOnDemand, primary, config.DemoOrigin)
	e.ProbeInterval = config.Duration(100 * time.Millisecond)
	cfg.Streams = []config.Stream{e}
	m, h, logs := startManager(t, cfg, Params{})
	logs.wait(t, `msg="origin health" origin=`+regexp.QuoteMeta(primary)+` state=down reason=refused`, 2*time.Second)
	if hs := m.Health(); len(hs) != 1 || !hs[0].Known || hs[0].Up || hs[0].Origin != primary {
		t.Fatalf("health = %+v, want the primary known down", hs)
	}

	subscribe(t, h, "live/x")
	st := waitUp(t, m, "live/x", 3*time.Second)
	if st.Origin != config.DemoOrigin || st.Failures != 0 || st.Failovers != 0 {
		t.Fatalf("stats = %+v; want up on demo with no failure", st)
	}
	if n := logs.count(`msg="origin down"`); n != 0 {
		t.Fatalf("%d failed origin attempts logged, want 0", n)
	}
	logs.wait(t, `msg="starting on a backup: the probes found the origins before it down" stream=live/x origin=demo skipped=1`, time.Second)
	// Further probes that still find it down log nothing more.
	time.Sleep(400 * time.Millisecond)
	if n := logs.count(`msg="origin health"`); n != 1 {
		t.Fatalf("%d origin health lines, want 1 (state changes only)", n)
	}
}

// TestProbeSkipsPatternsAndDemo: origins with placeholders, the demo
// origin and publish entries are not probed; probe_interval 0 turns the
// probes of an entry off; an origin listed twice is probed once.
func TestProbeSkipsPatternsAndDemo(t *testing.T) {
	a, b := "rtmp://"+closedPort(t)+"/live/a", "rtmp://"+closedPort(t)+"/live/b"
	cfg := config.Default()
	e1 := cfg.NewStream("live/*", config.ModeOnDemand, "rtmp://127.0.0.1:1/live/$stream", config.DemoOrigin)
	e2 := cfg.NewStream("tv/a", config.ModeOnDemand, a, a)
	e3 := cfg.NewStream("tv/b", config.ModeOnDemand, b)
	e3.ProbeInterval = 0
	cfg.Streams = []config.Stream{e1, e2, e3}
	m, _, _ := startManager(t, cfg, Params{})
	hs := m.Health()
	if len(hs) != 1 || hs[0].Origin != a {
		t.Fatalf("probed origins %+v, want only %s", hs, a)
	}
}

// TestProbeSignsAndBinds: the probe of a signing entry with egress
// settings leaves from bind_address.
func TestProbeSignsAndBinds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	from := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		from <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()
	cfg := config.Default()
	cfg.Auth.Secrets = map[string]string{"live": "s"}
	e := cfg.NewStream("live/x", config.ModeOnDemand, fmt.Sprintf("rtmp://%s/live/x", ln.Addr()))
	e.BindAddress, e.Sign = "127.0.0.5", true
	cfg.Streams = []config.Stream{e}
	startManager(t, cfg, Params{})
	select {
	case ip := <-from:
		if ip != "127.0.0.5" {
			t.Fatalf("probe came from %s, want 127.0.0.5", ip)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no probe within 3 s")
	}
}
