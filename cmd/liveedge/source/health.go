package source

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/protocols/rtmp"
)

// OriginHealth is what the background probes know of one origin.
type OriginHealth struct {
	Origin   string        // URL without query or credentials
	Known    bool          // at least one probe finished
	Up       bool          // the last probe played the stream
	RTT      time.Duration // connect + play commands of the last successful probe
	Since    time.Time     // when the state last changed
	LastErr  string        // why the last failed probe failed
	Interval time.Duration
}

// healthKey identifies a probed origin: the same URL left by another
// link is another path to watch.
type healthKey struct {
	url    string
	egress egress
}

// prober probes one origin in the background, for as long as the
// manager runs, and keeps its state.
type prober struct {
	key      healthKey
	entry    *config.Stream // signs the probe URL when the entry signs its pulls
	dialer   *net.Dialer
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	first     chan struct{} // closed when the first probe finished
	firstOnce sync.Once
	ctx       context.Context // ends with the manager, or when a reload drops the origin
	cancel    context.CancelFunc

	mu    sync.Mutex
	state OriginHealth
}

// probeable reports whether origin o of entry e is probed in the
// background: an rtmp(s) or rtsp(s) URL without placeholders (an RTSP
// probe stops after DESCRIBE: it costs the origin no media). An origin with $stream
// or $app has one URL per stream, known only once the stream is wanted;
// those are left to the pulls themselves (failover, and the failback probe
// of the primary), so that idle patterns cost the origins nothing.
func probeable(e *config.Stream, o string) bool {
	if e.ProbeInterval <= 0 || (e.Mode != config.ModeStatic && e.Mode != config.ModeOnDemand) {
		return false
	}
	return (strings.HasPrefix(o, "rtmp://") || strings.HasPrefix(o, "rtmps://") || isRTSP(o)) && !strings.Contains(o, "$")
}

// syncProbes makes the background probes those of cfg: a prober for
// every probeable origin (an origin listed by several entries with the
// same egress is probed once, at the shortest interval); probers of
// origins cfg no longer lists stop, those it still lists keep their state,
// and new ones start. Start and Reload call it.
func (m *Manager) syncProbes(cfg *config.Config) {
	m.probeMu.Lock()
	defer m.probeMu.Unlock()
	old := m.probeMap()
	next := map[healthKey]*prober{}
	timeout := m.p.ConnectTimeout
	if timeout <= 0 {
		timeout = rtmp.DefaultConnectTimeout
	}
	var started []*prober
	for i := range cfg.Streams {
		e := &cfg.Streams[i]
		for _, o := range e.Origins {
			if !probeable(e, o) {
				continue
			}
			k := healthKey{url: o, egress: egressOf(e)}
			if pr := next[k]; pr != nil {
				pr.setInterval(min(pr.getInterval(), e.ProbeInterval.Std()))
				continue
			}
			if pr := old[k]; pr != nil && reflect.DeepEqual(*pr.entry, *e) {
				pr.setInterval(e.ProbeInterval.Std())
				next[k] = pr
				continue
			}
			pr := &prober{key: k, entry: e, dialer: k.egress.dialer(m.p.Dialer), first: make(chan struct{}),
				interval: e.ProbeInterval.Std(), timeout: timeout,
				log: m.log.With("origin", rtmp.RedactURL(o))}
			pr.state = OriginHealth{Origin: rtmp.RedactURL(o), Since: time.Now()}
			if prev := old[k]; prev != nil {
				// The entry changed (signing, interval): a new prober,
				// starting from what the old one knew.
				prev.mu.Lock()
				pr.state = prev.state
				prev.mu.Unlock()
			}
			pr.ctx, pr.cancel = context.WithCancel(m.ctx)
			next[k] = pr
			started = append(started, pr)
		}
	}
	for k, pr := range old {
		if next[k] != pr {
			pr.cancel()
			if next[k] == nil {
				pr.log.Info("origin no longer configured: background probe stopped")
			}
		}
	}
	m.probers.Store(&next)
	for _, pr := range next {
		pr.mu.Lock()
		pr.state.Interval = pr.interval
		pr.mu.Unlock()
	}
	for _, pr := range started {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			pr.run(m)
		}()
	}
}

