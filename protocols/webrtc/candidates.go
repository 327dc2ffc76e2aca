package webrtc

import (
	"net"
	"net/netip"
	"strings"
)

// CandidatePolicy decides which remote ICE candidates the server accepts,
// so that an offer cannot point the server's connectivity checks at
// addresses it has no business sending to (internal networks, metadata
// services). A candidate is accepted when its address is an IP literal
// (never a hostname or an mDNS name), matches Allow (when Allow is not
// empty) and matches no Deny prefix.
type CandidatePolicy struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
}

// Accepts reports whether a remote candidate address is allowed.
func (c CandidatePolicy) Accepts(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range c.Deny {
		if p.Contains(ip) {
			return false
		}
	}
	if len(c.Allow) == 0 {
		return true
	}
	for _, p := range c.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// acceptsIP adapts Accepts to pion's remote IP filter.
func (c CandidatePolicy) acceptsIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && c.Accepts(a)
}

// candidateAddr returns the connection address of an ICE candidate
// attribute value ("candidate:<foundation> <component> <transport>
// <priority> <address> <port> typ ..."), with or without the "a=" and
// "candidate:" prefixes.
func candidateAddr(line string) (netip.Addr, bool) {
	line = strings.TrimPrefix(strings.TrimSpace(line), "a=")
	line = strings.TrimPrefix(line, "candidate:")
	f := strings.Fields(line)
	if len(f) < 8 {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(f[4])
	if err != nil {
		return netip.Addr{}, false
	}
	return ip, true
}

// filterSDP removes the a=candidate lines whose address the policy does
// not accept and returns the SDP with the number of lines removed. Line
// endings are kept as they were.
func (c CandidatePolicy) filterSDP(sdp string) (string, int) {
	if !strings.Contains(sdp, "a=candidate:") {
		return sdp, 0
	}
	var b strings.Builder
	b.Grow(len(sdp))
	dropped := 0
	for rest := sdp; rest != ""; {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = ""
		}
		if strings.HasPrefix(line, "a=candidate:") {
			if ip, ok := candidateAddr(line); !ok || !c.Accepts(ip) {
				dropped++
				continue
			}
		}
		b.WriteString(line)
	}
	return b.String(), dropped
}
