package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/cluster"
	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/internal/redistest"
)

// clusterConfig is a node of a cluster on redisURL pulling live/* on
// demand from origin.
func clusterConfig(t *testing.T, id, redisURL, origin string) string {
	return fmt.Sprintf(`
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
webrtc: {udp_port: %d, tcp_port: 0, udp_host: 127.0.0.1, remote_candidates: {allow: [127.0.0.0/8]}}
cluster:
  redis_url: %s
  node_id: %s
  region: %s
  heartbeat: 200ms
  lease_ttl: 1s
streams:
  - match: "live/*"
    mode: on_demand
    origins: [ "%s" ]
    stall_timeout: 1s
    idle_close: 2s
`, freeUDPPort(t), redisURL, id, map[bool]string{true: "hk", false: "sg"}[id != "n3"], origin)
}

// adminAddr waits for the admin listener's address in the server's log.
func (s *server) adminAddr(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range s.logLines() {
			if m := listenRe.FindStringSubmatch(l); m != nil && m[1] == "admin" {
				return m[2]
			}
		}
	}
	t.Fatal("liveedge did not log an admin listener")
	return ""
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// pullAge is how long an origin connection must last to count as a pull:
// the nodes' background health probes play for up to about a second.
const pullAge = 2 * time.Second

// originPulls samples for d the origin's connections playing stream for
// pullAge or longer and returns the most it saw.
func originPulls(t *testing.T, o *nginxtest.Origin, stream string, d time.Duration) int {
	t.Helper()
	most := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		st, err := o.Stat()
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, st.LongPlayers(stream, pullAge))
	}
	return most
}

