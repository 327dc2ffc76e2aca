// Package hls serves HLS and Low-Latency HLS from the hub. Each stream is
// muxed once, by a github.com/bluenviron/gohlslib/v2 muxer created on the
// stream's first HLS request and fed by one internal hub subscriber; every
// viewer is served the same playlists, segments and parts. A muxer with no
// requests for IdleClose is closed.
//
// Every request (playlists, segments, parts, init files) goes through the
// hub's admission call; the playlists carry the request's expires/token
// query parameters onto every URI in them, so a player that got the
// playlist with a token fetches the media with it too.
package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/internal/mediahttp"
)

// Variant is the kind of HLS a muxer produces.
type Variant int

// Variants.
const (
	// LowLatency is LL-HLS: fMP4 segments split into parts, blocking
	// playlist reload and preload hints.
	LowLatency Variant = iota
	// MPEGTS is classic HLS with MPEG-TS segments (H.264 and AAC only).
	MPEGTS
	// FMP4 is classic HLS with fMP4 segments.
	FMP4
)

// Variant names, as written in the configuration.
const (
	VariantNameLowLatency = "lowlatency"
	VariantNameMPEGTS     = "mpegts"
	VariantNameFMP4       = "fmp4"
)

// ErrUnknownVariant is returned by ParseVariant.
var ErrUnknownVariant = errors.New("unknown HLS variant")

// ParseVariant parses "lowlatency", "mpegts" or "fmp4".
func ParseVariant(s string) (Variant, error) {
	switch s {
	case VariantNameLowLatency:
		return LowLatency, nil
	case VariantNameMPEGTS:
		return MPEGTS, nil
	case VariantNameFMP4:
		return FMP4, nil
	}
	return 0, fmt.Errorf("%w %q (want %s, %s or %s)", ErrUnknownVariant, s,
		VariantNameLowLatency, VariantNameMPEGTS, VariantNameFMP4)
}

func (v Variant) String() string {
	switch v {
	case LowLatency:
		return VariantNameLowLatency
	case MPEGTS:
		return VariantNameMPEGTS
	case FMP4:
		return VariantNameFMP4
	}
	return fmt.Sprintf("Variant(%d)", int(v))
}

// Settings shape the muxer of one app's streams.
type Settings struct {
	Variant Variant
	// SegmentDuration is the minimum segment duration; segments are cut
	// on the first keyframe after it. Zero means 1 s (2 s for MPEGTS).
	SegmentDuration time.Duration
	// PartDuration is the minimum LL-HLS part duration (default 200 ms).
	PartDuration time.Duration
	// SegmentCount is how many segments the playlist keeps (default 7,
	// which LL-HLS requires at least).
	SegmentCount int
}

func (st Settings) withDefaults() Settings {
	if st.SegmentDuration <= 0 {
		st.SegmentDuration = time.Second
		if st.Variant == MPEGTS {
			st.SegmentDuration = 2 * time.Second
		}
	}
	if st.PartDuration <= 0 {
		st.PartDuration = 200 * time.Millisecond
	}
	if st.SegmentCount <= 0 {
		st.SegmentCount = 7
	}
	return st
}

// Params configure a Server.
type Params struct {
	Hub    *hub.Hub
	Logger *slog.Logger
	// Settings apply to every app without an entry in Apps.
	Settings Settings
	// Apps holds per-app settings (complete, not merged with Settings).
	Apps map[string]Settings
	// IdleClose: a muxer that served no request for this long is closed
	// (default 30 s).
	IdleClose time.Duration
	// StartTimeout bounds the first request's wait for a stream that is
	// starting; the wait for the muxer's first playlist comes on top of it
	// (default 5 s).
	StartTimeout time.Duration
	// AllowOrigin is the Access-Control-Allow-Origin value; "" sends no
	// CORS headers.
	AllowOrigin string
	// ExpiresParam and TokenParam are the auth query parameters carried
	// onto the URIs in playlists (default "expires" and "token").
	ExpiresParam, TokenParam string
	// Dir, if set, keeps segments and parts in files under this directory
	// (a tmpfs mount, say) rather than in memory: one sub-directory per
	// muxer ("liveedge-<app>~<stream>-<n>"), removed with the muxer; those
	// left by an earlier run are removed at start. A directory that cannot
	// be created is logged and the muxer keeps its segments in memory.
	Dir string
	// AlwaysOn names streams ("app/stream") whose muxer runs from the
	// start and is never closed for idleness: the first viewer finds
	// segments ready. A stream that is not there yet is retried.
	AlwaysOn []string
}

// Server is the HLS handler. It implements http.Handler for the paths
// Handles accepts.
type Server struct {
	p   Params
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	alwaysOn map[string]bool // read-only after New
	dirSeq   atomic.Uint64   // numbers the muxers' directories

	mu      sync.Mutex
	streams map[string]*streamMuxer
	closed  bool
}

// New returns a running Server; Close stops it.
func New(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.IdleClose <= 0 {
		p.IdleClose = 30 * time.Second
	}
	if p.StartTimeout <= 0 {
		p.StartTimeout = 5 * time.Second
	}
	if p.ExpiresParam == "" {
		p.ExpiresParam = auth.DefaultExpiresParam
	}
	if p.TokenParam == "" {
		p.TokenParam = auth.DefaultTokenParam
	}
	p.Settings = p.Settings.withDefaults()
	apps := make(map[string]Settings, len(p.Apps))
	for k, v := range p.Apps {
		apps[k] = v.withDefaults()
	}
	p.Apps = apps
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{p: p, log: p.Logger.With("proto", "hls"), ctx: ctx, cancel: cancel,
		streams: map[string]*streamMuxer{}, alwaysOn: map[string]bool{}}
	for _, name := range p.AlwaysOn {
		s.alwaysOn[name] = true
	}
	s.cleanDir()
	s.startAlwaysOn()
	s.wg.Add(1)
	go s.janitor()
	return s
}

