package cluster

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
)

// RoutePath is where every node answers which node a viewer should use.
const RoutePath = "/api/v1/route"

// protocols maps a route request's proto to the advertised base URL it
// uses and the path of a stream under it.
var protocols = map[string]struct {
	base string
	path func(stream string) string
}{
	"rtmp":   {"rtmp", func(s string) string { return "/" + s }},
	"rtsp":   {"rtsp", func(s string) string { return "/" + s }},
	"hls":    {"http", func(s string) string { return "/" + s + "/index.m3u8" }},
	"llhls":  {"http", func(s string) string { return "/" + s + "/index.m3u8" }},
	"flv":    {"http", func(s string) string { return "/" + s + ".flv" }},
	"ws-flv": {"http", func(s string) string { return "/" + s + ".flv" }},
	"whep":   {"http", func(s string) string { return "/" + s + "/whep" }},
	"player": {"http", func(s string) string { return "/" + s + "/" }},
}

// Choice is a route answer.
type Choice struct {
	Node      string `json:"node"`
	Region    string `json:"region,omitempty"`
	URL       string `json:"url"`
	HasStream bool   `json:"has_stream"`
	Nodes     int    `json:"nodes"` // candidates considered
}

// Pick chooses among nodes the one a viewer of stream over proto should
// use: nodes advertising a URL for proto only; those in region first when
// a region is given; then those that hold the stream already (no new
// pull); then the least loaded (egress, then viewers, then CPU); self
// wins ties, to save a redirect. ok is false when no node serves proto.
func Pick(nodes []Node, stream, proto, region, self string) (Choice, bool) {
	p, known := protocols[proto]
	if !known {
		return Choice{}, false
	}
	var cands []Node
	for _, n := range nodes {
		if n.URLs[p.base] != "" {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return Choice{}, false
	}
	has := func(n Node) bool { _, ok := n.Streams[stream]; return ok }
	b2i := func(b bool) int {
		if b {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(cands, func(a, b Node) int {
		if region != "" {
			if d := b2i(a.Region == region) - b2i(b.Region == region); d != 0 {
				return d
			}
		}
		if d := b2i(has(a)) - b2i(has(b)); d != 0 {
			return d
		}
		switch {
		case a.EgressBps != b.EgressBps:
			return cmpInt64(a.EgressBps, b.EgressBps)
		case a.Viewers != b.Viewers:
			return a.Viewers - b.Viewers
		case a.CPU < b.CPU-0.05:
			return -1
		case b.CPU < a.CPU-0.05:
			return 1
		}
		if d := b2i(a.ID == self) - b2i(b.ID == self); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	best := cands[0]
	u := best.URLs[p.base] + p.path(stream)
	if proto == "ws-flv" {
		u = "ws" + strings.TrimPrefix(u, "http")
	}
	return Choice{Node: best.ID, Region: best.Region, URL: u, HasStream: has(best), Nodes: len(cands)}, true
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RouteHandler answers GET /api/v1/route?stream=<app>/<stream>&proto=<p>
// [&region=<r>][&redirect=1] with the chosen node as JSON (Choice), or
// with a 302 to its URL when redirect is set. proto is one of rtmp, rtsp,
// hls, llhls, flv, ws-flv, whep, player (default). The token parameters
// of the request (named tokenParams) are carried onto the URL. nodes
// lists the candidates; self names this node.
func RouteHandler(nodes func(ctx context.Context) []Node, self string, tokenParams ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			routeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		q := r.URL.Query()
		stream := q.Get("stream")
		if !hub.ValidName(stream) {
			routeError(w, http.StatusBadRequest, "stream: want <app>/<stream>")
			return
		}
		proto := q.Get("proto")
		if proto == "" {
			proto = "player"
		}
		if _, ok := protocols[proto]; !ok {
			names := make([]string, 0, len(protocols))
			for k := range protocols {
				names = append(names, k)
			}
			slices.Sort(names)
			routeError(w, http.StatusBadRequest, "proto: want one of "+strings.Join(names, ", "))
			return
		}
		c, ok := Pick(nodes(r.Context()), stream, proto, q.Get("region"), self)
		if !ok {
			routeError(w, http.StatusServiceUnavailable, "no node serves "+proto)
			return
		}
		if u, err := url.Parse(c.URL); err == nil {
			uq := url.Values{}
			for _, k := range tokenParams {
				if v, ok := q[k]; ok {
					uq[k] = v
				}
			}
			if len(uq) > 0 {
				u.RawQuery = uq.Encode()
				c.URL = u.String()
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		if v := q.Get("redirect"); v == "1" || v == "true" {
			http.Redirect(w, r, c.URL, http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	})
}

func routeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// RouteNodes lists the route candidates: the live nodes of the cluster,
// or this node alone when Redis does not answer and no earlier list is
// known.
func (c *Cluster) RouteNodes(ctx context.Context) []Node {
	nodes, err := c.Nodes(ctx)
	if err != nil && len(nodes) == 0 {
		return []Node{c.snapshotLocal()}
	}
	return nodes
}

// Local is the route candidate list of a node without a cluster: itself.
type Local struct {
	self atomic.Pointer[Node]
	hub  *hub.Hub
}

// NewLocal describes the node cfg (resolved) configures, serving h.
func NewLocal(cfg config.ClusterConfig, h *hub.Hub) *Local {
	l := &Local{hub: h}
	n := SelfNode(cfg)
	l.self.Store(&n)
	return l
}

// Bound is Cluster.Bound for a node without a cluster.
func (l *Local) Bound(proto string, addr net.Addr) {
	n := *l.self.Load()
	n.URLs = maps.Clone(n.URLs)
	n.URLs[proto] = boundURL(n.URLs[proto], addr)
	l.self.Store(&n)
}

// ID returns the node's ID.
func (l *Local) ID() string { return l.self.Load().ID }

// Nodes returns the node itself, with its streams.
func (l *Local) Nodes(context.Context) []Node { return []Node{withStreams(*l.self.Load(), l.hub)} }

// withStreams returns n with the streams and viewers of h (no rates).
func withStreams(n Node, h *hub.Hub) Node {
	n.Streams = map[string]StreamState{}
	n.Viewers = 0
	for _, in := range h.Streams() {
		st := StreamState{Viewers: map[string]int{}}
		for p, v := range in.Viewers {
			st.Viewers[p] = v
			n.Viewers += v
		}
		n.Streams[in.Name] = st
	}
	return n
}

// snapshotLocal is this node's registration without touching the rate
// samples of the heartbeat.
func (c *Cluster) snapshotLocal() Node { return withStreams(c.self, c.p.Hub) }
