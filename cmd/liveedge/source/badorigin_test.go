package source

import (
	"crypto/rand"
	"io"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
)

// fakeOrigin is a TCP server on 127.0.0.1 that runs handle on every
// connection; everything is closed when the test ends.
type fakeOrigin struct {
	ln       net.Listener
	accepted atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startFake(t *testing.T, handle func(net.Conn)) *fakeOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeOrigin{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeOrigin) url() string { return "rtmp://" + f.ln.Addr().String() + "/live/x" }

// silent accepts and never writes; it returns when the client closes.
func silent(c net.Conn) { io.Copy(io.Discard, c) }

// garbage completes a plain RTMP handshake, then sends random bytes until
// the client goes away.
func garbage(c net.Conn) {
	c0c1 := make([]byte, 1537)
	if _, err := io.ReadFull(c, c0c1); err != nil {
		return
	}
	s1 := make([]byte, 1536)
	rand.Read(s1[8:])
	out := append([]byte{3}, s1...)
	out = append(out, c0c1[1:]...) // S2 echoes C1
	if _, err := c.Write(out); err != nil {
		return
	}
	if _, err := io.ReadFull(c, make([]byte, 1536)); err != nil { // C2
		return
	}
	buf := make([]byte, 4096)
	for {
		rand.Read(buf)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(buf); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBadOriginsFailOver: an origin that accepts and never answers, and
// one that sends garbage after the handshake, each end in a logged
// failover to the next origin; the stream plays from it, and no goroutine
// is left behind once the manager is closed.
func TestBadOriginsFailOver(t *testing.T) {
	tests := []struct {
		name   string
		handle func(net.Conn)
		reason string
	}{
		{"silent", silent, "timeout"},
		{"garbage", garbage, `\S+`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Registered first, so it runs after every other cleanup.
			t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
			f := startFake(t, tt.handle)
			cfg := config.Default()
			e := cfg.NewStream("live/x", config.ModeOnDemand, f.url(), config.DemoOrigin)
			e.ProbeInterval = 0 // the pull itself must meet the bad origin
			e.Failback = false
			cfg.Streams = []config.Stream{e}
			m, h, logs := startManager(t, cfg, Params{ConnectTimeout: 500 * time.Millisecond})
			subscribe(t, h, "live/x")
			st := waitUp(t, m, "live/x", 5*time.Second)
			if st.Origin != config.DemoOrigin || st.Failures != 1 || st.Failovers != 1 {
				t.Fatalf("stats %+v; want up on demo after one failure and one failover", st)
			}
			origin := regexp.QuoteMeta("rtmp://" + f.ln.Addr().String() + "/live/x")
			logs.wait(t, `level=WARN msg="origin down" stream=live/x origin=`+origin+` reason=`+tt.reason+` err=`, time.Second)
			logs.wait(t, `level=WARN msg=failover stream=live/x from=`+origin+` to=demo reason=`+tt.reason, time.Second)
			if f.accepted.Load() != 1 {
				t.Fatalf("the bad origin got %d connections, want 1", f.accepted.Load())
			}
			t.Logf("%s", regexp.MustCompile(`(?m)^.*msg="origin down".*$`).FindString(logs.String()))
		})
	}
}

// TestEgressBindFailsOver: a bind_address that is not local and a
// bind_device that does not exist each fail the origin with an error
// naming the setting and the origin, and the next origin is tried.
func TestEgressBindFailsOver(t *testing.T) {
	tests := []struct {
		name string
		set  func(*config.Stream)
		want string
	}{
		{"address", func(e *config.Stream) { e.BindAddress = "192.0.2.1" }, `bind_address 192.0.2.1 \(origin %s\): origin connect failed: dial tcp 192.0.2.1:0->%s: bind: cannot assign requested address`},
		{"device", func(e *config.Stream) { e.BindDevice = "nosuchdev0" }, `bind_device \\"nosuchdev0\\": no such device \(origin %s\)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, silent)
			cfg := config.Default()
			e := cfg.NewStream("live/x", config.ModeOnDemand, f.url(), config.DemoOrigin)
			e.ProbeInterval = 0
			tt.set(&e)
			cfg.Streams = []config.Stream{e}
			m, h, logs := startManager(t, cfg, Params{})
			subscribe(t, h, "live/x")
			st := waitUp(t, m, "live/x", 5*time.Second)
			if st.Origin != config.DemoOrigin || st.Failures != 1 {
				t.Fatalf("stats %+v; want up on demo after one failure", st)
			}
			origin := regexp.QuoteMeta(f.url())
			re := `msg="origin down" stream=live/x origin=` + origin + ` reason=bind err=".*` +
				fmtRe(tt.want, origin, regexp.QuoteMeta(f.ln.Addr().String()))
			logs.wait(t, re, time.Second)
			logs.wait(t, `msg=failover stream=live/x from=`+origin+` to=demo reason=bind`, time.Second)
			if f.accepted.Load() != 0 {
				t.Fatalf("the origin got %d connections, want 0", f.accepted.Load())
			}
		})
	}
}

// fmtRe fills the %s of a pattern with already quoted parts.
func fmtRe(pattern string, parts ...string) string {
	for _, p := range parts {
		i := regexp.MustCompile(`%s`).FindStringIndex(pattern)
		if i == nil {
			break
		}
		pattern = pattern[:i[0]] + p + pattern[i[1]:]
	}
	return pattern
}
