// Package connlimit limits the rate of new connections per client IP: a
// token bucket per address, applied at Accept, so a client opening
// connections in a loop is turned away before any protocol work.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// maxBuckets bounds the addresses tracked; past it, the buckets that are
// full again (idle clients) are dropped.
const maxBuckets = 1 << 14

// Limiter allows, per client IP, Rate new connections a second with bursts
// of Burst.
type Limiter struct {
	rate, burst float64
	refused     func(ip netip.Addr) // called for each refusal, if set
	now         func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter of perSecond new connections per IP with bursts
// of burst (at least 1); nil when perSecond <= 0 (no limit). refused, if
// set, is told of every refusal.
func New(perSecond float64, burst int, refused func(ip netip.Addr)) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	return &Limiter{rate: perSecond, burst: float64(max(burst, 1)), refused: refused, now: time.Now,
		buckets: map[netip.Addr]*bucket{}}
}

// Allow takes a token for ip, reporting whether there was one. A nil
// Limiter allows everything.
func (l *Limiter) Allow(ip netip.Addr) bool {
	if l == nil {
		return true
	}
	ip = ip.Unmap()
	now := l.now()
	l.mu.Lock()
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[ip] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	}
	l.mu.Unlock()
	if !ok && l.refused != nil {
		l.refused(ip)
	}
	return ok
}

// pruneLocked drops the buckets that have refilled (clients idle long
// enough to be allowed a full burst again).
func (l *Limiter) pruneLocked(now time.Time) {
	for ip, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, ip)
		}
	}
}

// Wrap returns ln whose Accept closes, at once, the connections the
// limiter refuses and goes on accepting. A nil Limiter returns ln.
func (l *Limiter) Wrap(ln net.Listener) net.Listener {
	if l == nil {
		return ln
	}
	return &listener{Listener: ln, l: l}
}

type listener struct {
	net.Listener
	l *Limiter
}

func (w *listener) Accept() (net.Conn, error) {
	for {
		c, err := w.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr != nil || w.l.Allow(ap.Addr()) {
			return c, nil
		}
		c.Close()
	}
}
