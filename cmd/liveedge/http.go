package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/cluster"
	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/flv"
	"github.com/liveedge/liveedge/protocols/hls"
	"github.com/liveedge/liveedge/protocols/webrtc"
	"github.com/liveedge/liveedge/signaling"
	"github.com/liveedge/liveedge/static"
)

// httpServer is the shared HTTP listener (players, HLS; later FLV, WHEP
// and the pages). It routes each path to the output that serves it and
// answers 404 for the rest.
type httpServer struct {
	log  *slog.Logger
	ln   net.Listener
	srv  *http.Server
	hls  *hls.Server
	flv  *flv.Server
	done chan struct{}

	webrtc *webrtc.Server // nil when its UDP port could not be opened
	sig    *signaling.Handler
	pages  *static.Handler
	route  http.Handler // edge selection, cluster.RoutePath
}

// listenHTTP starts the HTTP listener with the outputs it routes to.
// route, if set, answers cluster.RoutePath (edge selection).
func listenHTTP(cfg *config.Config, h *hub.Hub, src static.Sources, route http.Handler, log *slog.Logger) (*httpServer, error) {
	var tlsCfg *tls.Config
	if cfg.HTTP.TLS() {
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("http.tls_cert/http.tls_key: %w", err)
		}
		// HTTP/2 for the clients that offer it (ALPN), HTTP/1.1 for the
		// rest (and for WebSocket upgrades).
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"},
			MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	if wrap := connLimit(cfg, h, log, "http"); wrap != nil {
		ln = wrap(ln)
	}
	s := &httpServer{log: log.With("proto", "http"), ln: ln, done: make(chan struct{}), route: route}
	s.hls = hls.New(hlsParams(cfg, h, log))
	s.flv = flv.New(flv.Params{Hub: h, Logger: log, AllowOrigin: cfg.FLV.AllowOrigin,
		WriteTimeout: cfg.Hub.SlowViewerTimeout.Std(), TokenParam: cfg.Auth.TokenParam})
	s.webrtc, s.sig = startWebRTC(cfg, h, log)
	s.pages = static.New(static.Params{Hub: h, Logger: log, Sources: src})
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig:         tlsCfg,
	}
	go func() {
		defer close(s.done)
		var err error
		if tlsCfg != nil {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil)
	return s, nil
}

// hlsParams maps the hls section of the configuration.
func hlsParams(cfg *config.Config, h *hub.Hub, log *slog.Logger) hls.Params {
	settings := func(app string) hls.Settings {
		m := cfg.HLS.For(app)
		v, _ := hls.ParseVariant(m.Variant) // validated
		return hls.Settings{Variant: v, SegmentDuration: m.SegmentDuration.Std(),
			PartDuration: m.PartDuration.Std(), SegmentCount: m.SegmentCount}
	}
	p := hls.Params{
		Hub:          h,
		Logger:       log,
		Settings:     settings(""),
		Apps:         map[string]hls.Settings{},
		IdleClose:    cfg.HLS.IdleClose.Std(),
		StartTimeout: cfg.Hub.StartTimeout.Std(),
		AllowOrigin:  cfg.HLS.AllowOrigin,
		ExpiresParam: cfg.Auth.ExpiresParam,
		TokenParam:   cfg.Auth.TokenParam,
		Dir:          cfg.HLS.Dir,
		AlwaysOn:     cfg.HLS.AlwaysOn,
	}
	for _, app := range cfg.HLS.AppNames() {
		p.Apps[app] = settings(app)
	}
	return p
}

// Timeouts of the HTTP listener. The server has no overall ReadTimeout
// (it would end streaming responses), so a request body gets its own
// deadline: without it a client that sends a WHEP offer one byte at a time
// holds a handler and its connection for ever.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpBodyTimeout       = 10 * time.Second
	httpIdleTimeout       = 60 * time.Second
)

// ServeHTTP routes a request to the output that serves its path.
func (s *httpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(httpBodyTimeout)) == nil {
			r.Body = &bodyDeadline{ReadCloser: r.Body, rc: rc}
		}
	}
	if r.URL.Path == cluster.RoutePath && s.route != nil {
		s.route.ServeHTTP(w, r)
		return
	}
	if signaling.Handles(r.URL.Path) {
		s.sig.ServeHTTP(w, r)
		return
	}
	if hls.Handles(r.URL.Path) {
		s.hls.ServeHTTP(w, r)
		return
	}
	if flv.Handles(r.URL.Path) {
		s.flv.ServeHTTP(w, r)
		return
	}
	if static.Handles(r.URL.Path) { // last: the outputs' paths take precedence
		s.pages.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

// bodyDeadline lifts the request's read deadline once its body is in, so
// that it does not cut short the server's watch for a client that left (a
// background read) while the handler still runs.
type bodyDeadline struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *bodyDeadline) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{}) //nolint:errcheck // best effort
	}
	return n, err
}

// Close stops the outputs (requests held by an HLS muxer return), then
// shuts the listener down, waiting a bounded time for requests in flight.
func (s *httpServer) Close() {
	s.hls.Close()
	s.flv.Close() // streaming responses and WebSocket viewers end
	if s.webrtc != nil {
		s.webrtc.Close()
	}
	s.sig.Close() // WebSocket signalling sockets
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}
