package source

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/rtmp"
)

// Coordinator elects, within a cluster of edges, the one node that pulls a
// stream from its origins; the others pull the stream from that node, so
// that the origin serves one connection per stream per cluster. A
// *cluster.Cluster is one.
type Coordinator interface {
	// Claim returns a lease when this node is to pull stream from its
	// origins, or else the RTMP URL of the node to pull it from. dead,
	// if set, is such a URL that refused the connection: its lease is
	// taken over. An error means the cluster's state is out of reach: the
	// node then pulls from the origins on its own.
	Claim(ctx context.Context, stream, dead string) (Lease, string, error)
}

// Lease is a node's right to pull a stream from its origins.
type Lease interface {
	// Lost is closed when another node took the lease: the origin pull
	// must stop.
	Lost() <-chan struct{}
	// Release gives the lease up.
	Release()
}

// siblingRetry is the pause before asking the cluster again after a pull
// from another node ended, unless that node refused the connection.
const siblingRetry = 100 * time.Millisecond

// clustered reports whether the pull asks the cluster first: a cluster is
// set and the entry has an origin to share (the built-in demo is local).
func (pl *pull) clustered() bool {
	if pl.m.p.Cluster == nil {
		return false
	}
	for _, u := range pl.urls {
		if u != config.DemoOrigin {
			return true
		}
	}
	return false
}

// clusterClaim asks the cluster who pulls the stream from its origins:
// this node (a lease), another one (its URL) or, when the cluster cannot
// say, this node on its own (neither).
func (pl *pull) clusterClaim(ctx context.Context, dead string, standalone *bool) (Lease, string) {
	l, sibling, err := pl.m.p.Cluster.Claim(ctx, pl.name, dead)
	switch {
	case err != nil:
		if !*standalone {
			pl.log.Warn("cluster: unreachable: pulling from the origins on this node's own", "err", err)
			*standalone = true
		}
		return nil, ""
	case l != nil:
		*standalone = false
		pl.log.Info("cluster: this node pulls the stream from its origins")
		return l, ""
	}
	*standalone = false
	return nil, sibling
}

// attemptSibling feeds p from another node of the cluster until that
// fails or the session stops. It reports whether the node refused the
// connection (it is gone: its lease can be taken over) and whether media
// flowed.
func (pl *pull) attemptSibling(ctx context.Context, p *hub.Producer, sibling string, connected func()) (stopped, refused, media bool) {
	start := time.Now()
	onMedia := func() {
		media = true
		pl.count(func(s *Stats) {
			s.Up, s.Origin, s.Sibling = true, rtmp.RedactURL(sibling), true
		})
		pl.log.Info("cluster: pulling from another node", "node", rtmp.RedactURL(sibling),
			"after", time.Since(start).Round(time.Millisecond))
	}
	u := sibling
	// Nodes of a cluster share their secrets: sign when the app has one.
	if signed, err := pl.m.sign(sibling, pl.entry.SignTTL.Std()); err == nil {
		u = signed
	}
	conn, err := dialUpstream(ctx, u, pullOptions{stall: pl.entry.StallTimeout.Std(),
		keyframe: pl.entry.KeyframeTimeout.Std(), connect: pl.m.p.ConnectTimeout, dialer: pl.m.p.Dialer, log: pl.log})
	if err == nil {
		connected()
		err = pl.feed(ctx, conn, p, onMedia)
	}
	pl.count(func(s *Stats) { s.Up, s.Origin, s.Sibling = false, "", false })
	select {
	case <-ctx.Done():
		return true, false, media
	case <-p.Done():
		return true, false, media
	default:
	}
	refused = errors.Is(err, syscall.ECONNREFUSED)
	pl.log.Warn("cluster: pull from another node ended", "node", rtmp.RedactURL(sibling), "reason", reason(err), "err", err)
	return false, refused, media
}

// leaseContext returns ctx, also cancelled when lease (if any) is lost.
func leaseContext(ctx context.Context, lease Lease) (context.Context, context.CancelFunc) {
	lctx, cancel := context.WithCancel(ctx)
	if lease != nil {
		go func() {
			select {
			case <-lease.Lost():
				cancel()
			case <-lctx.Done():
			}
		}()
	}
	return lctx, cancel
}

// lost reports whether lease was lost.
func lost(lease Lease) bool {
	if lease == nil {
		return false
	}
	select {
	case <-lease.Lost():
		return true
	default:
		return false
	}
}

// rejoinInterval is how often a pull that runs on its own because the
// cluster was out of reach asks it again.
const rejoinInterval = 500 * time.Millisecond

// rejoin is the context of an origin attempt made while the cluster was
// out of reach: it asks the cluster again until it answers. When this
// node gets the lease, the attempt goes on under it (the lease comes out
// of the channel once the attempt ended; the attempt stops if the lease
// is lost meanwhile). When another node holds it, the attempt stops, so
// that the session pulls from that node: one origin pull per cluster
// again. The channel is closed without a lease otherwise.
func (pl *pull) rejoin(ctx context.Context) (context.Context, context.CancelFunc, chan Lease) {
	actx, cancel := context.WithCancel(ctx)
	got := make(chan Lease, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(got)
		t := time.NewTicker(rejoinInterval)
		defer t.Stop()
		for {
			select {
			case <-actx.Done():
				return
			case <-t.C:
			}
			l, sibling, err := pl.m.p.Cluster.Claim(actx, pl.name, "")
			if err != nil {
				continue
			}
			if l == nil {
				pl.log.Info("cluster: reachable again; another node pulls the stream: switching to it",
					"node", rtmp.RedactURL(sibling))
				cancel()
				return
			}
			pl.log.Info("cluster: reachable again; this node keeps pulling the stream from its origins")
			got <- l
			select {
			case <-l.Lost():
				cancel()
			case <-actx.Done():
			}
			return
		}
	}()
	stop := func() {
		cancel()
		<-done
	}
	return actx, stop, got
}
