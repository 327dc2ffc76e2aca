package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
	"github.com/liveedge/liveedge/protocols/rtmp"
)

// pull is one stream's pull: a loop of sessions (static pulls restart
// forever), each holding one hub producer across origin switches.
type pull struct {
	m      *Manager
	ctx    context.Context // ends with the manager, or when the pull is removed
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned and the pull left the manager
	name   string
	entry  *config.Stream
	static bool
	urls   []string
	egress egress
	dialer *net.Dialer // m.p.Dialer with the entry's egress settings
	log    *slog.Logger
	leased atomic.Bool // in a cluster: this node holds the stream's lease

	mu    sync.Mutex
	stats Stats
}

// errIdle ends an on-demand session that nobody watches.
var errIdle = errors.New("no viewers")

func (pl *pull) run() {
	m := pl.m
	pl.log.Info("pull started", "mode", pl.entry.Mode, "origins", len(pl.urls))
	backoff := m.p.BackoffMin
	for {
		err := pl.session()
		if pl.ctx.Err() != nil || !pl.static {
			pl.logEnd(err)
			return
		}
		d := jitter(backoff)
		backoff = min(2*backoff, m.p.BackoffMax)
		pl.log.Warn("static pull session ended, restarting", "err", err, "retry_in", d.Round(time.Millisecond))
		if !sleep(pl.ctx, d) {
			pl.logEnd(nil)
			return
		}
	}
}

func (pl *pull) logEnd(err error) {
	pl.mu.Lock()
	s := pl.stats
	pl.mu.Unlock()
	reason := "shutdown"
	if err != nil {
		reason = err.Error()
	}
	pl.log.Info("pull ended", "reason", reason, "connects", s.Connects, "failures", s.Failures,
		"failovers", s.Failovers, "failbacks", s.Failbacks, "bytes_in", s.BytesIn,
		"duration", time.Since(s.Since).Round(time.Millisecond))
}

