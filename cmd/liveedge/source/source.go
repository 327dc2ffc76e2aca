// Package source runs the origin pulls of the configured streams: static
// pulls from start-up, on-demand pulls while someone watches, each with one
// hub producer that stays across origin switches (failover, failback), so
// that viewers stay connected. It implements hub.Sourcer.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/demo"
	"github.com/liveedge/liveedge/protocols/origin"
)

// Defaults of Params.
const (
	DefaultProbeInterval = 2 * time.Second
	DefaultBackoffMin    = 500 * time.Millisecond
	DefaultBackoffMax    = 15 * time.Second
)

// Params configure a Manager.
type Params struct {
	// Config supplies the stream entries and, for signed pulls, the auth
	// section. It must be valid and is not modified.
	Config *config.Config
	Logger *slog.Logger
	// ProbeInterval is how often a pull on a backup origin probes the
	// primary when failback is on.
	ProbeInterval time.Duration
	// BackoffMin and BackoffMax bound the wait after every origin of a
	// stream failed; it doubles on each failed round, with ±25 % jitter.
	BackoffMin, BackoffMax time.Duration
	// ConnectTimeout bounds each origin connect (default
	// rtmp.DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// Dialer opens origin connections; nil means a net.Dialer with TCP
	// keepalive.
	Dialer *net.Dialer
	// StateFile, if set, keeps the proxies added at run time (JSON),
	// restored by Start.
	StateFile string
	// OnUnknown, if set, is called by Want for a stream that no pull
	// covers: no entry matches it, or only a publish entry (a webhook may
	// then name an origin, see AddProxy). It must not block.
	OnUnknown func(name string)
	// Cluster, if set, elects the one node of a cluster that pulls a
	// stream from its origins; the other nodes pull it from that node.
	Cluster Coordinator
}

// Stats are the counters of one stream's pull.
type Stats struct {
	Origin    string // current origin (without query), "" when none is up
	Up        bool   // media is flowing from Origin
	Sibling   bool   // Origin is another node of the cluster
	Connects  uint64 // connections that delivered media
	Failures  uint64 // attempts that ended in an error
	Failovers uint64 // switches to another origin after a failure
	Failbacks uint64 // switches back to the primary
	BytesIn   uint64 // bytes received from origins
	Since     time.Time
}

// Manager starts, fails over and stops origin pulls.
type Manager struct {
	p   Params
	log *slog.Logger
	// set is the configuration in effect and its signing algorithm;
	// Reload replaces it.
	set atomic.Pointer[settings]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// probers are the background health probes, keyed by origin URL and
	// egress: an immutable map, replaced by Start and Reload (under
	// probeMu).
	probers atomic.Pointer[map[healthKey]*prober]
	probeMu sync.Mutex
	started atomic.Bool

	mu      sync.Mutex
	hub     *hub.Hub
	pending map[string]*config.Stream // wanted before Start: started by it
	pulls   map[string]*pull
	proxies map[string]*config.Stream // added at run time, by stream name
	closed  bool
	clip    *demo.Clip
}

