package cluster

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/liveedge/liveedge/cmd/liveedge/source"
)

// Lua scripts on a lease key (KEYS[1]); values are "<node id>:<fence>".
var (
	// casLease replaces the value ARGV[1] with ARGV[2] for ARGV[3] ms.
	casLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)
	// renewLease extends the value ARGV[1] by ARGV[2] ms; a missing key
	// (Redis restarted empty) is written again. 1: renewed, 2: written
	// again, 0: another node holds the lease.
	renewLease = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0`)
	// releaseLease deletes the key if it still holds ARGV[1].
	releaseLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
)

// Lease is this node's right to pull one stream from its origins. It is
// renewed until Release; Lost is closed when another node was found
// holding it (fencing), and the origin pull must stop then.
type Lease struct {
	c      *Cluster
	stream string
	value  string
	fence  int64

	lost     chan struct{}
	lostOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
	release  sync.Once
}

// Lost is closed when the lease was taken by another node.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Fence is the lease's fencing number: it grows with every new lease of
// the stream.
func (l *Lease) Fence() int64 { return l.fence }

// Release stops renewing the lease and deletes it, if it is still this
// node's, so that another node can take the stream at once.
func (l *Lease) Release() {
	l.release.Do(func() {
		l.cancel()
		<-l.done
		c := l.c
		c.mu.Lock()
		if c.leases[l.stream] == l {
			delete(c.leases, l.stream)
		}
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = releaseLease.Run(ctx, c.rdb, []string{c.key("lease:" + l.stream)}, l.value).Err()
	})
}

func (l *Lease) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// renew keeps the lease until Release, every third of its TTL.
func (l *Lease) renew(ctx context.Context) {
	defer close(l.done)
	c := l.c
	ttl := c.p.Config.LeaseTTL.Std()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	key := c.key("lease:" + l.stream)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, ttl/3)
		n, err := renewLease.Run(rctx, c.rdb, []string{key}, l.value, ttl.Milliseconds()).Int()
		cancel()
		switch {
		case err != nil:
			// Redis is away: the pull goes on; the lease is written again
			// when it is back, unless another node took it meanwhile.
			continue
		case n == 2:
			c.log.Info("cluster: lease written again", "stream", l.stream, "fence", l.fence)
		case n == 0:
			cur, _ := c.rdb.Get(ctx, key).Result()
			c.log.Warn("cluster: another node holds the lease now: this node stops pulling from the origins",
				"stream", l.stream, "fence", l.fence, "holder", cur)
			l.markLost()
			return
		}
	}
}

// Claim elects the node that pulls stream from its origins. It returns a
// lease when that is this node, or else the RTMP URL of the node that
// holds the lease, to pull from. dead, if set, is a node URL returned by
// an earlier Claim that refused the connection: its lease is taken over
// at once instead of waiting for it to expire. An error means Redis did
// not answer: the caller runs standalone.
func (c *Cluster) Claim(ctx context.Context, stream, dead string) (source.Lease, string, error) {
	defer c.lockClaim(stream)()
	if !c.registered.Load() {
		// A lease without the node's registration would look like the
		// lease of a dead node to the others: register first.
		c.heartbeat()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	key := c.key("lease:" + stream)
	for range 3 {
		cur, err := c.rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, "", err
		}
		if cur == "" {
			l, err := c.acquire(ctx, stream, "")
			if err != nil {
				return nil, "", err
			}
			if l != nil {
				return l, "", nil
			}
			continue // another node was quicker: read who
		}
		holder, _, _ := strings.Cut(cur, ":")
		if holder == c.self.ID {
			c.mu.Lock()
			live := c.leases[stream] != nil && c.leases[stream].value == cur
			c.mu.Unlock()
			if live {
				// One pull per stream per node: never two leases.
				return nil, "", errors.New("cluster: this node holds the lease of " + stream + " already")
			}
			// A lease of this node's earlier life (restarted within
			// the lease's TTL): take it back.
			l, err := c.acquire(ctx, stream, cur)
			if err != nil || l != nil {
				return l, "", err
			}
			continue
		}
		n, err := c.node(ctx, holder)
		if err != nil {
			return nil, "", err
		}
		var sibling string
		if n != nil && n.URLs["rtmp"] != "" {
			sibling = n.URLs["rtmp"] + "/" + stream
		}
		if sibling == "" || sibling == dead {
			why := "its node is no longer registered"
			if sibling != "" {
				why = "its node refuses connections"
			}
			l, err := c.acquire(ctx, stream, cur)
			if err != nil {
				return nil, "", err
			}
			if l != nil {
				c.log.Warn("cluster: took over the lease of a stream", "stream", stream, "from", holder, "why", why,
					"fence", l.(*Lease).fence)
				return l, "", nil
			}
			continue
		}
		return nil, sibling, nil
	}
	return nil, "", errors.New("cluster: the lease changed hands while it was read: try again")
}

// acquire takes the lease of stream: when it is free (old ""), or by
// replacing the value old. It returns nil without error when another node
// changed the lease first.
func (c *Cluster) acquire(ctx context.Context, stream, old string) (source.Lease, error) {
	key := c.key("lease:" + stream)
	ttl := c.p.Config.LeaseTTL.Std()
	fence, err := c.rdb.Incr(ctx, c.key("fence:"+stream)).Result()
	if err != nil {
		return nil, err
	}
	value := c.self.ID + ":" + strconv.FormatInt(fence, 10)
	var ok bool
	if old == "" {
		ok, err = c.rdb.SetNX(ctx, key, value, ttl).Result()
	} else {
		var n int
		n, err = casLease.Run(ctx, c.rdb, []string{key}, old, value, ttl.Milliseconds()).Int()
		ok = n == 1
	}
	if err != nil || !ok {
		return nil, err
	}
	lctx, cancel := context.WithCancel(c.ctx)
	l := &Lease{c: c, stream: stream, value: value, fence: fence, lost: make(chan struct{}),
		cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.leases[stream] = l
	c.mu.Unlock()
	go l.renew(lctx)
	return l, nil
}

// Holder returns the node ID holding the lease of stream ("" when none).
func (c *Cluster) Holder(ctx context.Context, stream string) (string, error) {
	cur, err := c.rdb.Get(ctx, c.key("lease:"+stream)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	holder, _, _ := strings.Cut(cur, ":")
	return holder, err
}

// lockClaim serialises the claims of one stream on this node and returns
// the unlock.
func (c *Cluster) lockClaim(stream string) func() {
	c.mu.Lock()
	k := c.claims[stream]
	if k == nil {
		k = &claimLock{}
		c.claims[stream] = k
	}
	k.n++
	c.mu.Unlock()
	k.mu.Lock()
	return func() {
		k.mu.Unlock()
		c.mu.Lock()
		if k.n--; k.n == 0 {
			delete(c.claims, stream)
		}
		c.mu.Unlock()
	}
}

type claimLock struct {
	mu sync.Mutex
	n  int // holders and waiters
}
