package hls

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/demo"
)

const testSecret = "s3cret"

// testServer runs a hub with the demo clip on live/demo and sec/demo (the
// "sec" app requires play tokens) and an HLS server in front of it.
func testServer(t *testing.T, p Params) (*Server, *httptest.Server) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	h := hub.New(hub.Params{Logger: log, StartTimeout: 300 * time.Millisecond,
		Authorizer: &auth.Policy{Apps: map[string]auth.AppPolicy{
			"sec": {Secret: []byte(testSecret), Play: true},
		}}})
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"live/demo", "sec/demo"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			demo.Run(ctx, h, name, clip, log) //nolint:errcheck
		}()
	}
	p.Hub, p.Logger = h, log
	if p.AllowOrigin == "" {
		p.AllowOrigin = "*"
	}
	s := New(p)
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		ts.Close()
		http.DefaultClient.CloseIdleConnections()
		cancel()
		wg.Wait()
		h.Close()
	})
	return s, ts
}

func get(t *testing.T, method, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

var uriAttrRe = regexp.MustCompile(`URI="([^"]*)"`)

// playlistURIs returns every URI in a playlist that a player may load: the
// URI lines (but those of gaps) and the URI attributes of tags.
func playlistURIs(body string) []string {
	var out []string
	gap := false
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case line == "#EXT-X-GAP":
			gap = true // a gap is never loaded: its URI is a placeholder
		case strings.HasPrefix(line, "#"):
			for _, m := range uriAttrRe.FindAllStringSubmatch(line, -1) {
				out = append(out, m[1])
			}
		case gap:
			gap = false
		default:
			out = append(out, line)
		}
	}
	return out
}

// resolve turns a playlist URI into an absolute URL next to the playlist.
func resolve(t *testing.T, playlist, uri string) string {
	t.Helper()
	base, err := url.Parse(playlist)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	return base.ResolveReference(ref).String()
}

func TestServeLowLatency(t *testing.T) {
	_, ts := testServer(t, Params{})
	index := ts.URL + "/live/demo/index.m3u8"
	start := time.Now()
	res, body := get(t, http.MethodGet, index+"?foo=bar")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET index = %d %q", res.StatusCode, body)
	}
	t.Logf("first playlist after %v", time.Since(start))
	if ct := res.Header.Get("Content-Type"); ct != "application/vnd.apple.mpegurl" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("playlist Cache-Control = %q", cc)
	}
	if o := res.Header.Get("Access-Control-Allow-Origin"); o != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q", o)
	}
	uris := playlistURIs(body)
	if len(uris) == 0 || !strings.Contains(body, "#EXT-X-STREAM-INF") {
		t.Fatalf("multivariant playlist:\n%s", body)
	}
	for _, u := range uris {
		if strings.Contains(u, "foo=") {
			t.Errorf("URI %q carries a parameter that is not an auth parameter", u)
		}
	}

	// The alias serves the same stream.
	if res, body := get(t, http.MethodGet, ts.URL+"/live/demo/hls.m3u8"); res.StatusCode != http.StatusOK ||
		!strings.Contains(body, "#EXT-X-STREAM-INF") {
		t.Fatalf("GET hls.m3u8 = %d %q", res.StatusCode, body)
	}

	media := resolve(t, index, uris[len(uris)-1])
	res, body = get(t, http.MethodGet, media)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", media, res.StatusCode)
	}
	for _, want := range []string{"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES", "#EXT-X-PART:", "#EXT-X-PRELOAD-HINT", "#EXT-X-MAP"} {
		if !strings.Contains(body, want) {
			t.Errorf("media playlist lacks %s:\n%s", want, body)
		}
	}
	var part, init string
	for _, u := range playlistURIs(body) {
		if strings.Contains(u, "_part") && part == "" {
			part = u
		}
		if strings.Contains(u, "_init.mp4") {
			init = u
		}
	}
	if part == "" || init == "" {
		t.Fatalf("no part or init file in:\n%s", body)
	}
	for _, u := range []string{part, init} {
		res, b := get(t, http.MethodGet, resolve(t, media, u))
		if res.StatusCode != http.StatusOK || len(b) == 0 {
			t.Fatalf("GET %s = %d (%d bytes)", u, res.StatusCode, len(b))
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=") {
			t.Errorf("segment Cache-Control = %q", cc)
		}
		if ct := res.Header.Get("Content-Type"); ct != "video/mp4" {
			t.Errorf("segment Content-Type = %q", ct)
		}
	}

	// HEAD: headers and length, no body.
	res, b := get(t, http.MethodHead, index)
	if res.StatusCode != http.StatusOK || b != "" || res.ContentLength <= 0 {
		t.Errorf("HEAD index = %d, %d bytes, Content-Length %d", res.StatusCode, len(b), res.ContentLength)
	}

	// OPTIONS preflight.
	res, _ = get(t, http.MethodOptions, index, "Origin", "https://player.example", "Access-Control-Request-Method", "GET")
	if res.StatusCode != http.StatusNoContent ||
		res.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "GET") ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("OPTIONS = %d %v", res.StatusCode, res.Header)
	}

	// Other methods.
	if res, _ := get(t, http.MethodPost, index); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", res.StatusCode)
	}

	// Unknown files of a known stream, and files of a muxer-less stream.
	for _, p := range []string{
		"/live/demo/0a1b2c3d4e5f_video1_seg1.mp4",
		"/live/demo/zzz_stream.m3u8",
		"/live/other/0a1b2c3d4e5f_video1_seg1.mp4",
		"/live/demo/../../etc/passwd",
		"/live/demo/passwd",
	} {
		if res, _ := get(t, http.MethodGet, ts.URL+p); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, res.StatusCode)
		}
	}
}

