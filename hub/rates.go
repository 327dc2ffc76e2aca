package hub

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// Rate estimates. A stream keeps a few samples of its byte counters (in,
// and out per protocol), taken by the producer as units arrive, at most
// every rateSampleEvery: the hot paths only add to counters (one atomic
// add per written batch for bytes out), and nothing runs in the
// background. A rate is the growth of a counter since the oldest sample
// of the last rateWindow, over the time since then: it falls to 0 within
// rateWindow of the media stopping.
const (
	rateSampleEvery = 500 * time.Millisecond
	rateWindow      = 5 * time.Second
	// rateMinSpan: a stream younger than this has no rate yet (0).
	rateMinSpan = 250 * time.Millisecond
	rateSamples = int(rateWindow/rateSampleEvery) + 2
)

type rateSample struct {
	t   time.Time
	in  uint64
	out map[string]uint64
}

// rates is a stream's sample ring; guarded by the stream's lock.
type rates struct {
	ring [rateSamples]rateSample
	n    int // samples in ring
	next int // where the next sample goes
}

// outCounterLocked returns the stream's bytes-out counter of protocol,
// making it on first use.
func (s *Stream) outCounterLocked(protocol string) *atomic.Uint64 {
	c := s.out[protocol]
	if c == nil {
		c = new(atomic.Uint64)
		if s.out == nil {
			s.out = map[string]*atomic.Uint64{}
		}
		s.out[protocol] = c
	}
	return c
}

// sampleLocked records the counters at now, unless the last sample is
// more recent than rateSampleEvery.
func (s *Stream) sampleLocked(now time.Time) {
	r := &s.rates
	if r.n > 0 {
		last := &r.ring[(r.next+rateSamples-1)%rateSamples]
		if now.Sub(last.t) < rateSampleEvery {
			return
		}
	}
	smp := &r.ring[r.next]
	smp.t, smp.in = now, s.bytesIn
	if smp.out == nil {
		smp.out = make(map[string]uint64, len(s.out))
	} else {
		clear(smp.out)
	}
	for p, c := range s.out {
		smp.out[p] = c.Load()
	}
	r.next = (r.next + 1) % rateSamples
	r.n = min(r.n+1, rateSamples)
}

// baseLocked returns the oldest sample within rateWindow of now and the
// time since it, or nil when there is none old enough to measure from.
func (s *Stream) baseLocked(now time.Time) (*rateSample, float64) {
	r := &s.rates
	for i := r.n; i > 0; i-- {
		smp := &r.ring[(r.next+rateSamples-i)%rateSamples]
		dt := now.Sub(smp.t)
		if dt > rateWindow {
			continue
		}
		if dt < rateMinSpan {
			return nil, 0
		}
		return smp, dt.Seconds()
	}
	return nil, 0
}

// bitrateInLocked returns the stream's recent media bitrate in, in bit/s.
func (s *Stream) bitrateInLocked(now time.Time) float64 {
	base, dt := s.baseLocked(now)
	if base == nil {
		return 0
	}
	return float64(s.bytesIn-base.in) * 8 / dt
}

// bitrateIn is bitrateInLocked with the stream's lock.
func (s *Stream) bitrateIn(now time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bitrateInLocked(now)
}

// outLocked returns the stream's bytes out and recent bitrates out (bit/s)
// by protocol.
func (s *Stream) outLocked(now time.Time) (map[string]uint64, map[string]float64) {
	bytes := make(map[string]uint64, len(s.out))
	rate := make(map[string]float64, len(s.out))
	base, dt := s.baseLocked(now)
	for p, c := range s.out {
		n := c.Load()
		bytes[p] = n
		if base != nil {
			rate[p] = float64(n-base.out[p]) * 8 / dt
		} else {
			rate[p] = 0
		}
	}
	return bytes, rate
}

// CountOut adds n bytes written to the viewers of sub's stream, counted
// under sub's protocol: an output calls it once per batch it wrote (on a
// shared writer's subscription, once for all the viewers of the batch).
func (sub *Subscriber) CountOut(n int) {
	if n > 0 {
		sub.out.Add(uint64(n))
	}
}

// CountOut adds n bytes written to viewers of stream over protocol, for an
// output that has no subscription at hand (an HLS response). It does
// nothing for a stream the hub does not have.
func (h *Hub) CountOut(stream, protocol string, n int) {
	if n <= 0 {
		return
	}
	h.mu.Lock()
	s := h.streams[stream]
	h.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	c := s.outCounterLocked(protocol)
	s.mu.Unlock()
	c.Add(uint64(n))
}

// SetMaxBitratePerIP replaces the cap on the summed bitrate of the streams
// one client IP watches (bit/s, 0 = none), for a configuration reload.
// Viewers already in are not affected.
func (h *Hub) SetMaxBitratePerIP(bps int64) { h.maxBitratePerIP.Store(max(bps, 0)) }

// clientIP returns the IP of a session's remote address ("ip:port"), or
// "" when it has none.
func clientIP(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return ""
}

// checkBitratePerIP applies MaxBitratePerIP to a new viewer of s from
// remote: the recent bitrate in of every stream the client's IP already
// watches (once per viewer session) plus that of s must stay within the
// cap. The caller holds h.ipMu, so that concurrent viewers from one IP
// are admitted one after the other.
func (h *Hub) checkBitratePerIP(s *Stream, remote string, limit int64) error {
	ip := clientIP(remote)
	if ip == "" {
		return nil
	}
	h.sess.mu.Lock()
	var watching []string
	for _, e := range h.sess.m {
		if !e.info.Publisher && clientIP(e.info.Remote) == ip {
			watching = append(watching, e.info.Stream)
		}
	}
	h.sess.mu.Unlock()
	now := time.Now()
	byName := map[string]float64{s.name: s.bitrateIn(now)}
	sum := byName[s.name]
	for _, name := range watching {
		r, ok := byName[name]
		if !ok {
			h.mu.Lock()
			st := h.streams[name]
			h.mu.Unlock()
			if st != nil {
				r = st.bitrateIn(now)
			}
			byName[name] = r
		}
		sum += r
	}
	if sum > float64(limit) {
		h.counters.refusedFor("bitrate_per_ip")
		s.log.Warn("viewer refused: limit reached", "max_bitrate_per_ip", limit, "ip", ip,
			"bitrate", int64(sum), "sessions", len(watching))
		return fmt.Errorf("%w: max_bitrate_per_ip %d bit/s (client %s would take %d)", ErrLimit, limit, ip, int64(sum))
	}
	return nil
}
