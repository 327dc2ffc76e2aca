// Package hub owns the live streams of an edge: one producer per stream (a
// publisher or an origin pull), any number of subscribers of any protocol,
// the stream's codec configuration and its ring of media units with the GOP
// cache. Protocols depend on the hub; the hub depends on none of them.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub/auth"
)

// Errors returned by the hub.
var (
	ErrStreamBusy     = errors.New("stream already has a publisher")
	ErrNotFound       = errors.New("stream not found")
	ErrReplaced       = errors.New("producer replaced by a newer one")
	ErrStreamEnded    = errors.New("stream ended")
	ErrSlowViewer     = errors.New("viewer too slow")
	ErrUnauthorized   = errors.New("not authorized")
	ErrHubClosed      = errors.New("hub closed")
	ErrInvalidName    = errors.New("invalid stream name")
	ErrNoTracks       = errors.New("no supported track")
	ErrCodecForbidden = errors.New("codec change not allowed")
	ErrLimit          = errors.New("limit reached")
)

// ConflictPolicy says what happens when a second producer arrives for a
// stream that already has one.
type ConflictPolicy int

// Conflict policies.
const (
	ConflictRefuse ConflictPolicy = iota
	ConflictTakeover
)

// Authorizer decides whether a play or publish is admitted.
type Authorizer interface {
	Check(r auth.Request) error
}

// SessionAuthorizer is an Authorizer that also wants to know the client's
// session (its protocol and address), such as a webhook. Admit calls
// CheckSession instead of Check on an Authorizer that has it.
type SessionAuthorizer interface {
	Authorizer
	CheckSession(r auth.Request, s Session) error
}

// Sourcer starts pulls on demand: the hub calls Want when a viewer asks for
// a stream that has no producer. It must not block.
type Sourcer interface {
	Want(name string)
}

// Params configure a Hub.
type Params struct {
	Logger            *slog.Logger
	GOP               cache.Limits
	SlowViewerTimeout time.Duration
	Conflict          ConflictPolicy
	// StartTimeout bounds how long a viewer waits for a stream to start.
	StartTimeout time.Duration
	// ProducerGrace is how long a stream keeps its viewers after its
	// producer left, waiting for a new one.
	ProducerGrace time.Duration
	Authorizer    Authorizer
	Sourcer       Sourcer
	// Events, if set, is told of streams starting and ending and of their
	// last viewer leaving. The hub calls it without holding its locks,
	// from the goroutine that caused the event; it must not block (hand
	// the event to a queue) and must not expect one goroutine for all
	// streams. A stream's events come in order: StreamStarted, any
	// NoViewers, StreamEnded.
	Events func(Event)
	// Limits, 0 = none: streams at once; viewers (clients that subscribe
	// or that an output registers with a subscription of their own, not
	// HLS clients) in total and per stream. A refusal wraps ErrLimit and
	// is counted among the refusals ("max_streams", "max_viewers",
	// "max_viewers_per_stream").
	MaxStreams, MaxViewers, MaxViewersPerStream int
	// MaxBitratePerIP caps, in bit/s (0 = none), what one client IP
	// watches: a new viewer is refused (ErrLimit, counted as
	// "bitrate_per_ip") when the recent bitrate in of its stream plus
	// that of the stream of every viewer session its IP already holds
	// would exceed it. Viewers are counted as for MaxViewers: HLS clients
	// hold no session and are left out.
	MaxBitratePerIP int64
}

// Session describes the client behind a producer or subscriber.
type Session struct {
	Protocol string
	Remote   string
	// Internal marks a subscriber that an output runs on behalf of its
	// viewers (a shared writer): it is not counted as a viewer.
	Internal bool
	// Viewers, on an Internal subscriber, reports how many viewers it
	// serves (an HLS muxer: the clients that requested recently); they
	// count in StreamInfo.Viewers, so an on-demand pull watched only over
	// HLS stays up. It is called with the stream's lock held and must not
	// call into the hub.
	Viewers func() int
}

// Hub is the set of live streams.
type Hub struct {
	p   Params
	log *slog.Logger

	authz   sync.RWMutex
	authzer Authorizer

	mu      sync.Mutex
	streams map[string]*Stream
	closed  bool

	sess     sessions
	counters counters

	// limits in effect: MaxStreams, MaxViewers, MaxViewersPerStream
	maxStreams, maxViewers, maxPerStream atomic.Int64
	maxBitratePerIP                      atomic.Int64 // bit/s
	ipMu                                 sync.Mutex   // one MaxBitratePerIP admission at a time
}

// SetLimits replaces the stream and viewer limits (0 = none), for a
// configuration reload. Streams and viewers already in are not affected.
func (h *Hub) SetLimits(maxStreams, maxViewers, maxViewersPerStream int) {
	h.maxStreams.Store(int64(maxStreams))
	h.maxViewers.Store(int64(maxViewers))
	h.maxPerStream.Store(int64(maxViewersPerStream))
}

// New returns a hub.
func New(p Params) *Hub {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.SlowViewerTimeout <= 0 {
		p.SlowViewerTimeout = 10 * time.Second
	}
	if p.StartTimeout <= 0 {
		p.StartTimeout = 5 * time.Second
	}
	if p.ProducerGrace <= 0 {
		p.ProducerGrace = 5 * time.Second
	}
	if p.GOP.MaxLag <= 0 {
		p.GOP.MaxLag = 2 * time.Second
	}
	h := &Hub{p: p, log: p.Logger, authzer: p.Authorizer, streams: map[string]*Stream{}}
	h.SetLimits(p.MaxStreams, p.MaxViewers, p.MaxViewersPerStream)
	h.SetMaxBitratePerIP(p.MaxBitratePerIP)
	return h
}