func TestUnknownStream(t *testing.T) {
	_, ts := testServer(t, Params{StartTimeout: 300 * time.Millisecond})
	start := time.Now()
	res, _ := get(t, http.MethodGet, ts.URL+"/live/nothing/index.m3u8")
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown stream = %d, want 404", res.StatusCode)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("refusal took %v", d)
	}
}

func TestTokenProtection(t *testing.T) {
	_, ts := testServer(t, Params{})
	index := ts.URL + "/sec/demo/index.m3u8"
	signer := auth.Signer{Secret: []byte(testSecret)}
	good := signer.Query("sec/demo", time.Hour, time.Now(), netip.Addr{})
	expired := signer.Query("sec/demo", -time.Hour, time.Now(), netip.Addr{})
	other := signer.Query("sec/other", time.Hour, time.Now(), netip.Addr{})

	for name, q := range map[string]string{
		"none":         "",
		"expired":      expired.Encode(),
		"other stream": other.Encode(),
		"bad token":    "expires=" + good.Get("expires") + "&token=" + strings.Repeat("0", 64),
	} {
		res, body := get(t, http.MethodGet, index+"?"+q)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: GET index = %d, want 403", name, res.StatusCode)
		}
		if strings.Contains(strings.ToLower(body), "expired") || strings.Contains(body, "signature") {
			t.Errorf("%s: refusal says why: %q", name, body)
		}
		if res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: refusal lacks CORS header", name)
		}
	}

	res, body := get(t, http.MethodGet, index+"?"+good.Encode()+"&foo=bar")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET index with token = %d", res.StatusCode)
	}
	media := checkTokenURIs(t, index, body, good)
	res, body = get(t, http.MethodGet, media[0])
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET media playlist with token = %d", res.StatusCode)
	}
	files := checkTokenURIs(t, media[0], body, good)

	// Bearer header instead of the token parameter.
	res, _ = get(t, http.MethodGet, index+"?expires="+good.Get("expires"), "Authorization", "Bearer "+good.Get("token"))
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET index with bearer = %d", res.StatusCode)
	}

	// Every file needs the token too.
	for _, f := range files {
		if !strings.Contains(f, "_part") && !strings.Contains(f, "_init") {
			continue
		}
		if res, _ := get(t, http.MethodGet, f); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", f, res.StatusCode)
		}
		bare, _ := url.Parse(f)
		bare.RawQuery = ""
		if res, _ := get(t, http.MethodGet, bare.String()); res.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s without token = %d, want 403", bare, res.StatusCode)
		}
	}
	bare, _ := url.Parse(media[0])
	bare.RawQuery = ""
	if res, _ := get(t, http.MethodGet, bare.String()); res.StatusCode != http.StatusForbidden {
		t.Errorf("media playlist without token = %d, want 403", res.StatusCode)
	}
}

// checkTokenURIs asserts that every URI in a playlist carries exactly the
// auth parameters of q, and returns them resolved.
func checkTokenURIs(t *testing.T, playlist, body string, q url.Values) []string {
	t.Helper()
	uris := playlistURIs(body)
	if len(uris) == 0 {
		t.Fatalf("no URIs in:\n%s", body)
	}
	var out []string
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		got := pu.Query()
		if got.Get("expires") != q.Get("expires") || got.Get("token") != q.Get("token") || len(got) != 2 {
			t.Errorf("URI %q does not carry exactly the request's expires and token", u)
		}
		out = append(out, resolve(t, playlist, u))
	}
	return out
}

