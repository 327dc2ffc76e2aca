package config

// RTSPConfig configures the RTSP output: its TCP listener and the UDP
// ports of viewers that play over UDP unicast.
type RTSPConfig struct {
	// Listen is the TCP address ("" disables RTSP).
	Listen string `yaml:"listen" json:"listen"`
	// UDPRTPPort is the UDP port of RTP for UDP viewers, on the host of
	// Listen; RTCP uses the next port. It must be even; 0 disables UDP
	// (viewers then play over TCP, interleaved).
	UDPRTPPort int `yaml:"udp_rtp_port" json:"udp_rtp_port"`
}

// Enabled reports whether RTSP is on.
func (r RTSPConfig) Enabled() bool { return r.Listen != "" }

func defaultRTSP() RTSPConfig { return RTSPConfig{Listen: ":8554", UDPRTPPort: 8000} }

func (c *Config) validateRTSP(v *validator) {
	p := c.RTSP.UDPRTPPort
	if p == 0 || !c.RTSP.Enabled() {
		return
	}
	if p < 0 || p > 65534 || p%2 != 0 {
		v.add("rtsp.udp_rtp_port", "%d must be an even port in 2..65534 (0 disables UDP)", p)
		return
	}
	if w := c.WebRTC.UDPPort; w == p || w == p+1 {
		v.add("rtsp.udp_rtp_port", "%d (RTP) and %d (RTCP) conflict with webrtc.udp_port %d", p, p+1, w)
	}
}