// New returns a manager; Start begins its work.
func New(p Params) (*Manager, error) {
	if p.Config == nil {
		return nil, errors.New("source: no configuration")
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.ProbeInterval <= 0 {
		p.ProbeInterval = DefaultProbeInterval
	}
	if p.BackoffMin <= 0 {
		p.BackoffMin = DefaultBackoffMin
	}
	if p.BackoffMax < p.BackoffMin {
		p.BackoffMax = max(DefaultBackoffMax, p.BackoffMin)
	}
	if p.Dialer == nil {
		p.Dialer = &net.Dialer{KeepAlive: 15 * time.Second}
	}
	alg, err := auth.ParseAlgorithm(p.Config.Auth.Algorithm)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{p: p, log: p.Logger, ctx: ctx, cancel: cancel, pulls: map[string]*pull{},
		proxies: map[string]*config.Stream{}}
	m.set.Store(&settings{cfg: p.Config, alg: alg})
	return m, nil
}

// Reload puts cfg (valid) in effect for the pulls: a running pull whose
// entry changed (or that no entry covers any more) restarts on the new
// one, on-demand pulls when a viewer still wants them (the viewers stay
// connected through the hub's producer grace), static ones at once; new
// static entries start; pulls whose entry did not change, and run-time
// proxies, are not touched. Background probes start for origins the
// reload adds and stop for those it removes; the others keep their state.
func (m *Manager) Reload(cfg *config.Config) error {
	alg, err := auth.ParseAlgorithm(cfg.Auth.Algorithm)
	if err != nil {
		return err
	}
	m.set.Store(&settings{cfg: cfg, alg: alg})
	if m.started.Load() {
		m.syncProbes(cfg)
	}
	m.mu.Lock()
	var stale []*pull
	for name, pl := range m.pulls {
		if m.proxies[name] == pl.entry {
			continue
		}
		e, ok := cfg.MatchStream(name)
		if !ok || !reflect.DeepEqual(*e, *pl.entry) {
			stale = append(stale, pl)
		}
	}
	m.mu.Unlock()
	for _, pl := range stale {
		pl.log.Info("configuration changed: restarting the pull")
		pl.cancel()
	}
	for i := range cfg.Streams {
		e := &cfg.Streams[i]
		if e.Mode != config.ModeStatic || !hub.ValidName(e.Match) {
			continue
		}
		m.mu.Lock()
		old := m.pulls[e.Match]
		m.mu.Unlock()
		if old == nil || slices.Contains(stale, old) {
			m.startWhenFree(e.Match, e, old)
		}
	}
	return nil
}

// Start attaches the manager to the hub, starts the background health
// probes of the origins and the static pulls.
func (m *Manager) Start(h *hub.Hub) error {
	// The probers are all made before any pull can read them.
	if !m.started.Swap(true) {
		m.syncProbes(m.config())
	}
	m.mu.Lock()
	m.hub = h
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	// Viewers that came before Start (the listeners open first).
	for name, e := range pending {
		m.start(name, e)
	}
	cfg := m.config()
	for i := range cfg.Streams {
		e := &cfg.Streams[i]
		if e.Mode != config.ModeStatic {
			continue
		}
		if !hub.ValidName(e.Match) {
			return fmt.Errorf("streams[%d]: static pull needs an exact app/stream match, not %q", i, e.Match)
		}
		m.start(e.Match, e)
	}
	m.restoreProxies()
	return nil
}

// settings is a configuration and what is derived from it.
type settings struct {
	cfg *config.Config
	alg auth.Algorithm
}

// config returns the configuration in effect.
func (m *Manager) config() *config.Config { return m.set.Load().cfg }

// Want starts the on-demand pull of name unless it runs already or no
// on_demand entry matches; when no pull covers name it tells OnUnknown.
// It does not block.
func (m *Manager) Want(name string) {
	e, ok := m.match(name)
	if (!ok || e.Mode == config.ModePublish) && m.p.OnUnknown != nil {
		m.p.OnUnknown(name)
		return
	}
	if !ok || e.Mode != config.ModeOnDemand {
		return
	}
	m.start(name, e)
}

// start runs the pull of name unless one runs already.
func (m *Manager) start(name string, e *config.Stream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.pulls[name] != nil {
		return
	}
	if m.hub == nil {
		if m.pending == nil {
			m.pending = map[string]*config.Stream{}
		}
		m.pending[name] = e
		return
	}
	pl := &pull{m: m, name: name, entry: e, static: e.Mode == config.ModeStatic,
		urls: e.OriginURLs(name), egress: egressOf(e), log: m.log.With("stream", name)}
	pl.ctx, pl.cancel = context.WithCancel(m.ctx)
	pl.done = make(chan struct{})
	pl.dialer = pl.egress.dialer(m.p.Dialer)
	pl.stats.Since = time.Now()
	m.pulls[name] = pl
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		pl.run()
		pl.cancel()
		m.mu.Lock()
		if m.pulls[name] == pl {
			delete(m.pulls, name)
		}
		closed := m.closed
		m.mu.Unlock()
		close(pl.done)
		// A viewer may have arrived while the pull was closing.
		if !closed && !pl.static {
			if in, ok := m.hub.Stream(name); ok && (viewers(in) > 0) {
				m.Want(name)
			}
		}
	}()
}

// Stats returns the counters of name's pull, if one runs.
func (m *Manager) Stats(name string) (Stats, bool) {
	m.mu.Lock()
	pl := m.pulls[name]
	m.mu.Unlock()
	if pl == nil {
		return Stats{}, false
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.stats, true
}

// Close stops every pull and waits for them.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

func (m *Manager) demoClip() (*demo.Clip, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.clip == nil {
		c, err := demo.Default()
		if err != nil {
			return nil, err
		}
		m.clip = c
	}
	return m.clip, nil
}

// sign returns rawURL with fresh expires and token parameters for the
// origin's "app/stream", signed with the secret of its app.
func (m *Manager) sign(rawURL string, ttl time.Duration) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	name := strings.TrimPrefix(u.Path, "/")
	app, _, _ := strings.Cut(name, "/")
	a := &m.config().Auth
	secret, ok := a.Secret(app)
	if !ok {
		return "", fmt.Errorf("no secret to sign pulls of app %q", app)
	}
	s := auth.Signer{Algorithm: m.set.Load().alg, Secret: []byte(secret), ExpiresParam: a.ExpiresParam, TokenParam: a.TokenParam}
	q := u.Query()
	for k, v := range s.Query(name, ttl, time.Now(), netip.Addr{}) {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func viewers(in hub.StreamInfo) int {
	n := in.Waiting
	for _, v := range in.Viewers {
		n += v
	}
	return n
}

// jitter spreads d by ±25 %.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

// reason names why an origin attempt failed, for logs.
func reason(err error) string {
	switch {
	case errors.Is(err, ErrBind):
		return "bind"
	case errors.Is(err, origin.ErrStalled):
		return "stall"
	case errors.Is(err, origin.ErrNoKeyframe):
		return "no keyframe"
	case errors.Is(err, origin.ErrOriginStatus):
		return "status"
	case errors.Is(err, origin.ErrOriginClosed):
		return "closed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return "timeout"
	case errors.Is(err, origin.ErrConnectFailed):
		return "connect"
	}
	return "error"
}
