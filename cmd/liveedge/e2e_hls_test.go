package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hlsBaseConfig is baseConfig with the HTTP listener on.
const hlsBaseConfig = `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: "127.0.0.1:0"}
admin: {listen: ""}
`

func httpGet(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 15 * time.Second}
	res, err := c.Get(u)
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

var m3u8URIRe = regexp.MustCompile(`URI="([^"]*)"`)

// m3u8URIs returns the URIs a player may load from a playlist: URI lines
// (but those of gap segments, which are never loaded) and URI attributes.
func m3u8URIs(body string) []string {
	var out []string
	gap := false
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case line == "#EXT-X-GAP":
			gap = true
		case strings.HasPrefix(line, "#"):
			for _, m := range m3u8URIRe.FindAllStringSubmatch(line, -1) {
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

func resolveURI(t *testing.T, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	r, err := url.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return b.ResolveReference(r).String()
}

// mediaPlaylist fetches index.m3u8 and returns the URL of its (video)
// variant's media playlist.
func mediaPlaylist(t *testing.T, index string) string {
	t.Helper()
	res, body := httpGet(t, index)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", index, res.StatusCode)
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	return resolveURI(t, index, strings.TrimSpace(lines[len(lines)-1]))
}

func TestHLSPlayback(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	s := startServer(t, hlsBaseConfig+`
hls: {apps: {tv: {variant: mpegts}}}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	addr := s.httpAddr(t)
	publish(t, s.url("live/x"))
	publish(t, s.url("tv/x"))
	s.waitLog(t, `msg=publishing .*stream=live/x`, 15*time.Second)
	s.waitLog(t, `msg=publishing .*stream=tv/x`, 15*time.Second)

	for _, tc := range []struct {
		name, stream, segment string
	}{
		{"lowlatency", "live/x", "#EXT-X-PART:"},
		{"mpegts", "tv/x", ".ts"},
		{"demo", "live/demo", "#EXT-X-PRELOAD-HINT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			index := "http://" + addr + "/" + tc.stream + "/index.m3u8"
			r, err := probe(t, index, 120)
			if err != nil {
				t.Fatal(err)
			}
			checkPlayback(t, r, 40)
			media := mediaPlaylist(t, index)
			res, body := httpGet(t, media)
			if res.StatusCode != http.StatusOK || !strings.Contains(body, tc.segment) {
				t.Fatalf("media playlist %s = %d, want it to contain %q:\n%s", media, res.StatusCode, tc.segment, body)
			}
			// The alias serves the same stream.
			if res, _ := httpGet(t, "http://"+addr+"/"+tc.stream+"/hls.m3u8"); res.StatusCode != http.StatusOK {
				t.Fatalf("hls.m3u8 = %d", res.StatusCode)
			}
		})
	}
}

func TestHLSTokenProtected(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	cfg := hlsBaseConfig + `
auth:
  secrets: {sec: "s3cret-for-tests"}
  apps: {sec: {play: true}}
`
	s := startServer(t, cfg)
	addr := s.httpAddr(t)
	good := signToken(t, writeFile(t, cfg), "sec/x", "1h")
	publish(t, s.url("sec/x"))
	s.waitLog(t, `msg=publishing .*stream=sec/x`, 15*time.Second)
	index := "http://" + addr + "/sec/x/index.m3u8"

	if res, _ := httpGet(t, index); res.StatusCode != http.StatusForbidden && res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("playlist without token = %d, want 401 or 403", res.StatusCode)
	}
	res, body := httpGet(t, index+"?"+good)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("playlist with token = %d", res.StatusCode)
	}
	want, _ := url.ParseQuery(good)
	carries := func(u string) bool {
		pu, err := url.Parse(u)
		if err != nil {
			return false
		}
		q := pu.Query()
		return q.Get("expires") == want.Get("expires") && q.Get("token") == want.Get("token")
	}
	for _, u := range m3u8URIs(body) {
		if !carries(u) {
			t.Errorf("multivariant URI %q lacks the token", u)
		}
	}
	media := mediaPlaylist(t, index+"?"+good)
	res, body = httpGet(t, media)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("media playlist with token = %d", res.StatusCode)
	}
	var segment string
	for _, u := range m3u8URIs(body) {
		if !carries(u) {
			t.Errorf("media URI %q lacks the token", u)
		}
		if strings.Contains(u, "_seg") {
			segment = resolveURI(t, media, u)
		}
	}
	if segment == "" {
		t.Fatalf("no segment in:\n%s", body)
	}
	if res, b := httpGet(t, segment); res.StatusCode != http.StatusOK || len(b) == 0 {
		t.Fatalf("segment with token = %d (%d bytes)", res.StatusCode, len(b))
	}
	bare, _ := url.Parse(segment)
	bare.RawQuery = ""
	if res, _ := httpGet(t, bare.String()); res.StatusCode != http.StatusForbidden {
		t.Fatalf("segment without token = %d, want 403", res.StatusCode)
	}

	// A real player follows the tokenised URIs.
	r, err := probe(t, index+"?"+good, 60)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 20)
	for _, l := range s.logLines() {
		if strings.Contains(l, want.Get("token")) || strings.Contains(l, "s3cret") {
			t.Fatalf("a log line carries the token or secret: %s", l)
		}
	}
}

// TestHLSBlockingReload asks for the part after the live edge and measures
// how long the server holds the request.
func TestHLSBlockingReload(t *testing.T) {
	requireTools(t)
	s := startServer(t, hlsBaseConfig+`
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	media := mediaPlaylist(t, "http://"+s.httpAddr(t)+"/live/demo/index.m3u8")
	var holds []time.Duration
	for i := 0; i < 5; i++ {
		_, body := httpGet(t, media)
		msn, part := nextPartOf(t, body)
		start := time.Now()
		res, body := httpGet(t, media+"?_HLS_msn="+strconv.Itoa(msn)+"&_HLS_part="+strconv.Itoa(part))
		held := time.Since(start)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("blocking reload = %d", res.StatusCode)
		}
		if held > time.Second {
			t.Errorf("blocking reload for msn=%d part=%d held %v, want < 1s", msn, part, held)
		}
		if got, _ := nextPartOf(t, body); got < msn {
			t.Errorf("reload for msn %d returned a playlist ending before it", msn)
		}
		holds = append(holds, held)
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i] < holds[j] })
	t.Logf("blocking reload hold time: min %v, median %v, max %v", holds[0], holds[len(holds)/2], holds[len(holds)-1])

	_, body := httpGet(t, media)
	msn, _ := nextPartOf(t, body)
	if res, _ := httpGet(t, media+"?_HLS_msn="+strconv.Itoa(msn+10)); res.StatusCode != http.StatusBadRequest {
		t.Errorf("far-future _HLS_msn = %d, want 400", res.StatusCode)
	}
}

// nextPartOf returns the media sequence number and part index of the part
// after the last one listed in an LL-HLS media playlist.
func nextPartOf(t *testing.T, body string) (msn, part int) {
	t.Helper()
	seq, segs, parts := -1, 0, 0
	for _, line := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:")))
			if err != nil {
				t.Fatal(err)
			}
			seq = n
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