// session holds one producer and switches origins until the pull is no
// longer needed.
func (pl *pull) session() error {
	m := pl.m
	p, err := m.hub.Publish(pl.name, hub.Session{Protocol: "pull", Remote: "origins"})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancelCause(pl.ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	if !pl.static {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl.watchIdle(ctx, cancel)
		}()
	}

	n := len(pl.urls)
	timeout := m.p.ConnectTimeout
	if timeout <= 0 {
		timeout = rtmp.DefaultConnectTimeout
	}
	// The first origin is the first one the background probes did not
	// find down (waiting, at most the connect timeout, for their first
	// results); in a cluster, only once this node is to pull from the
	// origins.
	idx, failed, first := 0, 0, true
	chosen := false
	choose := func() {
		if chosen {
			return
		}
		chosen = true
		m.awaitProbes(ctx, pl.urls, pl.egress, time.Now().Add(timeout))
		if idx = pl.firstHealthy(); idx > 0 {
			pl.log.Info("starting on a backup: the probes found the origins before it down",
				"origin", rtmp.RedactURL(pl.urls[idx]), "skipped", idx)
		}
	}
	clustered := pl.clustered()
	if !clustered {
		choose()
	}
	backoff := m.p.BackoffMin
	var handed upstream // a connection to the primary a probe found healthy
	var sl *slate       // the offline slate, while every origin is down
	hadMedia := false
	// leaveSlate ends the slate once an origin is connected: the origin's
	// media follows on a rebased timeline from its first keyframe.
	leaveSlate := func() {
		if sl != nil {
			sl.stop()
			sl = nil
			p.Discontinuity()
			pl.log.Info("origin back: offline slate ended")
		}
	}
	defer func() {
		if sl != nil {
			sl.stop()
		}
	}()
	// In a cluster, the node holding the stream's lease pulls from the
	// origins and the others pull from it.
	var lease Lease
	defer func() {
		pl.leased.Store(false)
		if lease != nil {
			lease.Release()
		}
	}()
	var dead string     // a node that refused the connection
	var standalone bool // the cluster was out of reach
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		select {
		case <-p.Done():
			return hub.ErrReplaced
		default:
		}
		if lost(lease) {
			pl.leased.Store(false)
			lease.Release()
			lease = nil
			if handed != nil {
				handed.Close()
				handed = nil
			}
		}
		if !first && sl == nil {
			p.Discontinuity()
		}
		first = false
		if clustered && lease == nil {
			var sibling string
			lease, sibling = pl.clusterClaim(ctx, dead, &standalone)
			dead = ""
			if sibling != "" {
				// A node that refuses the connection is gone; one that
				// ended after media is asked again at once (it may be
				// gone too); otherwise the cluster is asked again after
				// a pause.
				stopped, refused, media := pl.attemptSibling(ctx, p, sibling, leaveSlate)
				switch {
				case stopped, media:
				case refused:
					dead = sibling
				default:
					sleep(ctx, siblingRetry)
				}
				continue
			}
		}
		pl.leased.Store(lease != nil)
		choose()
		var actx context.Context
		var stop context.CancelFunc
		var rejoined chan Lease
		if clustered && lease == nil {
			actx, stop, rejoined = pl.rejoin(ctx)
		} else {
			actx, stop = leaseContext(ctx, lease)
		}
		res := pl.attempt(actx, p, idx, handed, leaveSlate)
		stop()
		if rejoined != nil {
			if l, ok := <-rejoined; ok {
				lease = l
				pl.leased.Store(true)
			}
		}
		handed = nil
		hadMedia = hadMedia || res.media
		if res.stopped {
			if res.failback != nil {
				res.failback.Close()
			}
			continue // the loop head returns
		}
		if res.failback != nil {
			pl.log.Info("failback", "from", rtmp.RedactURL(pl.urls[idx]), "to", rtmp.RedactURL(pl.urls[0]))
			pl.count(func(s *Stats) { s.Failbacks++ })
			idx, handed, failed, backoff = 0, res.failback, 0, m.p.BackoffMin
			continue
		}
		next, skipped := pl.nextHealthy(idx)
		from := rtmp.RedactURL(pl.urls[idx])
		pl.log.Warn("origin down", "origin", from, "reason", reason(res.err), "err", res.err, "had_media", res.media)
		if res.media {
			failed, backoff = 0, m.p.BackoffMin
		} else {
			failed++
		}
		failed += skipped
		if next != idx {
			pl.count(func(s *Stats) { s.Failovers++ })
			pl.log.Warn("failover", "from", from, "to", rtmp.RedactURL(pl.urls[next]), "reason", reason(res.err))
		}
		idx = next
		if failed >= n {
			d := jitter(backoff)
			backoff = min(2*backoff, m.p.BackoffMax)
			failed = 0
			pl.log.Warn("all origins failed", "retry_in", d.Round(time.Millisecond))
			if sl == nil && hadMedia {
				sl = pl.startSlate(ctx, p)
			}
			if !sleep(ctx, d) {
				continue
			}
		}
	}
}

// firstHealthy returns the first origin, in list order, that the
// background probes did not find down (0 when they found all down or
// probe none).
func (pl *pull) firstHealthy() int {
	for i, u := range pl.urls {
		if !pl.m.down(u, pl.egress) {
			return i
		}
	}
	return 0
}

// nextHealthy returns the origin to fail over to from idx: the next one
// in list order, cyclically, that the probes did not find down, and how
// many it skipped; when the probes found every other origin down, the
// next one in order (it is tried anyway: a probe can be stale).
func (pl *pull) nextHealthy(idx int) (next, skipped int) {
	n := len(pl.urls)
	for k := 1; k < n; k++ {
		i := (idx + k) % n
		if !pl.m.down(pl.urls[i], pl.egress) {
			if k > 1 {
				pl.log.Info("skipping origins the probes found down", "skipped", k-1, "to", rtmp.RedactURL(pl.urls[i]))
			}
			return i, k - 1
		}
	}
	return (idx + 1) % n, 0
}

// attemptResult is how one origin attempt ended.
type attemptResult struct {
	err      error
	media    bool
	stopped  bool     // the session or the producer ended
	failback upstream // the primary is healthy: continue on this connection
}