// waitOriginPulls waits until the origin has exactly n pulls of stream.
func waitOriginPulls(t *testing.T, o *nginxtest.Origin, stream string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := o.Stat()
		if err != nil {
			t.Fatal(err)
		}
		got := st.LongPlayers(stream, pullAge)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("origin has %d pulls of %s after %v, want %d", got, stream, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitClusterViewers waits until the cluster view on admin counts want
// viewers of stream on nodes nodes.
func waitClusterViewers(t *testing.T, admin, stream string, want, nodes int) cluster.View {
	t.Helper()
	var v cluster.View
	deadline := time.Now().Add(5 * time.Second)
	for {
		getJSON(t, "http://"+admin+"/api/v1/cluster", &v)
		if v.Streams[stream].Total == want && len(v.Nodes) == nodes {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster view: %d nodes, %s: %+v; want %d viewers on %d nodes", len(v.Nodes), stream, v.Streams[stream], want, nodes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterOneOriginPull: three nodes share one Redis and one nginx
// origin. Viewers on every node; the origin serves one connection; the
// node pulling from the origin is killed and another takes over with no
// viewer of the others disconnected; Redis restarts empty mid-run; the
// route API sends a viewer to a node that has the stream.
func TestClusterOneOriginPull(t *testing.T) {
	requireTools(t, "ffmpeg", "redis-server")
	r := redistest.Start(t)
	o := nginxtest.Start(t)
	o.Publish(t, "x")
	origin := "rtmp://" + o.RTMP + "/live/$stream"
	nodes := []*server{
		startServer(t, clusterConfig(t, "n1", r.URL(), origin)),
		startServer(t, clusterConfig(t, "n2", r.URL(), origin)),
		startServer(t, clusterConfig(t, "n3", r.URL(), origin)),
	}
	for _, s := range nodes {
		s.waitLog(t, `msg="cluster: registered"`, 5*time.Second)
	}

	// The first viewer's node pulls from the origin; the others from it.
	views := make([]*viewer, 3)
	for i, s := range nodes {
		views[i] = watch(t, s.url("live/x"))
		views[i].waitFrames(t, 25, 10*time.Second)
	}
	waitOriginPulls(t, o, "x", 1, 5*time.Second)
	if n := originPulls(t, o, "x", time.Second); n != 1 {
		t.Fatalf("origin served %d connections for the stream, want 1", n)
	}
	nodes[0].waitLog(t, `msg="cluster: this node pulls the stream from its origins" stream=live/x`, time.Second)
	for _, s := range nodes[1:] {
		s.waitLog(t, `msg="cluster: pulling from another node" stream=live/x node=rtmp://`+nodes[0].rtmp+`/live/x`, time.Second)
	}

	// Cluster-wide counters: 3 viewers (the nodes' pulls from n1 are not
	// viewers), from any node.
	v := waitClusterViewers(t, nodes[2].adminAddr(t), "live/x", 3, 3)
	if v.Streams["live/x"].Origin != "n1" {
		t.Fatalf("cluster view: origin node %q, want n1", v.Streams["live/x"].Origin)
	}

	// Edge selection on any node (the public HTTP listener): a node with
	// the stream; with a region hint, the node of that region.
	var c cluster.Choice
	getJSON(t, "http://"+nodes[1].httpAddr(t)+"/api/v1/route?stream=live/x&proto=flv", &c)
	if !c.HasStream || c.Nodes != 3 || !strings.HasSuffix(c.URL, "/live/x.flv") {
		t.Fatalf("route: %+v", c)
	}
	getJSON(t, "http://"+nodes[0].httpAddr(t)+"/api/v1/route?stream=live/x&proto=rtmp&region=sg", &c)
	if c.Node != "n3" || c.URL != "rtmp://"+nodes[2].rtmp+"/live/x" {
		t.Fatalf("route with region sg: %+v, want n3", c)
	}
	// The URL it gives plays.
	pr, err := probe(t, c.URL, 80)
	if err != nil {
		t.Fatalf("playing the routed URL: %v", err)
	}
	checkPlayback(t, pr, 25)

	// Kill the node pulling from the origin: another node takes the
	// lease over (its connection to n1 is refused) and pulls from the
	// origin; the viewers of n2 and n3 stay connected.
	for _, v := range views[1:] {
		v.reset()
	}
	killed := time.Now()
	nodes[0].cmd.Process.Signal(syscall.SIGKILL)
	var gaps []time.Duration
	for _, v := range views[1:] {
		gaps = append(gaps, v.checkSwitch(t, 3*time.Second))
	}
	t.Logf("takeover after SIGKILL of the pulling node: media gaps %v (media back on both within %v)", gaps,
		time.Since(killed).Round(time.Millisecond))
	waitOriginPulls(t, o, "x", 1, 5*time.Second)
	if n := originPulls(t, o, "x", time.Second); n != 1 {
		t.Fatalf("origin served %d connections after the takeover, want 1", n)
	}
	took := 0
	for _, s := range nodes[1:] {
		took += countLines(s.logLines(), `msg="cluster: took over the lease of a stream" cluster=n[23] stream=live/x from=n1`)
	}
	if took != 1 {
		t.Fatalf("%d nodes took over n1's lease, want 1", took)
	}

	// Redis restarts empty: nobody notices; the registrations and the
	// lease are written again; still one origin connection.
	for _, v := range views[1:] {
		v.reset()
	}
	r.Restart(t)
	waitClusterViewers(t, nodes[1].adminAddr(t), "live/x", 2, 2)
	for _, v := range views[1:] {
		v.waitFrames(t, 50, 10*time.Second)
		if st := v.state(); st.err != nil || st.maxGap > time.Second || st.backward > 0 {
			t.Fatalf("viewer across the Redis restart: %+v", st)
		}
	}
	if n := originPulls(t, o, "x", time.Second); n != 1 {
		t.Fatalf("origin served %d connections after Redis restarted, want 1", n)
	}
}

// TestClusterWithoutRedis: a node whose Redis is not there serves as a
// standalone node, and its route API answers with itself.
func TestClusterWithoutRedis(t *testing.T) {
	requireTools(t, "ffmpeg")
	o := nginxtest.Start(t)
	o.Publish(t, "x")
	dead := fmt.Sprintf("redis://127.0.0.1:%d", nginxtest.FreePort(t))
	s := startServer(t, clusterConfig(t, "n1", dead, "rtmp://"+o.RTMP+"/live/$stream"))
	v := watch(t, s.url("live/x"))
	v.waitFrames(t, 25, 10*time.Second)
	s.waitLog(t, `msg="cluster: redis unavailable`, time.Second)
	s.waitLog(t, `msg="cluster: unreachable: pulling from the origins on this node's own" stream=live/x`, time.Second)
	var c cluster.Choice
	getJSON(t, "http://"+s.httpAddr(t)+"/api/v1/route?stream=live/x&proto=hls", &c)
	if c.Node != "n1" || c.URL != "http://"+s.httpAddr(t)+"/live/x/index.m3u8" {
		t.Fatalf("route without Redis: %+v", c)
	}
}
