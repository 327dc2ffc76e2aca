package hub

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/hub/auth"
)

// ErrNoSession is returned by Kick for an id the hub does not know.
var ErrNoSession = errors.New("no such session")

// SessionInfo describes one client session: a producer, a viewer that
// subscribed, or a viewer an output registered (one that shares an
// output's subscription, such as a WebRTC peer).
type SessionInfo struct {
	ID        uint64    `json:"id"`
	Stream    string    `json:"stream"`
	Protocol  string    `json:"protocol"`
	Remote    string    `json:"remote"`
	Publisher bool      `json:"publisher"`
	Since     time.Time `json:"since"`
}

type sessionEntry struct {
	info SessionInfo
	kick func()
}

// sessions is the hub's registry of client sessions.
type sessions struct {
	next atomic.Uint64
	mu   sync.Mutex
	m    map[uint64]*sessionEntry
}

func (r *sessions) add(info SessionInfo, kick func()) uint64 {
	info.ID = r.next.Add(1)
	info.Since = time.Now()
	r.mu.Lock()
	if r.m == nil {
		r.m = map[uint64]*sessionEntry{}
	}
	r.m[info.ID] = &sessionEntry{info: info, kick: kick}
	r.mu.Unlock()
	return info.ID
}

func (r *sessions) remove(id uint64) {
	r.mu.Lock()
	delete(r.m, id)
	r.mu.Unlock()
}

// Register records a viewer that an output serves without a subscription
// of its own; kick ends it. release unregisters it (call it once the
// viewer is gone; it is safe to call more than once).
func (h *Hub) Register(stream string, sess Session, kick func()) (id uint64, release func()) {
	id = h.sess.add(SessionInfo{Stream: stream, Protocol: sess.Protocol, Remote: sess.Remote}, kick)
	var once sync.Once
	return id, func() { once.Do(func() { h.sess.remove(id) }) }
}

// Sessions returns every client session, sorted by id. Outputs' internal
// subscriptions (an HLS muxer, a WebRTC feed) are not client sessions.
func (h *Hub) Sessions() []SessionInfo {
	h.sess.mu.Lock()
	out := make([]SessionInfo, 0, len(h.sess.m))
	for _, e := range h.sess.m {
		out = append(out, e.info)
	}
	h.sess.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Kick ends session id: a viewer is disconnected, a producer told to stop
// (its connection is closed by its owner).
func (h *Hub) Kick(id uint64) error {
	h.sess.mu.Lock()
	e := h.sess.m[id]
	h.sess.mu.Unlock()
	if e == nil {
		return ErrNoSession
	}
	h.log.Info("session kicked", "id", id, "stream", e.info.Stream, "proto", e.info.Protocol, "remote", e.info.Remote)
	e.kick()
	return nil
}

// CloseStream ends stream name now: its producer is told to stop and its
// viewers are disconnected. It reports whether the stream existed.
func (h *Hub) CloseStream(name string) bool {
	h.mu.Lock()
	s := h.streams[name]
	h.mu.Unlock()
	if s == nil {
		return false
	}
	s.log.Info("stream closed on request")
	h.endStream(s)
	return true
}

// TTFFBuckets are the upper bounds of the time-to-first-frame histogram.
var TTFFBuckets = []time.Duration{10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second}

// Histogram is a cumulative histogram over TTFFBuckets (Counts[i] counts
// observations <= TTFFBuckets[i]; Count counts them all).
type Histogram struct {
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// Counters are the hub's running totals, for metrics.
type Counters struct {
	// Refusals counts admission refusals by reason ("missing_token",
	// "expired", "bad_signature", "referer", "malformed", "no_secret",
	// "other") and limit refusals ("max_streams", "max_viewers",
	// "max_viewers_per_stream", "bitrate_per_ip", "connection_rate").
	Refusals map[string]uint64
	// Dropped counts units slow viewers skipped; Skips the skips.
	Dropped, Skips uint64
	// SlowViewers counts viewers disconnected as too slow.
	SlowViewers uint64
	// TTFF is the time from a viewer's request to its first unit, by
	// protocol.
	TTFF map[string]Histogram
}

type counters struct {
	mu       sync.Mutex
	refusals map[string]uint64
	ttff     map[string]*Histogram
	dropped  atomic.Uint64
	skips    atomic.Uint64
	slow     atomic.Uint64
	viewers  atomic.Int64 // viewers under the limits, in every stream
}

func refusalReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrMissingToken):
		return "missing_token"
	case errors.Is(err, auth.ErrExpired):
		return "expired"
	case errors.Is(err, auth.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, auth.ErrRefererDenied):
		return "referer"
	case errors.Is(err, auth.ErrMalformed):
		return "malformed"
	case errors.Is(err, auth.ErrNoSecret):
		return "no_secret"
	}
	return "other"
}

func (c *counters) refused(err error) { c.refusedFor(refusalReason(err)) }

func (c *counters) refusedFor(r string) {
	c.mu.Lock()
	if c.refusals == nil {
		c.refusals = map[string]uint64{}
	}
	c.refusals[r]++
	c.mu.Unlock()
}

// CountRefusal counts a refusal made outside the hub (a listener's
// connection rate limit) among the hub's refusals, under reason.
func (h *Hub) CountRefusal(reason string) { h.counters.refusedFor(reason) }

// ObserveFirstFrame records a viewer's time to first frame for protocol.
// Subscribers are measured by the hub; outputs whose viewers share a
// subscription (WebRTC peers) report their own.
func (h *Hub) ObserveFirstFrame(protocol string, d time.Duration) {
	c := &h.counters
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttff == nil {
		c.ttff = map[string]*Histogram{}
	}
	hg := c.ttff[protocol]
	if hg == nil {
		hg = &Histogram{Counts: make([]uint64, len(TTFFBuckets))}
		c.ttff[protocol] = hg
	}
	for i, b := range TTFFBuckets {
		if d <= b {
			hg.Counts[i]++
		}
	}
	hg.Count++
	hg.Sum += d
}

// Counters returns a snapshot of the hub's running totals.
func (h *Hub) Counters() Counters {
	c := &h.counters
	out := Counters{Refusals: map[string]uint64{}, TTFF: map[string]Histogram{},
		Dropped: c.dropped.Load(), Skips: c.skips.Load(), SlowViewers: c.slow.Load()}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.refusals {
		out.Refusals[k] = v
	}
	for k, v := range c.ttff {
		out.TTFF[k] = Histogram{Counts: append([]uint64(nil), v.Counts...), Count: v.Count, Sum: v.Sum}
	}
	return out
}
