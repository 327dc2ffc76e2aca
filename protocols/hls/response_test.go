package hls

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"gzip, deflate, br"}, true},
		{[]string{"deflate", "GZIP;q=0.5"}, true},
		{[]string{"br;q=1.0, gzip;q=0"}, false},
		{[]string{"gzip; q=0.000"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"*, gzip;q=0"}, false},
		{[]string{"identity"}, false},
		{[]string{"x-gzip"}, true},
	} {
		if got := acceptsGzip(tc.in); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFixPartHoldBack(t *testing.T) {
	in := "#EXTM3U\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.50000,CAN-SKIP-UNTIL=6.00000\n" +
		"#EXT-X-PART-INF:PART-TARGET=0.20000\n#EXT-X-MEDIA-SEQUENCE:1\n"
	want := strings.Replace(in, "PART-HOLD-BACK=0.50000", "PART-HOLD-BACK=0.60000", 1)
	if got := string(fixPartHoldBack([]byte(in))); got != want {
		t.Errorf("fixPartHoldBack:\n%s\nwant\n%s", got, want)
	}
	for _, ok := range []string{
		strings.Replace(in, "0.50000", "0.90000", 1),          // already enough
		"#EXTM3U\n#EXT-X-TARGETDURATION:2\n",                  // not LL-HLS
		"#EXTM3U\n#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=0.5\n", // no PART-INF: left alone
	} {
		if got := string(fixPartHoldBack([]byte(ok))); got != ok {
			t.Errorf("fixPartHoldBack changed\n%s\ninto\n%s", ok, got)
		}
	}
}

func TestGzipCacheReuse(t *testing.T) {
	var c gzipCache
	a := bytes.Repeat([]byte("#EXT-X-PART:DURATION=0.2\n"), 40)
	z1 := c.compress(a)
	z2 := c.compress(bytes.Clone(a))
	if &z1[0] != &z2[0] {
		t.Error("the same playlist was compressed twice")
	}
	b := append(bytes.Clone(a), "#EXT-X-PRELOAD-HINT\n"...)
	z3 := c.compress(b)
	for _, tc := range []struct {
		z    []byte
		want []byte
	}{{z1, a}, {z3, b}} {
		r, err := gzip.NewReader(bytes.NewReader(tc.z))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Fatalf("gunzip = %q, %v", got, err)
		}
	}
}

// mediaAndSegment returns the LL-HLS media playlist URL of live/demo and
// the URL of a complete segment in it.
func mediaAndSegment(t *testing.T, base string) (media, segment string) {
	t.Helper()
	index := base + "/live/demo/index.m3u8"
	res, body := get(t, http.MethodGet, index)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET index = %d", res.StatusCode)
	}
	uris := playlistURIs(body)
	media = resolve(t, index, uris[len(uris)-1])
	res, body = get(t, http.MethodGet, media, "Accept-Encoding", "identity")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET media = %d", res.StatusCode)
	}
	for _, u := range playlistURIs(body) {
		if strings.Contains(u, "_seg") {
			segment = resolve(t, media, u)
		}
	}
	if segment == "" {
		t.Fatalf("no segment in:\n%s", body)
	}
	return media, segment
}

