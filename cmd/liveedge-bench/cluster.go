package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/internal/redistest"
	"github.com/liveedge/liveedge/protocols/demo"
)

// The cluster bench (-cluster N): one redis-server, one nginx-rtmp origin
// fed by the bench publisher (SEI wall-clock stamps), three liveedge
// nodes in one cluster, each with one RTMP viewer that stays, plus
// -cluster-viewers RTMP viewers per node for the latency phase. It
// reports the origin's connections for the stream (target 1 at any
// audience), the latency of a viewer on the node pulling from the origin
// and on the nodes pulling from it (the difference is what the sibling
// hop adds; target p99 <= 10 ms), and N times the node pulling from the
// origin is killed (SIGKILL): the media gap of the viewers on the other
// nodes (target <= 1.5 s) and their disconnects (target 0).

type clusterOptions struct {
	kills   int
	viewers int
	phase   time.Duration
	limit   time.Duration
}

func clusterFlags(fs *flag.FlagSet) *clusterOptions {
	c := &clusterOptions{}
	fs.IntVar(&c.kills, "cluster", 0, "run the cluster bench instead: kill the node pulling from the origin this many times (needs redis-server, nginx with the RTMP module)")
	fs.IntVar(&c.viewers, "cluster-viewers", 30, "cluster bench: RTMP viewers per node in the latency phase")
	fs.DurationVar(&c.phase, "cluster-phase", 12*time.Second, "cluster bench: length of the latency phase")
	fs.DurationVar(&c.limit, "cluster-limit", 4*time.Minute, "cluster bench: stop after this long, whatever is left")
	return c
}

const (
	clStream   = "bench"
	clNodes    = 3
	clTakeover = 1500 * time.Millisecond // target: media again on the other nodes
)

type clusterBench struct {
	opts  *clusterOptions
	dir   string
	log   io.Writer
	bin   string
	redis *redistest.Redis
	orig  *nginxtest.Origin
	pub   *publisher

	nodes  [clNodes]*serverProc
	taps   [clNodes]*frameTap
	tapEnd [clNodes]context.CancelFunc
	tapWG  sync.WaitGroup

	maxPlayers atomic.Int64 // the origin's pulls of the stream (plays >= 2 s), most seen
	samples    atomic.Int64

	latency [2][]int32 // µs: [0] viewers of the pulling node, [1] of the others
	gaps    []time.Duration
	missed  []string
}

// runCluster runs the cluster bench and prints its report.
func runCluster(ctx context.Context, o *clusterOptions, server string, keepLogs bool, stdout, stderr io.Writer) int {
	for _, tool := range []string{"nginx", "redis-server"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(stderr, "liveedge-bench: -cluster needs %s (make tools installs it)\n", tool)
			return 2
		}
	}
	dir, done, err := runDir("liveedge-cluster-", keepLogs, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench:", err)
		return 1
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, o.limit)
	defer cancel()
	b := &clusterBench{opts: o, dir: dir, log: stderr, bin: server}
	defer b.close()
	start := time.Now()
	err = b.run(ctx)
	b.report(stdout, time.Since(start))
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench: cluster:", err)
		return 1
	}
	return 0
}

