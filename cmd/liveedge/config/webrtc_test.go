package config

import (
	"strings"
	"testing"
)

func TestWebRTCSection(t *testing.T) {
	c, err := Parse([]byte(`
webrtc:
  udp_port: 9000
  udp_host: 127.0.0.1
  public_ips: [203.0.113.7]
  ice_servers: ["stun:stun.example.net:3478"]
  remote_candidates: {allow: [127.0.0.0/8, "::1"], deny: [10.0.0.0/8]}
  peer_timeout: 5s
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := c.WebRTC
	if w.UDPPort != 9000 || w.UDPHost != "127.0.0.1" || len(w.PublicIPs) != 1 || len(w.RemoteCandidates.Allow) != 2 ||
		w.PeerTimeout != Duration(5e9) || w.StartDelay != Duration(100e6) || w.AllowOrigin != "*" {
		t.Fatalf("%+v", w)
	}
	p, err := ParsePrefixes(w.RemoteCandidates.Allow)
	if err != nil || p[1].Bits() != 128 {
		t.Fatalf("%v %v", p, err)
	}

	c = Default()
	c.WebRTC.UDPHost = "localhost"
	c.WebRTC.PublicIPs = []string{"nope"}
	c.WebRTC.ICEServers = []string{"http://x"}
	c.WebRTC.RemoteCandidates.Deny = []string{"10.0.0.0/33"}
	c.WebRTC.PeerTimeout = 0
	err = c.Validate()
	for _, want := range []string{"webrtc.udp_host", "webrtc.public_ips[0]", "webrtc.ice_servers[0]",
		"webrtc.remote_candidates.deny[0]", "webrtc.peer_timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in %v", want, err)
		}
	}
	if _, err := Parse([]byte("webrtc: {remote_candidates: {allowed: []}}\n")); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestWebRTCTCPPort(t *testing.T) {
	c := Default()
	if c.WebRTC.TCPPort != 8189 {
		t.Fatalf("default tcp_port %d", c.WebRTC.TCPPort)
	}
	c.WebRTC.TCPPort = 0
	if err := c.Validate(); err != nil {
		t.Fatalf("tcp_port 0 (off): %v", err)
	}
	for _, tc := range []struct {
		port int
		want string
	}{
		{-1, "webrtc.tcp_port: -1 is not in 0..65535"},
		{1935, `webrtc.tcp_port: 1935 conflicts with rtmp.listen ":1935"`},
	} {
		c.WebRTC.TCPPort = tc.port
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tcp_port %d: %v, want %q", tc.port, err, tc.want)
		}
	}
}