// probeMap returns the probers in effect (never nil).
func (m *Manager) probeMap() map[healthKey]*prober {
	if p := m.probers.Load(); p != nil {
		return *p
	}
	return nil
}

func (pr *prober) getInterval() time.Duration {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.interval
}

func (pr *prober) setInterval(d time.Duration) {
	pr.mu.Lock()
	pr.interval = d
	pr.mu.Unlock()
}

func (pr *prober) run(m *Manager) {
	defer pr.closeFirst()
	for i := 0; ; i++ {
		if m.wantProbe(pr.key.url) {
			pr.probe(m)
		}
		if i == 0 {
			pr.closeFirst()
		}
		if !sleep(pr.ctx, jitter(pr.getInterval())) {
			return
		}
	}
}

// closeFirst marks the first probe done (or the prober stopped).
func (pr *prober) closeFirst() { pr.firstOnce.Do(func() { close(pr.first) }) }

func (pr *prober) probe(m *Manager) {
	u := pr.key.url
	var err error
	if pr.entry.Sign {
		u, err = m.sign(u, pr.entry.SignTTL.Std())
	}
	var rtt time.Duration
	if err == nil {
		rtt, err = probeOrigin(pr.ctx, u, pr.timeout, pr.dialer)
		err = pr.key.egress.bindError(pr.key.url, err)
	}
	if pr.ctx.Err() != nil {
		return
	}
	pr.mu.Lock()
	s := &pr.state
	changed := !s.Known || s.Up != (err == nil)
	s.Known, s.Up = true, err == nil
	if err == nil {
		s.RTT, s.LastErr = rtt, ""
	} else {
		s.LastErr = err.Error()
	}
	if changed {
		s.Since = time.Now()
	}
	pr.mu.Unlock()
	switch {
	case !changed:
	case err == nil:
		pr.log.Info("origin health", "state", "up", "rtt", rtt.Round(time.Millisecond))
	default:
		pr.log.Warn("origin health", "state", "down", "reason", reason(err), "err", err)
	}
}

// wantProbe reports whether the origin rawURL is to be probed now: always
// on a node alone; in a cluster only while this node pulls, from its
// origins, a stream that lists it (the other nodes pull from it and need
// no origin health), so that the origins see no probes from every node.
func (m *Manager) wantProbe(rawURL string) bool {
	if m.p.Cluster == nil {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pl := range m.pulls {
		if pl.leased.Load() && slices.Contains(pl.urls, rawURL) {
			return true
		}
	}
	return false
}

// down reports whether the background probes found the origin rawURL,
// left with g, down at their last check. Origins that are not probed, or
// not yet, are not down.
func (m *Manager) down(rawURL string, g egress) bool {
	pr := m.probeMap()[healthKey{url: rawURL, egress: g}]
	if pr == nil {
		return false
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.state.Known && !pr.state.Up
}

// awaitProbes waits, until deadline, for the first background probe of
// the origins in list order up to the first one found up: a pull that
// starts with the manager then starts on a healthy origin rather than
// trying one the probes are about to find down. Origins that are not
// probed are not waited for.
func (m *Manager) awaitProbes(ctx context.Context, urls []string, g egress, deadline time.Time) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for _, u := range urls {
		pr := m.probeMap()[healthKey{url: u, egress: g}]
		if pr == nil {
			return
		}
		select {
		case <-pr.first:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
		if !m.down(u, g) {
			return
		}
	}
}

// Health returns the state of every origin probed in the background,
// sorted by origin.
func (m *Manager) Health() []OriginHealth {
	probers := m.probeMap()
	out := make([]OriginHealth, 0, len(probers))
	for _, pr := range probers {
		pr.mu.Lock()
		out = append(out, pr.state)
		pr.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out
}
