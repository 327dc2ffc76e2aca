package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/internal/redistest"
)

// node starts a cluster member named id on r.
func node(t *testing.T, r *redistest.Redis, id string) *Cluster {
	t.Helper()
	cfg := config.Default().Cluster
	cfg.RedisURL = r.URL()
	cfg.NodeID = id
	cfg.Heartbeat = config.Duration(100 * time.Millisecond)
	cfg.LeaseTTL = config.Duration(600 * time.Millisecond)
	cfg.Advertise = config.AdvertiseConfig{RTMP: "rtmp://127.0.0.1:1" + id[len(id)-1:], HTTP: "http://127.0.0.1:2" + id[len(id)-1:]}
	h := hub.New(hub.Params{})
	c, err := New(Params{Config: cfg, Hub: h, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() {
		c.Close()
		h.Close()
	})
	return c
}

func claim(t *testing.T, c *Cluster, stream, dead string) (source.Lease, string) {
	t.Helper()
	l, sib, err := c.Claim(context.Background(), stream, dead)
	if err != nil {
		t.Fatalf("%s: claim: %v", c.ID(), err)
	}
	return l, sib
}

func TestLeaseElectsOneNode(t *testing.T) {
	r := redistest.Start(t)
	a, b := node(t, r, "a1"), node(t, r, "b2")
	la, sib := claim(t, a, "live/x", "")
	if la == nil || sib != "" {
		t.Fatalf("first claim: lease %v, sibling %q; want a lease", la, sib)
	}
	lb, sib := claim(t, b, "live/x", "")
	if lb != nil || sib != "rtmp://127.0.0.1:11/live/x" {
		t.Fatalf("second claim: lease %v, sibling %q; want a's URL", lb, sib)
	}
	// The lease outlives its TTL while renewed.
	time.Sleep(3 * a.p.Config.LeaseTTL.Std())
	if h, _ := b.Holder(context.Background(), "live/x"); h != "a1" {
		t.Fatalf("holder after 3 TTLs: %q, want a1", h)
	}
	select {
	case <-la.Lost():
		t.Fatal("a lost its lease while renewing it")
	default:
	}
	// Released: the next claim gets it at once.
	la.Release()
	lb, sib = claim(t, b, "live/x", "")
	if lb == nil {
		t.Fatalf("after release: sibling %q, want a lease", sib)
	}
	lb.Release()
}

func TestLeaseTakeoverAndFencing(t *testing.T) {
	r := redistest.Start(t)
	a, b := node(t, r, "a1"), node(t, r, "b2")
	la, _ := claim(t, a, "live/x", "")
	if la == nil {
		t.Fatal("no lease")
	}
	// b found a's URL refusing connections: it takes the lease over now.
	start := time.Now()
	lb, sib := claim(t, b, "live/x", "rtmp://127.0.0.1:11/live/x")
	if lb == nil {
		t.Fatalf("takeover: sibling %q, want a lease", sib)
	}
	if lb.(*Lease).Fence() <= la.(*Lease).Fence() {
		t.Fatalf("fence %d after %d: want it to grow", lb.(*Lease).Fence(), la.(*Lease).Fence())
	}
	// Fencing: a, still alive, learns at its next renewal that it lost
	// the lease.
	select {
	case <-la.Lost():
		t.Logf("a saw its lease lost after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(a.p.Config.LeaseTTL.Std()):
		t.Fatal("a did not see its lease taken within one TTL")
	}
	// a's release does not delete b's lease.
	la.Release()
	if h, _ := a.Holder(context.Background(), "live/x"); h != "b2" {
		t.Fatalf("holder %q after a released its lost lease, want b2", h)
	}
	lb.Release()
}

func TestLeaseOfDeadNodeExpires(t *testing.T) {
	r := redistest.Start(t)
	a, b := node(t, r, "a1"), node(t, r, "b2")
	la, _ := claim(t, a, "live/x", "")
	if la == nil {
		t.Fatal("no lease")
	}
	// a stops renewing without releasing (as a killed process would).
	la.(*Lease).cancel()
	<-la.(*Lease).done
	deadline := time.Now().Add(3 * a.p.Config.LeaseTTL.Std())
	for {
		lb, _ := claim(t, b, "live/x", "")
		if lb != nil {
			lb.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b did not get the lease of a node that stopped renewing")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRegistryAndRedisRestart(t *testing.T) {
	r := redistest.Start(t)
	a, b := node(t, r, "a1"), node(t, r, "b2")
	waitNodes := func(want int) []Node {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			nodes, err := a.Nodes(context.Background())
			if err == nil && len(nodes) == want {
				return nodes
			}
			if time.Now().After(deadline) {
				t.Fatalf("nodes: %d (err %v), want %d", len(nodes), err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	nodes := waitNodes(2)
	for _, n := range nodes {
		if n.URLs["rtmp"] == "" || n.URLs["http"] == "" {
			t.Fatalf("node %s without URLs: %+v", n.ID, n.URLs)
		}
	}
	la, _ := claim(t, a, "live/x", "")
	if la == nil {
		t.Fatal("no lease")
	}

	// Redis restarts empty: the registrations and a's lease are written
	// again, and a keeps its lease (nobody else took it).
	r.Restart(t)
	waitNodes(2)
	deadline := time.Now().Add(2 * time.Second)
	for {
		if h, _ := b.Holder(context.Background(), "live/x"); h == "a1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's lease was not written again after Redis restarted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-la.Lost():
		t.Fatal("a lost its lease over a Redis restart")
	default:
	}
	_, sib := claim(t, b, "live/x", "")
	if sib == "" {
		t.Fatal("b got the lease a holds")
	}

	// A node that closes removes itself.
	b.Close()
	waitNodes(1)
	la.Release()
}

func TestClaimWithoutRedis(t *testing.T) {
	r := redistest.Start(t)
	a := node(t, r, "a1")
	r.Kill()
	start := time.Now()
	if _, _, err := a.Claim(context.Background(), "live/x", ""); err == nil {
		t.Fatal("claim without Redis: no error")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("claim without Redis took %v", d)
	}
}

func TestPick(t *testing.T) {
	nodes := []Node{
		{ID: "a", Region: "hk", URLs: map[string]string{"rtmp": "rtmp://a:1935", "http": "http://a:8080"}, EgressBps: 9e6, Viewers: 9,
			Streams: map[string]StreamState{"live/x": {Source: "origin"}}},
		{ID: "b", Region: "hk", URLs: map[string]string{"rtmp": "rtmp://b:1935", "http": "http://b:8080"}, EgressBps: 1e6, Viewers: 1},
		{ID: "c", Region: "sg", URLs: map[string]string{"rtmp": "rtmp://c:1935"}, EgressBps: 0},
	}
	for _, tc := range []struct {
		stream, proto, region, self string
		node, url                   string
	}{
		{"live/x", "rtmp", "", "b", "a", "rtmp://a:1935/live/x"},             // holds the stream
		{"live/y", "rtmp", "", "b", "c", "rtmp://c:1935/live/y"},             // least loaded
		{"live/x", "rtmp", "sg", "b", "c", "rtmp://c:1935/live/x"},           // region first
		{"live/x", "hls", "sg", "b", "a", "http://a:8080/live/x/index.m3u8"}, // c has no HTTP
		{"live/y", "ws-flv", "", "a", "b", "ws://b:8080/live/y.flv"},
		{"live/y", "whep", "", "a", "b", "http://b:8080/live/y/whep"},
	} {
		c, ok := Pick(nodes, tc.stream, tc.proto, tc.region, tc.self)
		if !ok || c.Node != tc.node || c.URL != tc.url {
			t.Errorf("Pick(%s, %s, region %q) = %+v %v, want %s %s", tc.stream, tc.proto, tc.region, c, ok, tc.node, tc.url)
		}
	}
	// Ties go to self.
	tie := []Node{{ID: "a", URLs: map[string]string{"rtmp": "rtmp://a"}}, {ID: "b", URLs: map[string]string{"rtmp": "rtmp://b"}}}
	if c, _ := Pick(tie, "live/x", "rtmp", "", "b"); c.Node != "b" {
		t.Errorf("tie went to %s, want self b", c.Node)
	}
	if _, ok := Pick(nodes, "live/x", "gopher", "", "a"); ok {
		t.Error("unknown protocol picked a node")
	}
}

func TestRouteHandler(t *testing.T) {
	nodes := func(context.Context) []Node {
		return []Node{{ID: "a", URLs: map[string]string{"http": "http://a:8080", "rtmp": "rtmp://a:1935"},
			Streams: map[string]StreamState{"live/x": {}}}}
	}
	srv := httptest.NewServer(RouteHandler(nodes, "a", "expires", "token"))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := noRedirect.Get(srv.URL + "/api/v1/route?stream=live/x&proto=flv&expires=10&token=abc&other=1")
	if err != nil {
		t.Fatal(err)
	}
	var c Choice
	err = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || c.URL != "http://a:8080/live/x.flv?expires=10&token=abc" || !c.HasStream {
		t.Fatalf("route: %d %+v %v", resp.StatusCode, c, err)
	}
	resp, err = noRedirect.Get(srv.URL + "/api/v1/route?stream=live/x&proto=rtmp&redirect=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "rtmp://a:1935/live/x" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, q := range []string{"stream=x&proto=rtmp", "stream=live/x&proto=gopher", "stream=../x/y"} {
		resp, err := http.Get(srv.URL + "/api/v1/route?" + q)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e["error"] == "" {
			t.Errorf("%s: %d %v, want 400 with an error", q, resp.StatusCode, e)
		}
	}
	resp, err = http.Post(srv.URL+"/api/v1/route?stream=live/x", "text/plain", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

func TestAggregate(t *testing.T) {
	nodes := []Node{
		{ID: "a", Streams: map[string]StreamState{"live/x": {Source: "origin", Viewers: map[string]int{"rtmp": 3, "webrtc": 1}}}},
		{ID: "b", Streams: map[string]StreamState{"live/x": {Source: "sibling", Viewers: map[string]int{"flv": 2}}}},
		{ID: "c", Streams: map[string]StreamState{"live/x": {Source: "sibling", Viewers: map[string]int{"rtmp": 1}}}},
	}
	v := Aggregate(nodes)["live/x"]
	// a's 3 RTMP viewers include b's and c's pulls.
	if v.Total != 5 || v.Viewers["rtmp"] != 2 || v.Viewers["flv"] != 2 || v.Viewers["webrtc"] != 1 || v.Origin != "a" || len(v.Nodes) != 3 {
		t.Fatalf("aggregate: %+v", v)
	}
}

// TestLeaseRace: nodes claiming the same stream at the same moment elect
// exactly one.
func TestLeaseRace(t *testing.T) {
	r := redistest.Start(t)
	nodes := []*Cluster{node(t, r, "a1"), node(t, r, "b2"), node(t, r, "c3")}
	for round := range 20 {
		stream := "live/race" + string(rune('a'+round))
		leases := make(chan source.Lease, 3*len(nodes))
		start := make(chan struct{})
		done := make(chan struct{})
		for _, c := range nodes {
			for range 3 { // several pulls racing on each node too
				go func() {
					defer func() { done <- struct{}{} }()
					<-start
					if l, _, err := c.Claim(context.Background(), stream, ""); err == nil && l != nil {
						leases <- l
					}
				}()
			}
		}
		close(start)
		for range 3 * len(nodes) {
			<-done
		}
		close(leases)
		n := 0
		for l := range leases {
			n++
			l.Release()
		}
		if n != 1 {
			t.Fatalf("round %d: %d leases granted, want 1", round, n)
		}
	}
}
