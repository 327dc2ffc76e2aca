package connlimit

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	var refused atomic.Int32
	l := New(2, 3, func(netip.Addr) { refused.Add(1) })
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::ffff:10.0.0.2")
	for i := 0; i < 3; i++ {
		if !l.Allow(a) {
			t.Fatalf("burst connection %d refused", i)
		}
	}
	if l.Allow(a) {
		t.Fatal("a fourth connection in the same instant allowed")
	}
	if !l.Allow(b) {
		t.Fatal("another address refused")
	}
	now = now.Add(500 * time.Millisecond) // one token back at 2/s
	if !l.Allow(a) || l.Allow(a) {
		t.Fatal("refill: want exactly one more")
	}
	if refused.Load() != 2 {
		t.Fatalf("%d refusals counted", refused.Load())
	}
	var nilL *Limiter
	if !nilL.Allow(a) || New(0, 1, nil) != nil {
		t.Fatal("no limit")
	}
}

// TestWrap: connections past the burst are closed at Accept; the
// listener goes on accepting.
func TestWrap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := New(0.001, 2, nil).Wrap(ln)
	defer wl.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := wl.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var conns []net.Conn
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i := 0; i < 2; i++ {
		select {
		case c := <-accepted:
			c.Close()
		case <-time.After(2 * time.Second):
			t.Fatal("a connection within the burst was not accepted")
		}
	}
	// The other two were closed by the server.
	for _, c := range conns[2:] {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a refused connection stayed open")
		}
	}
	select {
	case c := <-accepted:
		t.Fatalf("a refused connection was accepted: %v", c.RemoteAddr())
	default:
	}
	for _, c := range conns {
		c.Close()
	}
}
