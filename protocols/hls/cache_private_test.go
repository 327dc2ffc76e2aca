package hls

import (
	"net/http"
	"strings"
	"testing"
)

// TestSegmentCachePrivateWithAuthorization: a segment asked for with an
// Authorization header (a Bearer token, nothing in its URL) is not
// cacheable by shared caches, whole or ranged; without one it stays public.
func TestSegmentCachePrivateWithAuthorization(t *testing.T) {
	_, ts := testServer(t, Params{})
	_, segment := mediaAndSegment(t, ts.URL)
	for _, tc := range []struct {
		name string
		hdr  []string
		want string
	}{
		{"anonymous", nil, "public"},
		{"bearer", []string{"Authorization", "Bearer 00"}, "private"},
		{"bearer, ranged", []string{"Authorization", "Bearer 00", "Range", "bytes=0-99"}, "private"},
	} {
		res, _ := get(t, http.MethodGet, segment, tc.hdr...)
		cc := res.Header.Get("Cache-Control")
		if res.StatusCode/100 != 2 || !strings.HasPrefix(cc, tc.want+",") {
			t.Errorf("%s: %d, Cache-Control %q, want %s", tc.name, res.StatusCode, cc, tc.want)
		}
	}
}
