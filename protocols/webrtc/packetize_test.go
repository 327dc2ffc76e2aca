package webrtc

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// depacketize reverses packetizeH264 (STAP-A, FU-A, single NAL units).
func depacketize(t *testing.T, payloads [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	var fu []byte
	for _, p := range payloads {
		if len(p) > maxPayload {
			t.Fatalf("payload of %d bytes", len(p))
		}
		switch p[0] & 0x1f {
		case 24:
			for r := p[1:]; len(r) > 0; {
				n := int(binary.BigEndian.Uint16(r))
				out = append(out, r[2:2+n])
				r = r[2+n:]
			}
		case 28:
			if p[1]&0x80 != 0 {
				fu = []byte{p[0]&0xe0 | p[1]&0x1f}
			}
			fu = append(fu, p[2:]...)
			if p[1]&0x40 != 0 {
				out = append(out, fu)
				fu = nil
			}
		default:
			out = append(out, p)
		}
	}
	return out
}

func TestPacketizeH264(t *testing.T) {
	sps, pps := []byte{0x67, 0x64, 0x00, 0x1f, 1}, []byte{0x68, 2}
	big := append([]byte{0x65}, bytes.Repeat([]byte{7}, 5000)...)
	small := []byte{0x41, 1, 2, 3}
	for _, tc := range []struct {
		name  string
		nalus [][]byte
		key   bool
		want  [][]byte
	}{
		{"keyframe gets parameter sets", [][]byte{{0x09, 0xf0}, big}, true, [][]byte{sps, pps, big}},
		{"keyframe with its own", [][]byte{sps, pps, big}, true, [][]byte{sps, pps, big}},
		{"delta", [][]byte{small, small}, false, [][]byte{small, small}},
		{"single", [][]byte{small}, false, [][]byte{small}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := depacketize(t, packetizeH264(tc.nalus, tc.key, sps, pps))
			if len(got) != len(tc.want) {
				t.Fatalf("%d NAL units, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Fatalf("NAL unit %d differs", i)
				}
			}
		})
	}
}

func TestCandidatePolicy(t *testing.T) {
	p := CandidatePolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")},
		Deny: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	sdp := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n" +
		"a=candidate:2 1 udp 2130706431 192.168.1.2 5000 typ host\r\n" +
		"a=candidate:3 1 udp 2130706431 10.9.1.1 5000 typ host\r\n" +
		"a=candidate:4 1 udp 2130706431 abcd.local 5000 typ host\r\n" +
		"a=candidate:5 1 udp 2130706431 10.1.1.1 5000 typ srflx raddr 0.0.0.0 rport 0\r\n" +
		"a=end-of-candidates\r\n"
	out, dropped := p.filterSDP(sdp)
	if dropped != 3 || !strings.Contains(out, " 127.0.0.1 ") || !strings.Contains(out, " 10.1.1.1 ") ||
		strings.Contains(out, "192.168") || strings.Contains(out, "10.9.1.1") || strings.Contains(out, ".local") ||
		!strings.HasSuffix(out, "a=end-of-candidates\r\n") {
		t.Fatalf("dropped %d:\n%s", dropped, out)
	}
	if !(CandidatePolicy{}).Accepts(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("an empty policy refuses")
	}
	if p.Accepts(netip.MustParseAddr("::ffff:127.0.0.1")) != true {
		t.Fatal("a v4-mapped loopback address is refused")
	}
}
