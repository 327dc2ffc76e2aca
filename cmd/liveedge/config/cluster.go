package config

import (
	"net"
	"net/url"
	"os"
	"strings"
)

// Defaults of the cluster section.
const (
	DefaultClusterHeartbeat = Duration(1e9) // 1s; a node's key lives 3 heartbeats
	DefaultClusterLeaseTTL  = Duration(1e9) // 1s; renewed every third of it
	DefaultClusterPrefix    = "liveedge:"
)

// ClusterConfig joins the node to a cluster of edges that share their
// state in Redis: every node registers itself and the streams it holds,
// one node per stream pulls from the origins (a lease in Redis) and the
// others pull from it, and any node answers /api/v1/route with the best
// node for a viewer. Without RedisURL the node runs alone.
type ClusterConfig struct {
	// RedisURL is redis://[user:password@]host:port[/db] (or rediss://
	// for TLS); "" runs the node alone.
	RedisURL string `yaml:"redis_url" json:"redis_url"`
	// NodeID names the node in the cluster; default: the host name and
	// the RTMP port ("edge1-1935").
	NodeID string `yaml:"node_id" json:"node_id"`
	// Region labels the node for edge selection (a client's region hint
	// prefers the nodes of its region).
	Region string `yaml:"region" json:"region"`
	// KeyPrefix starts every Redis key of the cluster (default
	// "liveedge:"); clusters sharing one Redis need distinct prefixes.
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix"`
	// Advertise are the base URLs other nodes and viewers reach this node
	// at: rtmp://host:port, rtsp://host:port and http(s)://host:port.
	// Each defaults to its listener's address, with the host name when
	// the listener binds every address.
	Advertise AdvertiseConfig `yaml:"advertise" json:"advertise"`
	// Heartbeat is how often the node refreshes its registration; the
	// registration expires after three missed heartbeats.
	Heartbeat Duration `yaml:"heartbeat" json:"heartbeat"`
	// LeaseTTL is how long the lease of a node pulling a stream from its
	// origins lasts unless renewed (every third of it). A node that dies
	// without closing its connections is taken over after at most this.
	LeaseTTL Duration `yaml:"lease_ttl" json:"lease_ttl"`
}

// AdvertiseConfig are a node's public base URLs per protocol.
type AdvertiseConfig struct {
	RTMP string `yaml:"rtmp" json:"rtmp"`
	RTSP string `yaml:"rtsp" json:"rtsp"`
	HTTP string `yaml:"http" json:"http"`
}

func defaultCluster() ClusterConfig {
	return ClusterConfig{KeyPrefix: DefaultClusterPrefix, Heartbeat: DefaultClusterHeartbeat,
		LeaseTTL: DefaultClusterLeaseTTL}
}

// Enabled reports whether the node joins a cluster.
func (c ClusterConfig) Enabled() bool { return c.RedisURL != "" }

// ClusterResolved returns the cluster section with its derived defaults filled in
// from the listeners of cfg: the node ID and the advertised URLs.
func (c *Config) ClusterResolved() ClusterConfig {
	cl := c.Cluster
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	base := func(scheme, listen string) string {
		if listen == "" {
			return ""
		}
		h, port, err := net.SplitHostPort(listen)
		if err != nil {
			return ""
		}
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			h = host
		}
		return scheme + "://" + net.JoinHostPort(h, port)
	}
	if cl.Advertise.RTMP == "" {
		cl.Advertise.RTMP = base("rtmp", c.RTMP.Listen)
	}
	if cl.Advertise.RTSP == "" {
		cl.Advertise.RTSP = base("rtsp", c.RTSP.Listen)
	}
	if cl.Advertise.HTTP == "" {
		scheme := "http"
		if c.HTTP.TLS() {
			scheme = "https"
		}
		cl.Advertise.HTTP = base(scheme, c.HTTP.Listen)
	}
	if cl.NodeID == "" {
		id := host
		if _, port, err := net.SplitHostPort(c.RTMP.Listen); err == nil {
			id += "-" + port
		}
		cl.NodeID = id
	}
	return cl
}

func (c *Config) validateCluster(v *validator) {
	cl := &c.Cluster
	if cl.RedisURL != "" {
		u, err := url.Parse(cl.RedisURL)
		switch {
		case err != nil:
			v.add("cluster.redis_url", "not a URL: %v", err)
		case u.Scheme != "redis" && u.Scheme != "rediss":
			v.add("cluster.redis_url", "must be a redis:// or rediss:// URL (got %q)", cl.RedisURL)
		case u.Host == "":
			v.add("cluster.redis_url", "has no host (got %q)", cl.RedisURL)
		}
	}
	if strings.ContainsAny(cl.NodeID, " \t\r\n:/") {
		v.add("cluster.node_id", "must not contain spaces, ':' or '/' (got %q)", cl.NodeID)
	}
	if cl.KeyPrefix == "" {
		v.add("cluster.key_prefix", "must not be empty")
	}
	for _, f := range []struct {
		path, value string
		schemes     []string
	}{
		{"cluster.advertise.rtmp", cl.Advertise.RTMP, []string{"rtmp", "rtmps"}},
		{"cluster.advertise.rtsp", cl.Advertise.RTSP, []string{"rtsp", "rtsps"}},
		{"cluster.advertise.http", cl.Advertise.HTTP, []string{"http", "https"}},
	} {
		if f.value == "" {
			continue
		}
		u, err := url.Parse(f.value)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			v.add(f.path, "must be a base URL such as %s://host:port (got %q)", f.schemes[0], f.value)
			continue
		}
		ok := false
		for _, s := range f.schemes {
			ok = ok || u.Scheme == s
		}
		if !ok {
			v.add(f.path, "must be a %s URL (got %q)", strings.Join(f.schemes, " or "), f.value)
		}
	}
	v.positive("cluster.heartbeat", cl.Heartbeat)
	v.positive("cluster.lease_ttl", cl.LeaseTTL)
}

// redactURLPassword replaces the password of a URL, if any, with
// "REDACTED".
func redactURLPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}
