// Package cluster joins liveedge nodes into one edge cluster through Redis:
// every node registers itself (its URLs per protocol, its load and the
// streams it holds) under a key that expires unless its heartbeat renews
// it; one node per stream pulls from the origins, under a lease with a
// fencing number, and the other nodes pull that stream from it; and any
// node can tell a viewer which node to use (Route).
//
// Keys, under the configured prefix P:
//
//	P nodes          sorted set: node ID → expiry (Unix ms) of its registration
//	P node:<id>      the node's Node record (JSON), expiring after 3 heartbeats
//	P lease:<stream> "<node id>:<fence>" of the node pulling the stream from
//	                 its origins, expiring after lease_ttl unless renewed
//	P fence:<stream> the stream's fencing counter (INCR on every new lease)
//
// A node that loses Redis keeps serving what it has: its pulls go on, and
// its registration and leases are written again when Redis is back. A
// lease holder that finds its lease taken by another node (fencing) stops
// pulling from the origins and pulls from the new holder instead.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
)

// Node is a node's registration, as stored in Redis.
type Node struct {
	ID     string `json:"id"`
	Region string `json:"region,omitempty"`
	// URLs are the node's base URLs per protocol: "rtmp", "rtsp", "http".
	URLs map[string]string `json:"urls"`
	// Viewers counts the node's viewers (every protocol but HLS).
	Viewers int `json:"viewers"`
	// EgressBps is the node's egress to viewers, framing included, over
	// the last few seconds (every protocol the hub counts).
	EgressBps int64 `json:"egress_bps"`
	// CPU is the share of one core the process used since the previous
	// heartbeat.
	CPU     float64                `json:"cpu"`
	Streams map[string]StreamState `json:"streams"`
	Started time.Time              `json:"started"`
	Updated time.Time              `json:"updated"`
}

// StreamState is one stream on a node.
type StreamState struct {
	Viewers map[string]int `json:"viewers,omitempty"` // by protocol
	// Source is where the node takes the stream from: "origin", "sibling"
	// (another node), "publish", or "" while it waits for one.
	Source string `json:"source"`
	// Origin is the URL (without its query) the stream comes from, for
	// a pull.
	Origin     string `json:"origin,omitempty"`
	BitrateIn  int64  `json:"bitrate_in"`
	BitrateOut int64  `json:"bitrate_out"` // to the node's viewers, every protocol
}

// Total returns the stream's viewers on the node.
func (s StreamState) Total() int {
	n := 0
	for _, v := range s.Viewers {
		n += v
	}
	return n
}

// Params configure a Cluster.
type Params struct {
	// Config is the cluster section with its defaults resolved
	// (config.Config.ClusterResolved); RedisURL must be set.
	Config config.ClusterConfig
	Hub    *hub.Hub // or SetHub
	Logger *slog.Logger
	// Source, if set, says where the node takes a stream from: "origin",
	// "sibling", "publish" (or "" while it waits), and the URL for a
	// pull. Without it, a published stream is "publish" and a pulled one
	// "origin".
	Source func(in hub.StreamInfo) (kind, url string)
}

// Cluster is this node's membership of the cluster.
type Cluster struct {
	p      Params
	log    *slog.Logger
	rdb    *redis.Client
	prefix string
	self   Node

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	registered atomic.Bool // a heartbeat reached Redis once
	state      string      // "", "up" or "down": what the log said last
	mu         sync.Mutex
	claims     map[string]*claimLock // claims under way, by stream
	leases     map[string]*Lease     // held, by stream
	lastCPU    cpuSample
	nodes      []Node // as of the last heartbeat
}

// New connects to Redis (lazily: a Redis that is down now only delays the
// registration) and returns the node's membership; Start begins the
// heartbeat.
func New(p Params) (*Cluster, error) {
	cfg := p.Config
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster.redis_url: %w", err)
	}
	// Short timeouts and no retries: a Redis that does not answer must not
	// hold up a pull that asks it for a lease.
	opt.DialTimeout = 500 * time.Millisecond
	opt.ReadTimeout = 500 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.PoolSize = 8
	opt.MinIdleConns = 1
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	redis.SetLogger(redisLogger{p.Logger})
	c := &Cluster{p: p, log: p.Logger.With("cluster", cfg.NodeID), rdb: redis.NewClient(opt),
		prefix: cfg.KeyPrefix, leases: map[string]*Lease{}, claims: map[string]*claimLock{}}
	c.self = SelfNode(cfg)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.lastCPU = readCPU()
	return c, nil
}

// SelfNode is the registration of the node cfg (resolved) describes,
// without load or streams.
func SelfNode(cfg config.ClusterConfig) Node {
	n := Node{ID: cfg.NodeID, Region: cfg.Region, URLs: map[string]string{}, Started: time.Now()}
	for k, v := range map[string]string{"rtmp": cfg.Advertise.RTMP, "rtsp": cfg.Advertise.RTSP, "http": cfg.Advertise.HTTP} {
		if v != "" {
			n.URLs[k] = strings.TrimSuffix(v, "/")
		}
	}
	return n
}

// SetHub attaches the hub whose streams the registration lists; it is
// called before Start.
func (c *Cluster) SetHub(h *hub.Hub) { c.p.Hub = h }

// ID returns this node's ID.
func (c *Cluster) ID() string { return c.self.ID }

// Start registers the node and keeps its registration alive until Close.
// It does not wait for Redis.
func (c *Cluster) Start() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.heartbeat()
		t := time.NewTicker(c.p.Config.Heartbeat.Std())
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-t.C:
				c.heartbeat()
			}
		}
	}()
}