func TestBlockingReload(t *testing.T) {
	_, ts := testServer(t, Params{})
	index := ts.URL + "/live/demo/index.m3u8"
	_, body := get(t, http.MethodGet, index)
	uris := playlistURIs(body)
	media := resolve(t, index, uris[len(uris)-1])
	_, body = get(t, http.MethodGet, media)

	msn, part := nextPart(t, body)
	start := time.Now()
	res, body2 := get(t, http.MethodGet, media+"?_HLS_msn="+itoa(msn)+"&_HLS_part="+itoa(part))
	held := time.Since(start)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("blocking reload = %d", res.StatusCode)
	}
	if held > time.Second {
		t.Errorf("blocking reload held %v, want < 1s", held)
	}
	if strings.Contains(body2, "_HLS_") {
		t.Errorf("directives leaked into URIs:\n%s", body2)
	}
	t.Logf("blocking reload for msn=%d part=%d held %v", msn, part, held)

	if res, _ := get(t, http.MethodGet, media+"?_HLS_msn="+itoa(msn+100)); res.StatusCode != http.StatusBadRequest {
		t.Errorf("far-future msn = %d, want 400", res.StatusCode)
	}
	if res, _ := get(t, http.MethodGet, media+"?_HLS_msn=x"); res.StatusCode != http.StatusBadRequest {
		t.Errorf("bad msn = %d, want 400", res.StatusCode)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// nextPart returns the media sequence number and part index of the part
// after the last one in an LL-HLS media playlist.
func nextPart(t *testing.T, body string) (msn, part int) {
	t.Helper()
	seq, segs, parts := -1, 0, 0
	for _, line := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			seq = atoi(t, strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			parts++
		case strings.HasPrefix(line, "#EXTINF:"):
			segs++
			parts = 0
		}
	}
	if seq < 0 {
		t.Fatalf("no media sequence in:\n%s", body)
	}
	return seq + segs, parts
}

func TestIdleClose(t *testing.T) {
	s, ts := testServer(t, Params{IdleClose: 500 * time.Millisecond})
	if res, _ := get(t, http.MethodGet, ts.URL+"/live/demo/index.m3u8"); res.StatusCode != http.StatusOK {
		t.Fatalf("GET index = %d", res.StatusCode)
	}
	if n := s.Viewers("live/demo"); n != 1 {
		t.Errorf("Viewers = %d, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.streams)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle muxer not closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A new request starts a new muxer.
	if res, _ := get(t, http.MethodGet, ts.URL+"/live/demo/index.m3u8"); res.StatusCode != http.StatusOK {
		t.Fatalf("GET index after idle close = %d", res.StatusCode)
	}
}

func TestMPEGTS(t *testing.T) {
	_, ts := testServer(t, Params{Apps: map[string]Settings{"live": {Variant: MPEGTS}}})
	index := ts.URL + "/live/demo/index.m3u8"
	res, body := get(t, http.MethodGet, index)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET index = %d", res.StatusCode)
	}
	uris := playlistURIs(body)
	media := resolve(t, index, uris[0])
	res, body = get(t, http.MethodGet, media)
	if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET media = %d, Cache-Control %q", res.StatusCode, res.Header.Get("Cache-Control"))
	}
	segs := playlistURIs(body)
	if len(segs) == 0 || !strings.HasSuffix(segs[0], ".ts") {
		t.Fatalf("no .ts segment in:\n%s", body)
	}
	res, b := get(t, http.MethodGet, resolve(t, media, segs[0]))
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "video/mp2t" || len(b) == 0 || b[0] != 0x47 {
		t.Fatalf("GET segment = %d %q (%d bytes)", res.StatusCode, res.Header.Get("Content-Type"), len(b))
	}
}

// Many clients waiting for the same future part are all served, from the
// one muxer.
func TestConcurrentBlockingReload(t *testing.T) {
	s, ts := testServer(t, Params{})
	index := ts.URL + "/live/demo/index.m3u8"
	_, body := get(t, http.MethodGet, index)
	uris := playlistURIs(body)
	media := resolve(t, index, uris[len(uris)-1])
	_, body = get(t, http.MethodGet, media)
	msn, part := nextPart(t, body)
	u := media + "?_HLS_msn=" + itoa(msn) + "&_HLS_part=" + itoa(part+1)

	const n = 20
	bodies := make([]string, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(u)
			if err != nil {
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			codes[i], bodies[i] = res.StatusCode, string(b)
		}()
	}
	wg.Wait()
	for i := range n {
		if codes[i] != http.StatusOK || !strings.Contains(bodies[i], "#EXT-X-PART:") {
			t.Fatalf("client %d: status %d:\n%s", i, codes[i], bodies[i])
		}
	}
	s.mu.Lock()
	muxers := len(s.streams)
	s.mu.Unlock()
	if muxers != 1 {
		t.Errorf("%d muxers, want 1", muxers)
	}
	if s.Viewers("live/demo") != 1 {
		t.Errorf("Viewers = %d, want 1 (one client address)", s.Viewers("live/demo"))
	}
}
