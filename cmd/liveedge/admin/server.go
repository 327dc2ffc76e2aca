// Package admin is the admin listener of liveedge: Prometheus metrics at
// /metrics, a JSON API under /api/v1/ and a ZLMediaKit-compatible subset
// under /index/api/. Every request needs the configured secret (a Bearer
// header or a secret parameter), unless no secret is set and the listener
// is bound to a loopback address; even then, requests a browser sends on
// behalf of another site, or under a host name that is not a loopback one,
// are refused (see foreign).
package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// Sources is what the admin API needs of the origin pulls; a
// *source.Manager is one.
type Sources interface {
	Health() []source.OriginHealth
	Pulls() map[string]source.Stats
	Proxies() []source.Proxy
	AddProxy(p source.Proxy) error
	RemoveProxy(stream string) error
}

// Params configure a Server.
type Params struct {
	// Config supplies the admin section (listen address, secret, metrics
	// limits, fixed for the Server's life) and the configuration in
	// effect that getServerConfig shows, redacted, and the listeners'
	// addresses come from, unless Current is set. It is not modified.
	Config *config.Config
	// Current, if set, returns the configuration in effect after reloads
	// (getServerConfig, listener addresses, schemas); a nil result means
	// Config.
	Current func() *config.Config
	Hub     *hub.Hub
	Sources Sources // nil: no pulls
	Logger  *slog.Logger
	// Version is reported by /api/v1/version.
	Version string
	// Reload, if set, reloads the configuration file (POST
	// /api/v1/reload); it returns the changed sections that need a
	// restart.
	Reload func() (restart []string, err error)
	// Handlers are more endpoints by exact path (behind the secret like
	// the rest), such as the cluster's.
	Handlers map[string]http.Handler
	// Collectors are more Prometheus collectors for /metrics.
	Collectors []prometheus.Collector
}

// Server serves the admin endpoints.
type Server struct {
	p      Params
	log    *slog.Logger
	secret []byte
	open   bool // no secret needed: none set and the listener is loopback
	mux    *http.ServeMux
	start  time.Time

	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// New returns the admin handler, without a listener; it is open without a
// secret only if no secret is configured and admin.listen is a loopback
// address. Listen is New plus the listener.
func New(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Version == "" {
		p.Version = "dev"
	}
	s := &Server{p: p, log: p.Logger.With("proto", "admin"), secret: []byte(p.Config.Admin.Secret),
		start: time.Now()}
	s.open = len(s.secret) == 0 && p.Config.Admin.Loopback()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(p.Hub, distinct(p.Sources), p.Config.Admin.MetricsMaxStreams),
	)
	reg.MustRegister(p.Collectors...)
	s.mux = http.NewServeMux()
	s.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}))
	s.routeAPI()
	if p.Config.Admin.Pprof {
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	for path, h := range p.Handlers {
		s.mux.Handle(path, h)
	}
	return s
}

// config returns the configuration in effect. The admin section itself
// (listener, secret, metrics limits) keeps its start-up values.
func (s *Server) config() *config.Config {
	if s.p.Current != nil {
		if c := s.p.Current(); c != nil {
			return c
		}
	}
	return s.p.Config
}

// Listen starts the admin listener on p.Config.Admin.Listen.
func Listen(p Params) (*Server, error) {
	s := New(p)
	ln, err := net.Listen("tcp", p.Config.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	// What counts is the address actually bound.
	tcp, _ := ln.Addr().(*net.TCPAddr)
	s.open = len(s.secret) == 0 && tcp != nil && tcp.IP.IsLoopback()
	if len(s.secret) == 0 && !s.open {
		s.log.Warn("admin listener is not on a loopback address and has no secret: every request is refused")
	}
	s.ln = ln
	s.done = make(chan struct{})
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	s.log.Info("listening", "addr", ln.Addr().String())
	return s, nil
}

// Addr returns the listener's address ("" for a Server made by New).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops the listener, waiting a bounded time for requests in flight.
func (s *Server) Close() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}

// ServeHTTP checks the method and routes the request. It sends no CORS
// headers: the admin API is not for browsers on other origins.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if strings.HasPrefix(r.URL.Path, zlmPrefix) {
		s.serveZLM(w, r) // checks the secret itself: it may come in the body
		return
	}
	if !s.authorized(r, r.URL.Query().Get("secret")) {
		writeError(w, http.StatusUnauthorized, "secret required")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the secret, as a Bearer header or
// as param (the secret parameter), or needs none.
func (s *Server) authorized(r *http.Request, param string) bool {
	if s.open {
		return !foreign(r)
	}
	if len(s.secret) == 0 {
		return false
	}
	got := param
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			got = strings.TrimSpace(tok)
		}
	}
	if got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), s.secret) == 1
}

// foreign reports whether r was sent by a web page of another site, or
// names this listener by a host that is not a loopback one (a DNS
// rebinding page, or a proxy exposing the listener). Without a secret the
// loopback-only listener is the only protection, and a page the
// operator's browser opens can reach loopback too: a cross-site GET or
// form POST needs no CORS preflight. Browsers send Sec-Fetch-Site (all
// current ones) or Origin (cross-origin POSTs) and pages cannot forge
// them; curl, scripts and Prometheus send neither.
func foreign(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host != "" && !config.IsLoopbackHost(host) {
		return true
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "none", "same-origin":
	default:
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err != nil || !config.IsLoopbackHost(u.Hostname())
	}
	return false
}

// distinctOrigins gives the metrics one health entry per origin label.
// Origins are shown without their query (tokens) and probed once per
// egress link, so two probes can share a label; collected twice, it makes
// Prometheus refuse the whole scrape (a 500). Merged, the origin is up
// only if every probe of it is, and its RTT is the largest.
type distinctOrigins struct{ Sources }

func distinct(s Sources) Sources {
	if s == nil {
		return nil
	}
	return distinctOrigins{s}
}

func (d distinctOrigins) Health() []source.OriginHealth {
	var out []source.OriginHealth
	idx := map[string]int{}
	for _, h := range d.Sources.Health() {
		if !h.Known {
			continue
		}
		if i, ok := idx[h.Origin]; ok {
			out[i].Up = out[i].Up && h.Up
			out[i].RTT = max(out[i].RTT, h.RTT)
			continue
		}
		idx[h.Origin] = len(out)
		out = append(out, h)
	}
	return out
}
