package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/cmd/liveedge/admin"
	"github.com/liveedge/liveedge/cmd/liveedge/cluster"
	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/cmd/liveedge/hooks"
	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/internal/connlimit"
	"github.com/liveedge/liveedge/protocols/rtmp"
	"github.com/liveedge/liveedge/protocols/rtsp"
	"github.com/liveedge/liveedge/static"
)

// app is a running liveedge: the hub, its listeners and its sources.
type app struct {
	log  *slog.Logger
	hub  *hub.Hub
	src  *source.Manager
	hk   *hooks.Hooks // nil without hooks
	rtmp *rtmp.Server
	rtsp *rtsp.Server
	http *httpServer
	adm  *admin.Server
	cl   *cluster.Cluster // nil without cluster.redis_url

	path   string // the configuration file, "" for the embedded defaults
	mu     sync.Mutex
	cfg    *config.Config // in effect
	reload sync.Mutex     // one reload at a time
}

// Reload reads the configuration file again and puts into effect what
// changes without a restart: auth (secrets, publish secrets, switches),
// limits, hooks (URLs, timeouts, policy) and the stream entries (pulls
// whose entry changed restart on the new one; viewers of unchanged streams
// are not touched); it warns again about apps whose play tokens can
// publish (warnSharedTokens). A file that does not load or validate is
// refused with the error, and the running configuration stays. It returns the changed
// sections that need a restart (listeners, WebRTC, HLS, FLV, hub, log,
// cluster);
// those keep their running values in the configuration in effect (the
// one getServerConfig shows) until then.
func (a *app) Reload() ([]string, error) {
	a.reload.Lock()
	defer a.reload.Unlock()
	if a.path == "" {
		return nil, errors.New("running on the embedded defaults: no configuration file to reload")
	}
	cfg, err := loadConfig(a.path)
	if err != nil {
		a.log.Error("configuration reload refused: the running configuration stays", "err", err)
		return nil, err
	}
	pol, err := policy(cfg.Auth)
	if err != nil {
		a.log.Error("configuration reload refused: the running configuration stays", "err", err)
		return nil, err
	}
	var authz hub.Authorizer = pol
	if a.hk != nil {
		authz = a.hk.Authorizer(pol)
	}
	a.mu.Lock()
	old := a.cfg
	a.mu.Unlock()
	restart := effective(cfg, old)
	if err := a.src.Reload(cfg); err != nil {
		a.log.Error("configuration reload refused: the running configuration stays", "err", err)
		return nil, err
	}
	a.hub.SetAuthorizer(authz)
	a.hub.SetLimits(cfg.Limits.MaxStreams, cfg.Limits.MaxViewers, cfg.Limits.MaxViewersPerStream)
	a.hub.SetMaxBitratePerIP(int64(cfg.Limits.MaxBitratePerIP))
	if a.hk != nil {
		a.hk.Reconfigure(cfg.Hooks, cfg.Schemas())
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	warnSharedTokens(a.log, cfg.Auth)
	if len(restart) > 0 {
		a.log.Warn("configuration reloaded; these sections changed and take effect at the next restart", "sections", restart)
	} else {
		a.log.Info("configuration reloaded")
	}
	return restart, nil
}

// running returns the configuration in effect.
func (a *app) running() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// effective turns cfg, a new configuration, into the one in effect after
// a reload from old: the sections that only change at a restart keep
// their running values. It returns the names of those that differ.
func effective(cfg, old *config.Config) (restart []string) {
	nv, ov := reflect.ValueOf(cfg).Elem(), reflect.ValueOf(old).Elem()
	for _, sec := range []struct{ name, field string }{
		{"log", "Log"}, {"rtmp", "RTMP"}, {"rtsp", "RTSP"}, {"http", "HTTP"}, {"admin", "Admin"},
		{"webrtc", "WebRTC"}, {"hub", "Hub"}, {"hls", "HLS"}, {"flv", "FLV"}, {"cluster", "Cluster"},
	} {
		n, o := nv.FieldByName(sec.field), ov.FieldByName(sec.field)
		if !reflect.DeepEqual(n.Interface(), o.Interface()) {
			restart = append(restart, sec.name)
			n.Set(o)
		}
	}
	return restart
}

func loadConfig(path string) (*config.Config, error) {
	var cfg *config.Config
	if path == "" {
		cfg = config.Default()
	} else {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, err
		}
	}
	cfg.ApplyEnv(os.Getenv)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// policy builds the admission policy from the auth section.
func policy(a config.AuthConfig) (*auth.Policy, error) {
	alg, err := auth.ParseAlgorithm(a.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("auth.algorithm: %w", err)
	}
	conv := func(p config.AppAuth) auth.AppPolicy {
		return auth.AppPolicy{Secret: []byte(p.Secret), PublishSecret: []byte(p.PublishSecret),
			Play: p.Play, Publish: p.Publish, BindIP: p.BindIP, AllowedReferers: p.Referers}
	}
	pol := &auth.Policy{
		Algorithm:    alg,
		Default:      conv(a.App("*")),
		Apps:         map[string]auth.AppPolicy{},
		ClockSkew:    a.ClockSkew.Std(),
		ExpiresParam: a.ExpiresParam,
		TokenParam:   a.TokenParam,
	}
	for _, name := range a.AppNames() {
		pol.Apps[name] = conv(a.App(name))
	}
	return pol, nil
}

// warnSharedTokens logs one warning for each app (and for the default, "*")
// whose play tokens also authorize publishing: it requires tokens for both
// actions and checks both with its secret, having no publish secret or one
// equal to its secret. It is called once per start and once per reload.
func warnSharedTokens(log *slog.Logger, a config.AuthConfig) {
	for _, name := range append([]string{"*"}, a.AppNames()...) {
		p := a.App(name)
		if !p.Play || !p.Publish || p.Secret == "" {
			continue // no play token can exist or none is needed to publish
		}
		env := config.EnvPublishSecret
		if name != "*" {
			env = config.EnvPublishSecretName(name)
		}
		label := name
		if name == "*" {
			label = "* (the default)"
		}
		switch p.PublishSecret {
		case "":
			log.Warn(fmt.Sprintf("play tokens of app %s can also publish; set auth.publish_secrets", label),
				"app", name, "env", env)
		case p.Secret:
			log.Warn(fmt.Sprintf("play tokens of app %s can also publish: its publish secret is its secret; set a different auth.publish_secrets", label),
				"app", name)
		}
	}
}

// connLimit returns the listener wrapper of limits.connections_per_ip
// for one listener (its own buckets), or nil without that limit.
// Refusals are counted by the hub and logged at most once a minute.
func connLimit(cfg *config.Config, h *hub.Hub, log *slog.Logger, proto string) func(net.Listener) net.Listener {
	rate := cfg.Limits.ConnectionsPerIP
	if rate <= 0 {
		return nil
	}
	burst := cfg.Limits.ConnectionBurst
	if burst == 0 {
		burst = max(1, int(2*rate))
	}
	var mu sync.Mutex
	var last time.Time
	l := connlimit.New(rate, burst, func(ip netip.Addr) {
		h.CountRefusal("connection_rate")
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) >= time.Minute {
			last = time.Now()
			log.Warn("connections refused: rate per IP exceeded", "proto", proto, "ip", ip.String(),
				"connections_per_ip", rate, "burst", burst)
		}
	})
	return l.Wrap
}