func TestGzipPlaylists(t *testing.T) {
	_, ts := testServer(t, Params{})
	media, segment := mediaAndSegment(t, ts.URL)

	res, plain := get(t, http.MethodGet, media, "Accept-Encoding", "identity")
	if res.Header.Get("Content-Encoding") != "" || !strings.HasPrefix(plain, "#EXTM3U") {
		t.Fatalf("identity playlist: Content-Encoding %q, body %.20q", res.Header.Get("Content-Encoding"), plain)
	}
	if !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("playlist Vary = %q", res.Header.Get("Vary"))
	}
	res, zipped := get(t, http.MethodGet, media, "Accept-Encoding", "gzip, deflate")
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("playlist with Accept-Encoding gzip: Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	if res.ContentLength != int64(len(zipped)) {
		t.Errorf("Content-Length %d, body %d bytes", res.ContentLength, len(zipped))
	}
	zr, err := gzip.NewReader(strings.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	un, err := io.ReadAll(zr)
	if err != nil || !strings.HasPrefix(string(un), "#EXTM3U") || !strings.Contains(string(un), "#EXT-X-PART:") {
		t.Fatalf("gunzipped playlist (%v):\n%s", err, un)
	}
	if len(zipped) >= len(un) {
		t.Errorf("gzip did not shrink the playlist: %d >= %d", len(zipped), len(un))
	}
	// HEAD gives the same length as GET.
	res, _ = get(t, http.MethodHead, media, "Accept-Encoding", "gzip")
	if res.Header.Get("Content-Encoding") != "gzip" || res.ContentLength <= 0 {
		t.Errorf("HEAD gzip: Content-Encoding %q, Content-Length %d", res.Header.Get("Content-Encoding"), res.ContentLength)
	}
	// A refused gzip is not sent.
	if res, _ := get(t, http.MethodGet, media, "Accept-Encoding", "gzip;q=0"); res.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 answered with Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	// Segments are never compressed.
	res, _ = get(t, http.MethodGet, segment, "Accept-Encoding", "gzip")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "" {
		t.Errorf("segment with Accept-Encoding gzip = %d, Content-Encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
}

func TestSegmentRange(t *testing.T) {
	_, ts := testServer(t, Params{})
	_, segment := mediaAndSegment(t, ts.URL)
	res, full := get(t, http.MethodGet, segment)
	if res.StatusCode != http.StatusOK || len(full) < 1000 {
		t.Fatalf("GET segment = %d, %d bytes", res.StatusCode, len(full))
	}
	if res.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("Accept-Ranges = %q", res.Header.Get("Accept-Ranges"))
	}
	n := len(full)
	for _, tc := range []struct {
		rng      string
		from, to int // expected bytes [from, to)
	}{
		{"bytes=0-99", 0, 100},
		{"bytes=100-", 100, n},
		{"bytes=-50", n - 50, n},
		{"bytes=10-" + strconv.Itoa(n+100), 10, n},
	} {
		res, b := get(t, http.MethodGet, segment, "Range", tc.rng)
		if res.StatusCode != http.StatusPartialContent || b != full[tc.from:tc.to] {
			t.Errorf("Range %s = %d, %d bytes, want 206 and bytes %d-%d", tc.rng, res.StatusCode, len(b), tc.from, tc.to-1)
			continue
		}
		want := "bytes " + strconv.Itoa(tc.from) + "-" + strconv.Itoa(tc.to-1) + "/" + strconv.Itoa(n)
		if cr := res.Header.Get("Content-Range"); cr != want {
			t.Errorf("Range %s: Content-Range %q, want %q", tc.rng, cr, want)
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("Range %s: Cache-Control %q", tc.rng, cc)
		}
	}
	if res, _ := get(t, http.MethodGet, segment, "Range", "bytes="+strconv.Itoa(n+10)+"-"); res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range = %d, want 416", res.StatusCode)
	}
	res, b := get(t, http.MethodGet, segment, "Range", "bytes=0-9,20-29")
	if res.StatusCode != http.StatusPartialContent || !strings.HasPrefix(res.Header.Get("Content-Type"), "multipart/byteranges") || !strings.Contains(b, full[20:30]) {
		t.Errorf("multi-range = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	res, b = get(t, http.MethodHead, segment, "Range", "bytes=0-99")
	if res.StatusCode != http.StatusPartialContent || b != "" || res.ContentLength != 100 {
		t.Errorf("HEAD with Range = %d, %d body bytes, Content-Length %d", res.StatusCode, len(b), res.ContentLength)
	}
	// An unknown segment is still 404 with a Range header.
	if res, _ := get(t, http.MethodGet, ts.URL+"/live/demo/0a1b2c3d4e5f_video1_seg1.mp4", "Range", "bytes=0-9"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown segment with Range = %d, want 404", res.StatusCode)
	}
}