// Close releases the node's leases, removes its registration (so that
// the other nodes take over its streams at once) and disconnects.
func (c *Cluster) Close() {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	leases := make([]*Lease, 0, len(c.leases))
	for _, l := range c.leases {
		leases = append(leases, l)
	}
	c.mu.Unlock()
	for _, l := range leases {
		l.Release()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pipe := c.rdb.TxPipeline()
	pipe.ZRem(ctx, c.key("nodes"), c.self.ID)
	pipe.Del(ctx, c.key("node:"+c.self.ID))
	_, _ = pipe.Exec(ctx)
	_ = c.rdb.Close()
}

func (c *Cluster) key(s string) string { return c.prefix + s }

// ttl is how long a registration lives without a heartbeat.
func (c *Cluster) ttl() time.Duration { return 3 * c.p.Config.Heartbeat.Std() }

// heartbeat writes the node's registration and reads the others'.
func (c *Cluster) heartbeat() {
	n := c.snapshot()
	b, err := json.Marshal(n)
	if err != nil {
		c.log.Error("cluster: encoding the registration", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, time.Second)
	defer cancel()
	now := time.Now()
	pipe := c.rdb.TxPipeline()
	pipe.Set(ctx, c.key("node:"+n.ID), b, c.ttl())
	pipe.ZAdd(ctx, c.key("nodes"), redis.Z{Score: float64(now.Add(c.ttl()).UnixMilli()), Member: n.ID})
	pipe.ZRemRangeByScore(ctx, c.key("nodes"), "-inf", strconv.FormatInt(now.UnixMilli(), 10))
	_, err = pipe.Exec(ctx)
	c.setUp(err)
	if err == nil {
		c.registered.Store(true)
	}
	if err != nil {
		return
	}
	if nodes, err := c.readNodes(ctx); err == nil {
		c.mu.Lock()
		c.nodes = nodes
		c.mu.Unlock()
	}
}

// setUp records whether Redis answered, logging the changes.
func (c *Cluster) setUp(err error) {
	if err != nil && c.ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	prev := c.state
	if err != nil {
		c.state = "down"
	} else {
		c.state = "up"
	}
	c.mu.Unlock()
	switch {
	case err != nil && prev != "down":
		c.log.Warn("cluster: redis unavailable: serving on with what this node has; registering again when it is back", "err", err)
	case err == nil && prev == "down":
		c.log.Info("cluster: redis back: registration written again")
	case err == nil && prev == "":
		c.log.Info("cluster: registered", "region", c.self.Region, "urls", c.self.URLs)
	}
}

// snapshot builds the node's registration from the hub.
func (c *Cluster) snapshot() Node {
	n := c.self
	n.Updated = time.Now()
	n.Streams = map[string]StreamState{}
	c.mu.Lock()
	defer c.mu.Unlock()
	cpu := readCPU()
	n.CPU = cpu.since(c.lastCPU)
	c.lastCPU = cpu
	for _, in := range c.p.Hub.Streams() {
		st := StreamState{Viewers: map[string]int{}}
		total := 0
		for p, v := range in.Viewers {
			if v > 0 {
				st.Viewers[p] = v
				total += v
			}
		}
		st.BitrateIn = int64(in.BitrateIn)
		var out float64
		for _, b := range in.BitrateOut {
			out += b
		}
		if c.p.Source != nil {
			st.Source, st.Origin = c.p.Source(in)
		} else if in.Producer != nil {
			st.Source = "origin"
			if in.Producer.Protocol != "pull" {
				st.Source = "publish"
			}
		}
		st.BitrateOut = int64(out)
		n.Streams[in.Name] = st
		n.Viewers += total
		n.EgressBps += int64(out)
	}
	return n
}

// readNodes returns the registered nodes that are alive, this one too.
func (c *Cluster) readNodes(ctx context.Context) ([]Node, error) {
	ids, err := c.rdb.ZRangeByScore(ctx, c.key("nodes"), &redis.ZRangeBy{
		Min: strconv.FormatInt(time.Now().UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = c.key("node:" + id)
	}
	vals, err := c.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	nodes := make([]Node, 0, len(vals))
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired between the two reads
		}
		var n Node
		if json.Unmarshal([]byte(s), &n) == nil {
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// Nodes returns the live nodes of the cluster, read from Redis now; when
// Redis does not answer, the nodes as of the last heartbeat, and the
// error.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	nodes, err := c.readNodes(ctx)
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		return append([]Node(nil), c.nodes...), err
	}
	return nodes, nil
}

// node returns one live node's registration (nil if it has none).
func (c *Cluster) node(ctx context.Context, id string) (*Node, error) {
	s, err := c.rdb.Get(ctx, c.key("node:"+id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var n Node
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		return nil, fmt.Errorf("node %s: %w", id, err)
	}
	return &n, nil
}

// Bound tells the cluster the address a listener got, before Start: an
// advertised URL derived from a listen address with port 0 takes the
// port actually bound.
func (c *Cluster) Bound(proto string, addr net.Addr) {
	c.self.URLs[proto] = boundURL(c.self.URLs[proto], addr)
}

// boundURL returns raw with the port of addr if its port is 0.
func boundURL(raw string, addr net.Addr) string {
	u, err := url.Parse(raw)
	if err != nil || u.Port() != "0" || addr == nil {
		return raw
	}
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return raw
	}
	u.Host = net.JoinHostPort(u.Hostname(), port)
	return u.String()
}

// redisLogger sends the Redis client's own messages (connection pool
// retries, mostly) to the debug log: the cluster logs Redis going away
// and coming back itself, once.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug("redis client: " + fmt.Sprintf(format, v...))
}