func (b *clusterBench) run(ctx context.Context) error {
	var err error
	if b.redis, err = redistest.Launch(filepath.Join(b.dir)); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	od := filepath.Join(b.dir, "origin")
	if err := os.Mkdir(od, 0o755); err != nil {
		return err
	}
	if b.orig, err = nginxtest.Launch(od); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	clip, err := demo.Default()
	if err != nil {
		return err
	}
	b.pub = newPublisher(clip, 2_000_000)
	go func() {
		for ctx.Err() == nil {
			// gortmplib takes the stream key from the fragment; the
			// whole path is the application name nginx looks up.
			if err := b.pub.run(ctx, "rtmp://"+b.orig.RTMP+"/live#"+clStream); err != nil && ctx.Err() == nil {
				fmt.Fprintf(b.log, "  publisher: %v\n", err)
				fbSleep(ctx, 200*time.Millisecond)
			}
		}
	}()
	if err := b.orig.WaitPublishing(clStream, fbPublishing); err != nil {
		return err
	}
	go b.watchOrigin(ctx)
	for i := range b.nodes {
		if err := b.startNode(ctx, i); err != nil {
			return err
		}
		// The first node's viewer makes it the one pulling from the
		// origin; the others pull from it.
		if err := b.taps[i].waitFrames(ctx, time.Now(), fbResumed, 15*time.Second); err != nil {
			return fmt.Errorf("node %d: first frames: %w", i+1, err)
		}
	}
	fmt.Fprintf(b.log, "cluster bench: redis %s, origin %s, %d nodes up, one viewer each\n", b.redis.Addr, b.orig.RTMP, clNodes)

	if err := b.latencyPhase(ctx); err != nil {
		return err
	}
	for i := 1; i <= b.opts.kills; i++ {
		if err := b.kill(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// startNode starts node i (again) and its staying viewer.
func (b *clusterBench) startNode(ctx context.Context, i int) error {
	d := filepath.Join(b.dir, fmt.Sprintf("node%d-%d", i+1, time.Now().UnixNano()))
	if err := os.Mkdir(d, 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`log: {level: info}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: ""}
admin: {listen: "127.0.0.1:0"}
cluster:
  redis_url: %s
  node_id: n%d
  heartbeat: 250ms
  lease_ttl: 1s
streams:
  - match: live/%s
    mode: on_demand
    origins: [%s]
    stall_timeout: 1s
    idle_close: 5s
`, b.redis.URL(), i+1, clStream, b.orig.URL(clStream))
	srv, err := startServerConfig(ctx, b.bin, d, cfg, []string{"rtmp", "admin"})
	if err != nil {
		return fmt.Errorf("node %d: %w", i+1, err)
	}
	b.nodes[i] = srv
	tap := &frameTap{}
	tctx, cancel := context.WithCancel(context.Background())
	b.taps[i], b.tapEnd[i] = tap, cancel
	b.tapWG.Add(1)
	go func() {
		defer b.tapWG.Done()
		tap.watch(tctx, srv.addrs["rtmp"], "live", clStream)
	}()
	return nil
}

// watchOrigin samples the origin's players of the stream.
func (b *clusterBench) watchOrigin(ctx context.Context) {
	for fbSleep(ctx, 100*time.Millisecond) {
		st, err := b.orig.Stat()
		if err != nil {
			continue
		}
		// Pulls, not the nodes' health probes (plays of about a second).
		n := int64(st.LongPlayers(clStream, 2*time.Second))
		b.samples.Add(1)
		if n > 1 {
			fmt.Fprintf(b.log, "  %s: the origin has %d pulls of the stream\n", time.Now().Format("15:04:05.000"), n)
		}
		for {
			cur := b.maxPlayers.Load()
			if n <= cur || b.maxPlayers.CompareAndSwap(cur, n) {
				break
			}
		}
	}
}

// holder returns the node pulling from the origin, from the cluster view
// of a live node.
func (b *clusterBench) holder(ctx context.Context) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, n := range b.nodes {
			if n == nil || !n.alive() {
				continue
			}
			var v struct {
				Streams map[string]struct {
					Origin string `json:"origin"`
				} `json:"streams"`
			}
			resp, err := http.Get("http://" + n.addrs["admin"] + "/api/v1/cluster")
			if err != nil {
				continue
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err != nil {
				continue
			}
			var id int
			if _, err := fmt.Sscanf(v.Streams["live/"+clStream].Origin, "n%d", &id); err == nil && id >= 1 && id <= clNodes &&
				b.nodes[id-1] != nil && b.nodes[id-1].alive() {
				return id - 1, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no live node pulls from the origin after 10 s")
		}
		if !fbSleep(ctx, 100*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// latencyPhase runs the extra viewers on every node and collects their
// latencies by whether their node pulls from the origin.
func (b *clusterBench) latencyPhase(ctx context.Context) error {
	h, err := b.holder(ctx)
	if err != nil {
		return err
	}
	rec := &atomic.Bool{}
	rec.Store(true)
	vctx, cancel := context.WithTimeout(ctx, b.opts.phase)
	defer cancel()
	var all [clNodes][]*viewer
	var wg sync.WaitGroup
	for i, n := range b.nodes {
		for range b.opts.viewers {
			v := newViewer(rec, 1024)
			all[i] = append(all[i], v)
			wg.Add(1)
			go func() {
				defer wg.Done()
				v.run(vctx, rtmpKind{}, n.addrs["rtmp"], "live/"+clStream)
			}()
		}
	}
	wg.Wait()
	for i := range all {
		k := 1
		if i == h {
			k = 0
		}
		for _, v := range all[i] {
			b.latency[k] = append(b.latency[k], v.latency...)
		}
	}
	return ctx.Err()
}

// kill kills the node pulling from the origin and measures the media gap
// of the viewers on the others; the node then comes back.
func (b *clusterBench) kill(ctx context.Context, n int) error {
	h, err := b.holder(ctx)
	if err != nil {
		return err
	}
	if !fbSleep(ctx, time.Second+rand.N(time.Second)) {
		return ctx.Err()
	}
	at := time.Now()
	_ = b.nodes[h].cmd.Process.Kill()
	<-b.nodes[h].exited
	var worst time.Duration
	for i, tap := range b.taps {
		if i == h {
			continue
		}
		deadline := time.Now().Add(fbEventWait)
		for {
			gap, resumed := tap.gapSince(at, fbResumed)
			if resumed && time.Since(at) > gap {
				worst = max(worst, gap)
				break
			}
			if time.Now().After(deadline) {
				b.missed = append(b.missed, fmt.Sprintf("kill %d: node %d had no media within %v", n, i+1, fbEventWait))
				break
			}
			if !fbSleep(ctx, 50*time.Millisecond) {
				return ctx.Err()
			}
		}
	}
	b.gaps = append(b.gaps, worst)
	fmt.Fprintf(b.log, "  kill %d (node %d): media gap on the other nodes %v\n", n, h+1, worst.Round(time.Millisecond))
	// The killed node comes back, with a new viewer.
	b.tapEnd[h]()
	if err := b.startNode(ctx, h); err != nil {
		return err
	}
	return b.taps[h].waitFrames(ctx, time.Now(), fbResumed, 15*time.Second)
}

func (b *clusterBench) close() {
	for i := range b.nodes {
		if b.tapEnd[i] != nil {
			b.tapEnd[i]()
		}
	}
	b.tapWG.Wait()
	for _, n := range b.nodes {
		if n != nil {
			n.stop()
		}
	}
	if b.orig != nil {
		b.orig.Kill()
	}
	if b.redis != nil {
		b.redis.Kill()
	}
}

func (b *clusterBench) report(w io.Writer, took time.Duration) {
	fmt.Fprintf(w, "\ncluster: redis-server, 1 nginx-rtmp origin (2 Mbit/s), %d liveedge nodes (lease_ttl 1s), %d RTMP viewers per node in the latency phase, 1 staying viewer per node; %v\n",
		clNodes, b.opts.viewers, took.Round(time.Second))
	players := b.maxPlayers.Load()
	verdict := "ok"
	if players != 1 {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "origin pulls of the stream (plays >= 2 s, not probes): at most %d over %d samples (target 1)  %s\n", players, b.samples.Load(), verdict)
	pct := func(l []int32) (p50, p99 float64) {
		s := slices.Clone(l)
		slices.Sort(s)
		if len(s) == 0 {
			return 0, 0
		}
		return percentile(s, 50) / 1e3, percentile(s, 99) / 1e3
	}
	h50, h99 := pct(b.latency[0])
	s50, s99 := pct(b.latency[1])
	fmt.Fprintf(w, "%-44s %8s %10s %10s\n", "latency, publisher clock to viewer", "frames", "p50", "p99")
	fmt.Fprintf(w, "%-44s %8d %8.1fms %8.1fms\n", "  viewers of the node pulling from the origin", len(b.latency[0]), h50, h99)
	fmt.Fprintf(w, "%-44s %8d %8.1fms %8.1fms\n", "  viewers of the nodes pulling from it", len(b.latency[1]), s50, s99)
	verdict = "ok"
	if s99-h99 > 10 {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "%-44s %8s %8.1fms %8.1fms  (target p99 <= 10 ms) %s\n", "  added by the sibling hop", "", s50-h50, s99-h99, verdict)
	if len(b.gaps) > 0 {
		g := slices.Clone(b.gaps)
		slices.Sort(g)
		verdict = "ok"
		if g[len(g)-1] > clTakeover {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "takeover, pulling node killed: n %d, gap p50 %v, max %v (target <= %v)  %s\n", len(g),
			time.Duration(percentile(g, 50)).Round(time.Millisecond), g[len(g)-1].Round(time.Millisecond), clTakeover, verdict)
	}
	disc := 0
	for _, t := range b.taps {
		if t != nil {
			d, _ := t.counters()
			disc += d
		}
	}
	fmt.Fprintf(w, "disconnects of the staying viewers on surviving nodes: %d (target 0)\n", disc)
	for _, m := range b.missed {
		fmt.Fprintf(w, "MISSED: %s\n", m)
	}
}
