package admin

import (
	"net/http/httptest"
	"testing"
)

// TestForeign: on an admin listener open without a secret, requests a
// browser sends for another site, or under a non-loopback host name (DNS
// rebinding), are foreign; local tools and the operator's own tab are not.
func TestForeign(t *testing.T) {
	for _, tc := range []struct {
		name string
		host string
		hdr  map[string]string
		want bool
	}{
		{"curl", "127.0.0.1:9997", nil, false},
		{"no host (HTTP/1.0)", "", nil, false},
		{"localhost", "localhost:9997", nil, false},
		{"ipv6 loopback", "[::1]:9997", nil, false},
		{"address bar", "127.0.0.1:9997", map[string]string{"Sec-Fetch-Site": "none"}, false},
		{"same origin", "127.0.0.1:9997", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:9997"}, false},
		{"dns rebinding", "attacker.example:9997", nil, true},
		{"rebinding, same-origin fetch", "attacker.example:9997", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"lan address", "192.168.1.2:9997", nil, true},
		{"cross-site", "127.0.0.1:9997", map[string]string{"Sec-Fetch-Site": "cross-site"}, true},
		{"same-site", "127.0.0.1:9997", map[string]string{"Sec-Fetch-Site": "same-site"}, true},
		{"foreign origin", "127.0.0.1:9997", map[string]string{"Origin": "http://attacker.example"}, true},
		{"opaque origin", "127.0.0.1:9997", map[string]string{"Origin": "null"}, true},
	} {
		r := httptest.NewRequest("GET", "/api/v1/streams", nil)
		r.Host = tc.host
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		if got := foreign(r); got != tc.want {
			t.Errorf("%s: foreign = %v, want %v", tc.name, got, tc.want)
		}
	}
}