// start runs liveedge on cfg, loaded from path ("" for the embedded
// defaults; Reload reads path again).
func start(cfg *config.Config, path string, log *slog.Logger) (*app, error) {
	pol, err := policy(cfg.Auth)
	if err != nil {
		return nil, err
	}
	warnSharedTokens(log, cfg.Auth)
	conflict := hub.ConflictRefuse
	if cfg.Hub.PublisherConflict == config.ConflictTakeover {
		conflict = hub.ConflictTakeover
	}
	var hk *hooks.Hooks
	var authz hub.Authorizer = pol
	sp := source.Params{Config: cfg, Logger: log, StateFile: cfg.Admin.StateFile}
	hp := hub.Params{}
	// The hooks are wired in even when none is set, so that a reload can
	// turn them on; a hook without a URL costs nothing.
	hk = hooks.New(hooks.Params{Config: cfg.Hooks, Logger: log, TokenParam: cfg.Auth.TokenParam,
		Schemas: cfg.Schemas()})
	authz = hk.Authorizer(pol)
	sp.OnUnknown = hk.NotFound
	hp.Events = hk.Event
	// The cluster and the pulls need each other: the pulls ask the
	// cluster who pulls from the origins, and the cluster's registration
	// says where each stream comes from.
	var srcRef *source.Manager
	var cl *cluster.Cluster
	if cfg.Cluster.Enabled() {
		var err error
		cl, err = cluster.New(cluster.Params{Config: cfg.ClusterResolved(), Logger: log,
			Source: func(in hub.StreamInfo) (string, string) { return streamSource(srcRef, in) }})
		if err != nil {
			if hk != nil {
				hk.Close()
			}
			return nil, err
		}
		sp.Cluster = cl
	}
	src, err := source.New(sp)
	if err != nil {
		if hk != nil {
			hk.Close()
		}
		return nil, err
	}
	srcRef = src
	gop := cache.Limits{
		MaxBytes:    int(cfg.Hub.GOPCache.MaxBytes),
		MaxDuration: cfg.Hub.GOPCache.MaxDuration.Std(),
		MaxFrames:   cfg.Hub.GOPCache.MaxFrames,
		MaxLag:      cfg.Hub.MaxLag.Std(),
	}
	h := hub.New(hub.Params{
		Logger:              log,
		GOP:                 gop,
		SlowViewerTimeout:   cfg.Hub.SlowViewerTimeout.Std(),
		Conflict:            conflict,
		StartTimeout:        cfg.Hub.StartTimeout.Std(),
		Authorizer:          authz,
		Sourcer:             src,
		Events:              hp.Events,
		MaxStreams:          cfg.Limits.MaxStreams,
		MaxViewers:          cfg.Limits.MaxViewers,
		MaxViewersPerStream: cfg.Limits.MaxViewersPerStream,
		MaxBitratePerIP:     int64(cfg.Limits.MaxBitratePerIP),
	})
	if hk != nil {
		hk.Attach(h, src)
	}
	a := &app{log: log, hub: h, src: src, hk: hk, cl: cl, cfg: cfg, path: path}
	// Edge selection: the cluster's nodes, or this node alone.
	var node interface {
		Bound(proto string, addr net.Addr)
		ID() string
	}
	var route http.Handler
	if cl != nil {
		cl.SetHub(h)
		node = cl
		route = cluster.RouteHandler(cl.RouteNodes, cl.ID(), cfg.Auth.ExpiresParam, cfg.Auth.TokenParam)
	} else {
		local := cluster.NewLocal(cfg.ClusterResolved(), h)
		node = local
		route = cluster.RouteHandler(local.Nodes, local.ID(), cfg.Auth.ExpiresParam, cfg.Auth.TokenParam)
	}

	if cfg.RTMP.Enabled() {
		a.rtmp, err = rtmp.Listen(rtmp.Params{
			Listen:       cfg.RTMP.Listen,
			Hub:          h,
			Logger:       log,
			WriteTimeout: cfg.Hub.SlowViewerTimeout.Std(),
			WrapListener: connLimit(cfg, h, log, "rtmp"),
		})
		if err != nil {
			a.Close()
			return nil, err
		}
	}
	if cfg.RTSP.Enabled() {
		if a.rtsp, err = listenRTSP(cfg, h, gop, log); err != nil {
			a.Close()
			return nil, err
		}
	}
	if cfg.HTTP.Enabled() {
		if a.http, err = listenHTTP(cfg, h, static.Sources(dashboardSources{src}), route, log); err != nil {
			a.Close()
			return nil, err
		}
	}
	// Static pulls (and the demo) start now; on-demand pulls when the hub
	// asks for them.
	if a.rtmp != nil {
		node.Bound("rtmp", a.rtmp.Addr())
	}
	if a.rtsp != nil {
		node.Bound("rtsp", a.rtsp.Addr())
	}
	if a.http != nil {
		node.Bound("http", a.http.ln.Addr())
	}
	if cl != nil {
		cl.Start()
	}
	if err := src.Start(h); err != nil {
		a.Close()
		return nil, err
	}
	if cfg.Admin.Enabled() {
		ap := admin.Params{Config: cfg, Hub: h, Sources: src, Logger: log, Version: version,
			Reload: a.Reload, Handlers: map[string]http.Handler{cluster.RoutePath: route}}
		ap.Current = a.running
		if cl != nil {
			ap.Handlers["/api/v1/cluster"] = cl.Handler()
			ap.Collectors = append(ap.Collectors, cl.Collector(cfg.Admin.MetricsMaxStreams))
		}
		a.adm, err = admin.Listen(ap)
		if err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// Close stops sources and listeners and ends every stream.
func (a *app) Close() {
	if a.adm != nil {
		a.adm.Close()
	}
	a.src.Close()
	if a.cl != nil {
		a.cl.Close() // after the pulls released their leases
	}
	a.hub.Close()
	if a.rtmp != nil {
		a.rtmp.Close()
	}
	if a.rtsp != nil {
		a.rtsp.Close()
	}
	if a.http != nil {
		a.http.Close()
	}
	if a.hk != nil {
		a.hk.Close()
	}
}

// listenRTSP starts the RTSP output; UDP RTP/RTCP ports are on the host of
// rtsp.listen.
func listenRTSP(cfg *config.Config, h *hub.Hub, gop cache.Limits, log *slog.Logger) (*rtsp.Server, error) {
	p := rtsp.Params{
		Listen:            cfg.RTSP.Listen,
		WrapListener:      connLimit(cfg, h, log, "rtsp"),
		Hub:               h,
		Logger:            log,
		GOP:               gop,
		WriteTimeout:      cfg.Hub.SlowViewerTimeout.Std(),
		SlowViewerTimeout: cfg.Hub.SlowViewerTimeout.Std(),
		ExpiresParam:      cfg.Auth.ExpiresParam,
		TokenParam:        cfg.Auth.TokenParam,
	}
	if port := cfg.RTSP.UDPRTPPort; port != 0 {
		host, _, err := net.SplitHostPort(cfg.RTSP.Listen)
		if err != nil {
			return nil, fmt.Errorf("rtsp.listen: %w", err)
		}
		p.UDPRTPAddress = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return rtsp.Listen(p)
}

// streamSource says where the node takes a stream from, for the cluster's
// registration: "sibling" (another node) or "origin" for a pull, with its
// URL, "publish" for a publisher, "" while nothing feeds it.
func streamSource(src *source.Manager, in hub.StreamInfo) (kind, url string) {
	if in.Producer == nil {
		return "", ""
	}
	if in.Producer.Protocol != "pull" {
		return "publish", ""
	}
	if src != nil {
		if st, ok := src.Stats(in.Name); ok {
			if st.Sibling {
				return "sibling", st.Origin
			}
			return "origin", st.Origin
		}
	}
	return "origin", ""
}