// SetAuthorizer replaces the admission policy (for a configuration reload).
func (h *Hub) SetAuthorizer(a Authorizer) {
	h.authz.Lock()
	h.authzer = a
	h.authz.Unlock()
}

// Admit is the one admission call every protocol makes before a publish or
// a play. A refusal is logged once with its reason; the caller gets
// ErrUnauthorized and tells its client no more than that.
func (h *Hub) Admit(r auth.Request, s Session) error {
	h.authz.RLock()
	a := h.authzer
	h.authz.RUnlock()
	if a == nil {
		return nil
	}
	var err error
	if sa, ok := a.(SessionAuthorizer); ok {
		err = sa.CheckSession(r, s)
	} else {
		err = a.Check(r)
	}
	if err != nil {
		h.counters.refused(err)
		h.log.Warn("access refused", "stream", r.Stream, "action", r.Action.String(),
			"proto", s.Protocol, "remote", s.Remote, "reason", err)
		return ErrUnauthorized
	}
	return nil
}

// ValidName reports whether name is a valid "app/stream" key.
func ValidName(name string) bool {
	app, stream, ok := strings.Cut(name, "/")
	if !ok || app == "" || stream == "" || strings.Contains(stream, "/") || len(name) > 256 ||
		app == "." || stream == "." || !utf8.ValidString(name) {
		return false
	}
	for _, c := range name {
		if !unicode.IsPrint(c) || c == ' ' || c == '\\' || c == '?' || c == '#' {
			return false
		}
	}
	return !strings.Contains(name, "..")
}

// getStream returns the stream, creating it when create is set.
func (h *Hub) getStream(name string, create bool) (*Stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrHubClosed
	}
	s := h.streams[name]
	if s == nil && create {
		if n := int(h.maxStreams.Load()); n > 0 && len(h.streams) >= n {
			h.counters.refusedFor("max_streams")
			h.log.Warn("stream refused: limit reached", "stream", name, "max_streams", n)
			return nil, fmt.Errorf("%w: max_streams %d", ErrLimit, n)
		}
		s = newStream(h, name)
		h.streams[name] = s
	}
	if s == nil {
		return nil, ErrNotFound
	}
	return s, nil
}

// removeIfIdle drops the stream from the map when nothing uses it.
func (h *Hub) removeIfIdle(s *Stream) {
	h.mu.Lock()
	s.mu.Lock()
	idle := s.producer == nil && len(s.subs) == 0 && s.waiting == 0
	if idle && h.streams[s.name] == s {
		delete(h.streams, s.name)
		s.ended = true
	}
	s.mu.Unlock()
	h.mu.Unlock()
	if idle {
		s.ring.Close()
		s.emit(Event{Type: StreamEnded, Stream: s.name, Producer: s.lastProducer()})
	}
}

// Publish registers a producer for the stream. With the refuse policy, a
// stream that already has a producer gives ErrStreamBusy; with takeover,
// the old producer is told to stop (its Done channel closes).
func (h *Hub) Publish(name string, sess Session) (*Producer, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for {
		s, err := h.getStream(name, true)
		if err != nil {
			return nil, err
		}
		p, err := s.attachProducer(sess)
		if errors.Is(err, errStreamGone) {
			continue // raced with removal: make a new one
		}
		return p, err
	}
}

// Subscribe registers a viewer. It waits up to StartTimeout (or ctx) for
// the stream to have media, asking the Sourcer to start a pull if there is
// no producer. The viewer's first unit is the cached keyframe.
func (h *Hub) Subscribe(ctx context.Context, name string, sess Session) (*Subscriber, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	start := time.Now()
	for {
		s, err := h.getStream(name, true)
		if err != nil {
			return nil, err
		}
		sub, err := s.subscribe(ctx, sess, start)
		if errors.Is(err, errStreamGone) {
			continue
		}
		return sub, err
	}
}

// StreamInfo is a snapshot of one stream.
type StreamInfo struct {
	Name      string
	Producer  *Session
	Video     *Track
	Audio     *Track
	Viewers   map[string]int // by protocol
	Waiting   int            // viewers waiting for the stream to start
	GOP       cache.Stats
	Producers int // producers the stream has had
	Created   time.Time
	LastMedia time.Time // when the stream last took a unit; zero: never
	BytesIn   uint64    // media bytes the stream took (payload, not protocol)
	// BitrateIn is the recent rate of BytesIn, in bit/s (over the last
	// few seconds; 0 for a stream younger than a quarter of a second).
	BitrateIn float64
	// BytesOut counts the bytes written to viewers by protocol, framing
	// included, as the outputs report them (Subscriber.CountOut,
	// Hub.CountOut); BitrateOut is its recent rate in bit/s.
	BytesOut   map[string]uint64
	BitrateOut map[string]float64
}

// Streams lists the live streams, sorted by name.
func (h *Hub) Streams() []StreamInfo {
	h.mu.Lock()
	list := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		list = append(list, s)
	}
	h.mu.Unlock()
	out := make([]StreamInfo, 0, len(list))
	for _, s := range list {
		out = append(out, s.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stream returns one stream's info.
func (h *Hub) Stream(name string) (StreamInfo, bool) {
	h.mu.Lock()
	s := h.streams[name]
	h.mu.Unlock()
	if s == nil {
		return StreamInfo{}, false
	}
	return s.Info(), true
}

// Close ends every stream: producers are told to stop, viewers see
// ErrStreamEnded once they have drained what they were sent.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	list := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		list = append(list, s)
	}
	h.streams = map[string]*Stream{}
	h.mu.Unlock()
	for _, s := range list {
		s.end()
	}
}
