package webrtc

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"

	"github.com/liveedge/liveedge/internal/whepclient"
)

// fuzzPolicy is the policy of TestCandidatePolicy.
var fuzzPolicy = CandidatePolicy{
	Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")},
	Deny:  []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
}

// handOffer is a browser-shaped offer (session-level fingerprint, H.264
// and Opus, candidates the policy accepts and refuses).
const handOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
	"a=group:BUNDLE 0 1\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\na=setup:actpass\r\n" +
	"a=rtpmap:96 H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
	"a=rtpmap:97 VP8/90000\r\n" +
	"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n" +
	"a=candidate:2 1 udp 2130706431 192.168.1.2 5000 typ host\r\n" +
	"a=candidate:3 1 udp 2130706431 10.9.1.1 5000 typ host\r\n" +
	"a=candidate:4 1 udp 2130706431 abcd.local 5000 typ host\r\n" +
	"a=candidate:5 1 udp 2130706431 10.1.1.1 5000 typ srflx raddr 0.0.0.0 rport 0\r\n" +
	"a=end-of-candidates\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"

var (
	realOffersOnce sync.Once
	realOffers     []string
)

// sdpSeeds are the offers of the WebRTC tests: pion's, as the test
// client (internal/whepclient) makes them with and without audio, and a
// browser-shaped one; plus the malformed ones of the tests.
func sdpSeeds(t testing.TB) []string {
	realOffersOnce.Do(func() {
		for _, audio := range []bool{false, true} {
			c, err := whepclient.New(whepclient.Options{Audio: audio})
			if err != nil {
				t.Fatal(err)
			}
			o, err := c.Offer()
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			realOffers = append(realOffers, o)
		}
	})
	seeds := append([]string{handOffer, "", "v=0", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
		strings.ReplaceAll(handOffer, "\r\n", "\n")}, realOffers...)
	return seeds
}

// FuzzInspectOffer: inspectOffer never panics, accepts only what pion
// parses and what has an H.264 (packetization-mode=1) video section, and
// judges the same after a re-marshal by pion.
func FuzzInspectOffer(f *testing.F) {
	for _, s := range sdpSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		info, err := inspectOffer(raw)
		if err != nil {
			if !errors.Is(err, ErrBadOffer) && !errors.Is(err, ErrNoH264) {
				t.Fatalf("error %v is neither ErrBadOffer nor ErrNoH264", err)
			}
			return
		}
		var d sdp.SessionDescription
		if err := d.UnmarshalString(raw); err != nil {
			t.Fatalf("accepted an offer pion does not parse: %v", err)
		}
		video := false
		for _, m := range d.MediaDescriptions {
			if m.MediaName.Media == "video" && hasCodec(m, "h264", "packetization-mode=1") {
				video = true
			}
		}
		if !video {
			t.Fatal("accepted an offer without H.264 video")
		}
		out, err := d.Marshal()
		if err != nil {
			return
		}
		again, err := inspectOffer(string(out))
		if err != nil || again != info {
			t.Fatalf("re-marshaled offer gives %+v, %v; want %+v\n%q", again, err, info, out)
		}
	})
}

// FuzzFilterSDP: a filtered SDP never carries a candidate the policy
// refuses, as pion parses it (SDP lines, then the ICE candidate); only
// candidate lines are removed, and filtering is idempotent.
func FuzzFilterSDP(f *testing.F) {
	for _, s := range sdpSeeds(f) {
		f.Add(s)
	}
	f.Add("a=candidate:1 1 udp 1 10.9.1.1 5000 typ host\n")
	f.Add("a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r")
	f.Add("a=candidate:1 1 udp 1  10.9.1.1 5000 typ host\r\n")
	f.Add("a=candidate:1 1 udp 1 ::ffff:10.9.1.1 5000 typ host\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		out, dropped := fuzzPolicy.filterSDP(in)
		if dropped < 0 || len(out) > len(in) || (dropped == 0) != (out == in) {
			t.Fatalf("dropped %d, %d bytes of %d", dropped, len(out), len(in))
		}
		if again, n := fuzzPolicy.filterSDP(out); n != 0 || again != out {
			t.Fatalf("filtering again drops %d", n)
		}
		if lines(out)+dropped != lines(in) {
			t.Fatalf("%d lines + %d dropped, from %d lines", lines(out), dropped, lines(in))
		}
		var d sdp.SessionDescription
		if d.UnmarshalString(out) != nil {
			return
		}
		attrs := d.Attributes
		for _, m := range d.MediaDescriptions {
			attrs = append(attrs, m.Attributes...)
		}
		for _, a := range attrs {
			if !a.IsICECandidate() {
				continue
			}
			c, err := ice.UnmarshalCandidate(a.Value)
			if err != nil {
				continue // pion ignores it too
			}
			ip, err := netip.ParseAddr(c.Address())
			if err != nil || !fuzzPolicy.Accepts(ip) {
				t.Fatalf("filtered SDP keeps candidate %q (address %q)", a.Value, c.Address())
			}
		}
	})
}

// lines counts the lines of s, the last one with or without its "\n".
func lines(s string) int {
	n := strings.Count(s, "\n")
	if s != "" && !strings.HasSuffix(s, "\n") {
		n++
	}
	return n
}

// FuzzCandidateAddr: an address candidateAddr finds is the address pion
// parses from the same candidate (the policy is applied to what pion will
// connect to). candidateAddr may refuse what pion parses (odd spacing, as
// in the last seed): the line is then dropped, which is safe.
func FuzzCandidateAddr(f *testing.F) {
	for _, s := range []string{
		"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
		"a=candidate:5 1 udp 2130706431 10.1.1.1 5000 typ srflx raddr 0.0.0.0 rport 0",
		"candidate:4 1 udp 2130706431 abcd.local 5000 typ host",
		"candidate:1 1 tcp 1 ::1 9 typ host tcptype active",
		"candidate:1 1 udp 1 127.0.0.1 5000",
		"",
		"candidate:  tCp  ::  typ host",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ip, ok := candidateAddr(line)
		if ok && !ip.IsValid() {
			t.Fatal("ok with an invalid address")
		}
		v := strings.TrimPrefix(strings.TrimSpace(line), "a=")
		if !strings.HasPrefix(v, "candidate:") {
			return
		}
		c, err := ice.UnmarshalCandidate(v)
		if err != nil {
			return
		}
		if !ok {
			return // refused (the line is dropped), though pion may parse it
		}
		pip, err := netip.ParseAddr(c.Address())
		if err != nil || pip.Unmap() != ip.Unmap() {
			t.Fatalf("candidateAddr says %v, pion connects to %q", ip, c.Address())
		}
	})
}
