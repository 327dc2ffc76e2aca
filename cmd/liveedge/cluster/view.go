package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StreamView is one stream across the cluster.
type StreamView struct {
	// Viewers counts the stream's viewers on every node, by protocol;
	// the connections nodes make to each other for the stream are not
	// viewers.
	Viewers map[string]int `json:"viewers"`
	Total   int            `json:"total"`
	Nodes   []string       `json:"nodes"`            // nodes holding the stream
	Origin  string         `json:"origin,omitempty"` // node pulling it from the origins
}

// View is the cluster as seen from this node.
type View struct {
	Node    string                `json:"node"`
	RedisUp bool                  `json:"redis_up"`
	Nodes   []Node                `json:"nodes"`
	Streams map[string]StreamView `json:"streams"`
	Error   string                `json:"error,omitempty"`
}

// Aggregate sums the streams of nodes: viewers per protocol, minus the
// one RTMP connection each node pulling from another node holds there.
func Aggregate(nodes []Node) map[string]StreamView {
	out := map[string]StreamView{}
	for _, n := range nodes {
		for name, st := range n.Streams {
			v := out[name]
			if v.Viewers == nil {
				v.Viewers = map[string]int{}
			}
			for p, k := range st.Viewers {
				v.Viewers[p] += k
			}
			switch st.Source {
			case "sibling":
				v.Viewers["rtmp"]--
			case "origin", "publish":
				v.Origin = n.ID
			}
			v.Nodes = append(v.Nodes, n.ID)
			out[name] = v
		}
	}
	for name, v := range out {
		v.Total = 0
		for p, k := range v.Viewers {
			if k <= 0 {
				delete(v.Viewers, p)
				continue
			}
			v.Total += k
		}
		slices.Sort(v.Nodes)
		out[name] = v
	}
	return out
}

// View returns the cluster's nodes and streams.
func (c *Cluster) View(ctx context.Context) View {
	nodes, err := c.Nodes(ctx)
	v := View{Node: c.self.ID, RedisUp: err == nil, Nodes: nodes, Streams: Aggregate(nodes)}
	if err != nil {
		v.Error = err.Error()
	}
	slices.SortFunc(v.Nodes, func(a, b Node) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return v
}

// Handler serves the View as JSON (GET /api/v1/cluster on the admin
// listener).
func (c *Cluster) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			routeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.View(r.Context()))
	})
}

// Collector returns the cluster's Prometheus metrics: nodes alive, Redis
// reachable, leases held here, and cluster-wide viewers of the maxStreams
// streams with the most (the rest summed as stream="_other").
func (c *Cluster) Collector(maxStreams int) prometheus.Collector {
	return &collector{c: c, max: max(maxStreams, 1)}
}

type collector struct {
	c   *Cluster
	max int
}

var (
	descNodes   = prometheus.NewDesc("liveedge_cluster_nodes", "Nodes registered in the cluster.", nil, nil)
	descRedis   = prometheus.NewDesc("liveedge_cluster_redis_up", "Whether the last heartbeat reached Redis.", nil, nil)
	descLeases  = prometheus.NewDesc("liveedge_cluster_leases", "Streams this node pulls from their origins for the cluster.", nil, nil)
	descViewers = prometheus.NewDesc("liveedge_cluster_viewers", "Viewers of a stream on every node of the cluster.", []string{"stream"}, nil)
)

func (k *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descNodes
	ch <- descRedis
	ch <- descLeases
	ch <- descViewers
}

func (k *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v := k.c.View(ctx)
	up := 0.0
	if v.RedisUp {
		up = 1
	}
	k.c.mu.Lock()
	leases := len(k.c.leases)
	k.c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(len(v.Nodes)))
	ch <- prometheus.MustNewConstMetric(descRedis, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(leases))
	type sv struct {
		name string
		n    int
	}
	list := make([]sv, 0, len(v.Streams))
	for name, s := range v.Streams {
		list = append(list, sv{name, s.Total})
	}
	slices.SortFunc(list, func(a, b sv) int {
		if a.n != b.n {
			return b.n - a.n
		}
		if a.name < b.name {
			return -1
		}
		return 1
	})
	other := 0
	for i, s := range list {
		if i < k.max {
			ch <- prometheus.MustNewConstMetric(descViewers, prometheus.GaugeValue, float64(s.n), s.name)
		} else {
			other += s.n
		}
	}
	if len(list) > k.max {
		ch <- prometheus.MustNewConstMetric(descViewers, prometheus.GaugeValue, float64(other), "_other")
	}
}