// startAlwaysOn creates the always-on muxers that do not run.
func (s *Server) startAlwaysOn() {
	for _, name := range s.p.AlwaysOn {
		s.muxerFor(name, true) //nolint:errcheck // only fails once closed
	}
}

// Close closes every muxer (requests waiting on one return) and waits for
// their goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	list := make([]*streamMuxer, 0, len(s.streams))
	for _, m := range s.streams {
		list = append(list, m)
	}
	s.mu.Unlock()
	s.cancel()
	for _, m := range list {
		m.close()
	}
	s.wg.Wait()
}

// Viewers returns how many distinct client addresses requested the
// stream's HLS recently.
func (s *Server) Viewers(name string) int {
	s.mu.Lock()
	m := s.streams[name]
	s.mu.Unlock()
	if m == nil {
		return 0
	}
	return m.viewerCount()
}

func (s *Server) settings(app string) Settings {
	if st, ok := s.p.Apps[app]; ok {
		return st
	}
	return s.p.Settings
}

// janitor closes idle muxers and forgets old viewers.
func (s *Server) janitor() {
	defer s.wg.Done()
	tick := min(s.p.IdleClose/4, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			var idle []*streamMuxer
			for _, m := range s.streams {
				if !s.alwaysOn[m.name] && m.idle(now) {
					idle = append(idle, m)
				}
				m.pruneViewers(now)
			}
			s.mu.Unlock()
			for _, m := range idle {
				s.log.Info("muxer idle, closing", "stream", m.name)
				m.close()
			}
			s.startAlwaysOn() // those whose stream was not there, or ended
		}
	}
}

// muxerFor returns the stream's muxer, creating it when create is set.
func (s *Server) muxerFor(name string, create bool) (*streamMuxer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if m := s.streams[name]; m != nil {
		return m, nil
	}
	if !create {
		return nil, hub.ErrNotFound
	}
	app, _, _ := strings.Cut(name, "/")
	m := newStreamMuxer(s, name, s.settings(app))
	s.streams[name] = m
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		m.run()
		s.mu.Lock()
		if s.streams[name] == m {
			delete(s.streams, name)
		}
		s.mu.Unlock()
	}()
	return m, nil
}

var errClosed = errors.New("hls: server closed")

// ServeHTTP serves /<app>/<stream>/index.m3u8 (and hls.m3u8) and the
// playlists, segments, parts and init files they name.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mediahttp.CORS(w.Header(), s.p.AllowOrigin)
	hp, ok := parsePath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !mediahttp.Methods(w, r, s.p.AllowOrigin, "Authorization, Range") {
		return
	}

	remote := r.RemoteAddr
	req := auth.FromHTTP(r, auth.Play, hp.stream)
	ip, q := req.ClientIP, req.Query
	if err := s.p.Hub.Admit(req, hub.Session{Protocol: "hls", Remote: remote}); err != nil {
		// Never say why; the hub logged the reason.
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return
	}

	// Only a playlist request starts a muxer; media of a stream without
	// one does not exist.
	m, err := s.muxerFor(hp.stream, hp.kind.playlist())
	if err != nil {
		if errors.Is(err, errClosed) {
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
			return
		}
		http.NotFound(w, r)
		return
	}
	if !ip.IsValid() {
		ip = netip.IPv6Unspecified()
	}
	m.touch(ip)
	defer m.touch(netip.Addr{})

	mx, num, err := m.wait(r.Context())
	if err != nil {
		switch {
		case errors.Is(err, hub.ErrNotFound), errors.Is(err, hub.ErrStreamEnded), errors.Is(err, hub.ErrInvalidName):
			http.NotFound(w, r)
		case errors.Is(err, errNotReady):
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		case r.Context().Err() != nil:
			// The client left.
		default:
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		}
		return
	}

	// Hand the muxer a request naming its own file, with only the auth
	// parameters (and, on LL-HLS media playlists, the _HLS_ directives) in
	// the query: the muxer appends that query to every URI it writes into
	// a playlist.
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = "/"+hp.file, ""
	if hp.kind == kindMediaPlaylist {
		mapDirectives(q, num.base, m.variant() == LowLatency)
	}
	u.RawQuery = s.forwardQuery(q, hp.kind == kindMediaPlaylist && m.variant() != MPEGTS)
	r2.URL = &u

	rw := newResponseWriter(w, r, hp.kind, &m.gz)
	mx.Handle(rw, r2)
	if hp.kind == kindMediaPlaylist && rw.status == http.StatusOK {
		// Numbers go on across muxer restarts (see sequence).
		if pl := m.seq.rewrite(rw.buf.Bytes(), num); num != (numbering{}) {
			rw.buf.Reset()
			rw.buf.Write(pl)
		}
	}
	rw.finish(m.isClosed())
	// HLS clients hold no subscription: the stream's bytes out are
	// counted per response.
	if r.Method != http.MethodHead {
		s.p.Hub.CountOut(hp.stream, "hls", rw.sent)
	}
}

// forwardQuery keeps the auth parameters (first value of each) and, when
// hlsDirectives is set, the _HLS_ playlist delivery directives.
func (s *Server) forwardQuery(q url.Values, hlsDirectives bool) string {
	out := url.Values{}
	for _, k := range []string{s.p.ExpiresParam, s.p.TokenParam} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	if hlsDirectives {
		for k, v := range q {
			if strings.HasPrefix(k, "_HLS_") && len(v) > 0 {
				out.Set(k, v[0])
			}
		}
	}
	return out.Encode()
}
