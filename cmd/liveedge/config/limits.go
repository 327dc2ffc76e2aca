package config

// LimitsConfig caps what one node serves; 0 means no limit. A refused
// publisher or viewer gets its protocol's "busy" answer (RTMP
// NetStream.Play.Failed / publish error, HTTP and RTSP 503), and the
// refusal is counted in liveedge_auth_refusals_total by reason.
type LimitsConfig struct {
	// MaxStreams caps the streams at once (published, pulled or waited
	// for).
	MaxStreams int `yaml:"max_streams" json:"max_streams"`
	// MaxViewers caps the viewers in total, MaxViewersPerStream those of
	// one stream. Viewers are RTMP, HTTP-FLV/WS-FLV, RTSP and WebRTC
	// clients; HLS clients, which hold no connection, are not counted.
	MaxViewers          int `yaml:"max_viewers" json:"max_viewers"`
	MaxViewersPerStream int `yaml:"max_viewers_per_stream" json:"max_viewers_per_stream"`
	// MaxBitratePerIP caps what one client IP watches, in bit/s ("20M";
	// 0: no cap): a new viewer is refused when the recent bitrate of its
	// stream plus that of the stream of each viewer session the IP holds
	// already would exceed it ("bitrate_per_ip"). The bitrate is the
	// stream's media bitrate in, over the last few seconds. Viewers are
	// counted as for MaxViewers: HLS clients hold no session and are left
	// out.
	MaxBitratePerIP Bitrate `yaml:"max_bitrate_per_ip" json:"max_bitrate_per_ip"`
	// ConnectionsPerIP caps the new connections a second from one client
	// IP on each TCP listener (RTMP, RTSP, HTTP), with bursts of
	// ConnectionBurst (0: twice the rate, at least 1). Connections past
	// it are closed at accept and counted ("connection_rate"). Set at
	// start-up.
	ConnectionsPerIP float64 `yaml:"connections_per_ip" json:"connections_per_ip"`
	ConnectionBurst  int     `yaml:"connection_burst" json:"connection_burst"`
}

func (c *Config) validateLimits(v *validator) {
	for _, f := range []struct {
		path string
		n    int
	}{
		{"limits.max_streams", c.Limits.MaxStreams},
		{"limits.max_viewers", c.Limits.MaxViewers},
		{"limits.max_viewers_per_stream", c.Limits.MaxViewersPerStream},
		{"limits.connection_burst", c.Limits.ConnectionBurst},
	} {
		if f.n < 0 {
			v.add(f.path, "must be >= 0 (got %d; 0 means no limit)", f.n)
		}
	}
	if b := c.Limits.MaxBitratePerIP; b < 0 {
		v.add("limits.max_bitrate_per_ip", "must be >= 0 (got %d; 0 means no limit)", int64(b))
	}
	if r := c.Limits.ConnectionsPerIP; r < 0 {
		v.add("limits.connections_per_ip", "must be >= 0 (got %v; 0 means no limit)", r)
	}
}