// attempt feeds p from origin idx (or from a connection to it that a
// probe already opened) until that fails or the session stops. On a
// backup with failback on, it probes the primary meanwhile. connected runs
// once the origin is ready, before its media reaches p.
func (pl *pull) attempt(ctx context.Context, p *hub.Producer, idx int, conn upstream, connected func()) attemptResult {
	m := pl.m
	origin := pl.urls[idx]
	actx, acancel := context.WithCancel(ctx)
	defer acancel()

	handoff := make(chan upstream, 1)
	var wg sync.WaitGroup
	if idx > 0 && pl.entry.Failback && pl.urls[0] != config.DemoOrigin {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl.probePrimary(actx, acancel, handoff)
		}()
	}

	start := time.Now()
	var media bool
	onMedia := func() {
		media = true
		pl.count(func(s *Stats) {
			s.Connects++
			s.Up = true
			s.Origin = rtmp.RedactURL(origin)
		})
		pl.log.Info("origin up", "origin", rtmp.RedactURL(origin),
			"after", time.Since(start).Round(time.Millisecond))
	}

	var err error
	if origin == config.DemoOrigin {
		var clip *demo.Clip
		if clip, err = m.demoClip(); err == nil {
			connected()
			err = demo.Feed(actx, p, clip, onMedia)
		}
	} else {
		if conn == nil {
			conn, err = pl.dial(actx, origin)
		}
		if err == nil {
			connected()
			err = pl.feed(actx, conn, p, onMedia)
		}
	}
	acancel()
	wg.Wait()
	pl.count(func(s *Stats) { s.Up, s.Origin = false, "" })

	res := attemptResult{err: err, media: media}
	select {
	case res.failback = <-handoff:
	default:
	}
	select {
	case <-ctx.Done():
		res.stopped = true
	case <-p.Done():
		res.stopped = true
	default:
	}
	if !res.stopped && res.failback == nil {
		if err == nil {
			err = errors.New("source ended")
			res.err = err
		}
		pl.count(func(s *Stats) { s.Failures++ })
	}
	return res
}

// dial connects to an origin (RTMP or RTSP), signing the URL when the
// entry asks.
func (pl *pull) dial(ctx context.Context, origin string) (upstream, error) {
	u := origin
	if pl.entry.Sign {
		var err error
		if u, err = pl.m.sign(origin, pl.entry.SignTTL.Std()); err != nil {
			return nil, errConnect(err)
		}
	}
	conn, err := dialUpstream(ctx, u, pullOptions{stall: pl.entry.StallTimeout.Std(),
		keyframe: pl.entry.KeyframeTimeout.Std(), connect: pl.m.p.ConnectTimeout, dialer: pl.dialer, log: pl.log})
	return conn, pl.egress.bindError(origin, err)
}

// feed feeds p from conn and counts the bytes it received.
func (pl *pull) feed(ctx context.Context, conn upstream, p *hub.Producer, onMedia func()) error {
	conn.SetOnMedia(onMedia)
	err := conn.Run(ctx, p)
	b := conn.BytesIn()
	pl.count(func(s *Stats) { s.BytesIn += b })
	return err
}

// probePrimary checks the primary every probe interval, skipping the
// checks while the background probes (when they watch the primary) find
// it down. Once it plays, the connection is read up to its first
// keyframe while the backup keeps feeding the stream, then handed over
// and the current attempt ends: the switch happens on a keyframe.
func (pl *pull) probePrimary(ctx context.Context, stop context.CancelFunc, handoff chan<- upstream) {
	primary := pl.urls[0]
	t := time.NewTicker(pl.m.p.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if pl.m.down(primary, pl.egress) {
			continue
		}
		conn, err := pl.dial(ctx, primary)
		if err == nil {
			if err = conn.Preroll(ctx); err != nil {
				conn.Close()
			}
		}
		if err != nil {
			pl.log.Debug("primary probe failed", "origin", rtmp.RedactURL(primary), "err", err)
			continue
		}
		pl.log.Info("primary healthy again", "origin", rtmp.RedactURL(primary), "rtt", conn.RTT().Round(time.Millisecond))
		handoff <- conn
		stop()
		return
	}
}

// watchIdle ends the session once nobody watched for idle_close.
func (pl *pull) watchIdle(ctx context.Context, cancel context.CancelCauseFunc) {
	idle := pl.entry.IdleClose.Std()
	tick := min(max(idle/4, 20*time.Millisecond), 250*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if in, ok := pl.m.hub.Stream(pl.name); ok && viewers(in) > 0 {
			last = time.Now()
			continue
		}
		if time.Since(last) >= idle {
			pl.log.Info("closing pull: no viewers", "idle", idle)
			cancel(errIdle)
			return
		}
	}
}

func (pl *pull) count(f func(*Stats)) {
	pl.mu.Lock()
	f(&pl.stats)
	pl.mu.Unlock()
}

// sleep waits d unless ctx ends first; it reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
