package admin

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
)

// otherStream is the stream label under which the streams past
// admin.metrics_max_streams are summed.
const otherStream = "_other"

// collector reads the hub and the sources at scrape time: nothing is
// counted per packet for the metrics.
type collector struct {
	hub        *hub.Hub
	src        Sources
	maxStreams int

	viewers, streams, gopBytes, mediaIn, sinceMedia, bytesOut *prometheus.Desc
	originUp, originRTT                                       *prometheus.Desc
	connects, failures, failovers, failbacks, bytes           *prometheus.Desc
	pullUp                                                    *prometheus.Desc
	refusals, dropped, skips, slow, ttff                      *prometheus.Desc
}

func newCollector(h *hub.Hub, src Sources, maxStreams int) *collector {
	if maxStreams < 1 {
		maxStreams = 1
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("liveedge_"+name, help, labels, nil)
	}
	return &collector{
		hub: h, src: src, maxStreams: maxStreams,
		viewers:  d("viewers", "Viewers of a stream by protocol.", "stream", "protocol"),
		streams:  d("streams", "Live streams in the hub."),
		gopBytes: d("stream_gop_cache_bytes", "Bytes in a stream's GOP cache.", "stream"),
		mediaIn: d("stream_media_bytes_in_total",
			"Media payload bytes a stream took from its producers (without protocol overhead).", "stream"),
		bytesOut: d("bytes_out_total",
			"Bytes written to a stream's viewers by protocol, framing included (RTMP chunks, FLV tags, RTP packets, HLS responses).",
			"stream", "protocol"),
		sinceMedia: d("stream_seconds_since_media",
			"Seconds since a stream last took a media unit (for _other: the longest).", "stream"),
		originUp:  d("origin_up", "Whether the last background probe of an origin succeeded (1) or not (0).", "origin"),
		originRTT: d("origin_rtt_seconds", "Connect and play time of an origin's last successful probe.", "origin"),
		connects:  d("pull_connects_total", "Origin connections of a stream's pull that delivered media.", "stream"),
		failures:  d("pull_failures_total", "Origin attempts of a stream's pull that ended in an error.", "stream"),
		failovers: d("pull_failovers_total", "Switches of a stream's pull to another origin after a failure.", "stream"),
		failbacks: d("pull_failbacks_total", "Switches of a stream's pull back to its primary origin.", "stream"),
		bytes:     d("pull_bytes_in_total", "Bytes a stream's pull received from origins.", "stream"),
		pullUp:    d("pull_up", "Whether media flows from the origin a stream's pull uses (1) or not (0).", "stream", "origin"),
		refusals:  d("auth_refusals_total", "Admission refusals by reason.", "reason"),
		dropped:   d("slow_viewer_dropped_units_total", "Media units slow viewers skipped."),
		skips:     d("slow_viewer_skips_total", "Skips of slow viewers to the newest keyframe."),
		slow:      d("slow_viewer_disconnects_total", "Viewers disconnected as too slow."),
		ttff:      d("ttff_seconds", "Time from a viewer's request to its first media unit.", "protocol"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.viewers, c.streams, c.gopBytes, c.mediaIn, c.sinceMedia, c.bytesOut, c.originUp, c.originRTT,
		c.connects, c.failures, c.failovers, c.failbacks, c.bytes, c.pullUp,
		c.refusals, c.dropped, c.skips, c.slow, c.ttff} {
		ch <- d
	}
}

// streamStat is what the metrics know of one stream, or of the sum of
// the streams under _other.
type streamStat struct {
	name     string
	viewers  map[string]int
	total    int
	gopBytes int
	inBytes  uint64
	outBytes map[string]uint64 // by protocol
	since    float64           // seconds since the last media unit; -1: none yet
	pulled   bool
	pull     source.Stats
	pullsUp  int // for _other: how many summed pulls are up
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	infos := c.hub.Streams()
	var pulls map[string]source.Stats
	if c.src != nil {
		pulls = c.src.Pulls()
	}
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(len(infos)))

	// One entry per stream, hub streams and running pulls alike.
	byName := map[string]*streamStat{}
	for _, in := range infos {
		st := &streamStat{name: in.Name, viewers: map[string]int{}, gopBytes: in.GOP.GOPBytes, inBytes: in.BytesIn, since: -1,
			outBytes: in.BytesOut}
		if !in.LastMedia.IsZero() {
			st.since = time.Since(in.LastMedia).Seconds()
		}
		for p, n := range in.Viewers {
			st.viewers[p] += n
			st.total += n
		}
		byName[in.Name] = st
	}
	for name, ps := range pulls {
		st := byName[name]
		if st == nil {
			st = &streamStat{name: name, viewers: map[string]int{}, since: -1}
			byName[name] = st
		}
		st.pulled, st.pull = true, ps
	}
	list := make([]*streamStat, 0, len(byName))
	for _, st := range byName {
		list = append(list, st)
	}
	// The streams with the most viewers keep their own label.
	sort.Slice(list, func(i, j int) bool {
		if list[i].total != list[j].total {
			return list[i].total > list[j].total
		}
		return list[i].name < list[j].name
	})
	if len(list) > c.maxStreams {
		other := &streamStat{name: otherStream, viewers: map[string]int{}, since: -1, outBytes: map[string]uint64{}}
		for _, st := range list[c.maxStreams:] {
			for p, n := range st.viewers {
				other.viewers[p] += n
			}
			for p, n := range st.outBytes {
				other.outBytes[p] += n
			}
			other.total += st.total
			other.gopBytes += st.gopBytes
			other.inBytes += st.inBytes
			other.since = max(other.since, st.since)
			if st.pulled {
				other.pulled = true
				other.pull.Connects += st.pull.Connects
				other.pull.Failures += st.pull.Failures
				other.pull.Failovers += st.pull.Failovers
				other.pull.Failbacks += st.pull.Failbacks
				other.pull.BytesIn += st.pull.BytesIn
				if st.pull.Up {
					other.pullsUp++
				}
			}
		}
		list = append(list[:c.maxStreams], other)
	}

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, st := range list {
		for p, n := range st.viewers {
			gauge(c.viewers, float64(n), st.name, p)
		}
		gauge(c.gopBytes, float64(st.gopBytes), st.name)
		counter(c.mediaIn, st.inBytes, st.name)
		for p, n := range st.outBytes {
			counter(c.bytesOut, n, st.name, p)
		}
		if st.since >= 0 {
			gauge(c.sinceMedia, st.since, st.name)
		}
		if !st.pulled {
			continue
		}
		counter(c.connects, st.pull.Connects, st.name)
		counter(c.failures, st.pull.Failures, st.name)
		counter(c.failovers, st.pull.Failovers, st.name)
		counter(c.failbacks, st.pull.Failbacks, st.name)
		counter(c.bytes, st.pull.BytesIn, st.name)
		if st.name == otherStream {
			gauge(c.pullUp, float64(st.pullsUp), st.name, otherStream)
		} else {
			gauge(c.pullUp, b2f(st.pull.Up), st.name, st.pull.Origin)
		}
	}

	if c.src != nil {
		for _, h := range c.src.Health() {
			if !h.Known {
				continue
			}
			gauge(c.originUp, b2f(h.Up), h.Origin)
			if h.Up {
				gauge(c.originRTT, h.RTT.Seconds(), h.Origin)
			}
		}
	}

	cs := c.hub.Counters()
	for reason, n := range cs.Refusals {
		counter(c.refusals, n, reason)
	}
	counter(c.dropped, cs.Dropped)
	counter(c.skips, cs.Skips)
	counter(c.slow, cs.SlowViewers)
	for proto, hg := range cs.TTFF {
		buckets := make(map[float64]uint64, len(hub.TTFFBuckets))
		for i, b := range hub.TTFFBuckets {
			if i < len(hg.Counts) {
				buckets[b.Seconds()] = hg.Counts[i]
			}
		}
		ch <- prometheus.MustNewConstHistogram(c.ttff, hg.Count, hg.Sum.Seconds(), buckets, proto)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
