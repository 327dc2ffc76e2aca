package config

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// WebRTCConfig configures WebRTC output (WHEP and the ZLMediaKit-style API
// on the http listener; media on one UDP port).
type WebRTCConfig struct {
	// UDPPort is the single UDP port for all WebRTC media (1..65535).
	UDPPort int `yaml:"udp_port" json:"udp_port"`
	// TCPPort is the one TCP port of ICE-TCP, the fallback for clients
	// that cannot use UDP (0 turns ICE-TCP off). It is bound on UDPHost.
	TCPPort int `yaml:"tcp_port" json:"tcp_port"`
	// UDPHost is the IP address the UDP port is bound to; "" binds every
	// local address.
	UDPHost string `yaml:"udp_host" json:"udp_host"`
	// PublicIPs replace the addresses of the host candidates (1:1 NAT).
	PublicIPs []string `yaml:"public_ips,omitempty" json:"public_ips,omitempty"`
	// ICEServers are STUN/TURN URLs advertised to clients (WHEP Link
	// headers).
	ICEServers []string `yaml:"ice_servers,omitempty" json:"ice_servers,omitempty"`
	// Interfaces, if set, limits host candidates to these interfaces;
	// HostIPs (CIDR prefixes), to these addresses.
	Interfaces []string `yaml:"interfaces,omitempty" json:"interfaces,omitempty"`
	HostIPs    []string `yaml:"host_ips,omitempty" json:"host_ips,omitempty"`
	// RemoteCandidates filters the clients' ICE candidates.
	RemoteCandidates CIDRFilter `yaml:"remote_candidates" json:"remote_candidates"`
	// PeerTimeout: a peer whose ICE does not connect, or stays without
	// connectivity, this long is removed.
	PeerTimeout Duration `yaml:"peer_timeout" json:"peer_timeout"`
	// StartDelay is how long a new peer waits after its DTLS handshake
	// before the first packet, so that its receiver is ready.
	StartDelay Duration `yaml:"start_delay" json:"start_delay"`
	// AllowOrigin is the Access-Control-Allow-Origin header of the
	// signalling endpoints ("" = no CORS).
	AllowOrigin string `yaml:"allow_origin" json:"allow_origin"`
}

// CIDRFilter is an allow/deny list of CIDR prefixes ("10.0.0.0/8") or
// addresses. An empty allow list allows every address that deny does not
// list.
type CIDRFilter struct {
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	Deny  []string `yaml:"deny,omitempty" json:"deny,omitempty"`
}

func defaultWebRTC() WebRTCConfig {
	return WebRTCConfig{
		UDPPort:     8189,
		TCPPort:     8189,
		PeerTimeout: Duration(10e9),
		StartDelay:  Duration(100e6),
		AllowOrigin: "*",
	}
}

func (w WebRTCConfig) clone() WebRTCConfig {
	w.PublicIPs = cloneStrings(w.PublicIPs)
	w.ICEServers = cloneStrings(w.ICEServers)
	w.Interfaces = cloneStrings(w.Interfaces)
	w.HostIPs = cloneStrings(w.HostIPs)
	w.RemoteCandidates.Allow = cloneStrings(w.RemoteCandidates.Allow)
	w.RemoteCandidates.Deny = cloneStrings(w.RemoteCandidates.Deny)
	return w
}

// ParsePrefixes parses CIDR prefixes or single addresses (as /32 or /128).
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (c *Config) validateWebRTC(v *validator) {
	w := &c.WebRTC
	if w.UDPHost != "" {
		if _, err := netip.ParseAddr(w.UDPHost); err != nil {
			v.add("webrtc.udp_host", "%q is not an IP address", w.UDPHost)
		}
	}
	for i, ip := range w.PublicIPs {
		if net.ParseIP(ip) == nil {
			v.add(pathIndex("webrtc.public_ips", i), "%q is not an IP address", ip)
		}
	}
	for i, s := range w.ICEServers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "stun" && u.Scheme != "stuns" && u.Scheme != "turn" && u.Scheme != "turns") || u.Opaque == "" {
			v.add(pathIndex("webrtc.ice_servers", i), "%q is not a stun:, stuns:, turn: or turns: URL", s)
		}
	}
	for i, n := range w.Interfaces {
		if n == "" || strings.ContainsAny(n, " /") {
			v.add(pathIndex("webrtc.interfaces", i), "%q is not an interface name", n)
		}
	}
	for _, l := range []struct {
		path string
		list []string
	}{
		{"webrtc.host_ips", w.HostIPs},
		{"webrtc.remote_candidates.allow", w.RemoteCandidates.Allow},
		{"webrtc.remote_candidates.deny", w.RemoteCandidates.Deny},
	} {
		for i, s := range l.list {
			if _, err := parsePrefix(s); err != nil {
				v.add(pathIndex(l.path, i), "%q is not a CIDR prefix or IP address", s)
			}
		}
	}
	v.positive("webrtc.peer_timeout", w.PeerTimeout)
	if w.StartDelay < 0 || w.StartDelay > Duration(1e9) {
		v.add("webrtc.start_delay", "must be in 0..1s (got %s)", w.StartDelay)
	}
}

func pathIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
