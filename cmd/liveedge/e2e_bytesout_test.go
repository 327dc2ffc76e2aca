package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBytesOutPerProtocol: liveedge_bytes_out_total{stream,protocol}
// counts what the viewers were sent. An HTTP-FLV viewer reads for a
// while: the counter is at least what it read and not much more (what
// was in flight when it left). An HLS client fetches playlists and
// segments: the counter is exactly the body bytes it got. An RTMP viewer
// and an RTSP viewer (ffprobe) move their own counters. /api/v1/streams shows the bytes and a
// bitrate out near the stream's bitrate in.
func TestBytesOutPerProtocol(t *testing.T) {
	requireTools(t, "ffprobe")
	s := startServer(t, `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	admin := openAdmin(t, s)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	series := func(proto string) string {
		return `liveedge_bytes_out_total{protocol="` + proto + `",stream="live/demo"}`
	}

	// HTTP-FLV: read for 3 s.
	base := "http://" + s.httpAddr(t)
	res := flvFrom(t, "127.0.0.1", base+"/live/demo.flv")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("FLV viewer: %d", res.StatusCode)
	}
	var read int64
	buf := make([]byte, 32<<10)
	for start := time.Now(); time.Since(start) < 3*time.Second; {
		n, err := res.Body.Read(buf)
		read += int64(n)
		if err != nil {
			t.Fatalf("FLV viewer read %d bytes, then %v", read, err)
		}
	}
	st := getStream(t, admin, "live/demo")
	t.Logf("while the FLV viewer watched: bitrate in %d bit/s, out %v bit/s, bytes out %v", st.BitrateIn,
		st.BitrateOut, st.BytesOut)
	if r := st.BitrateOut["flv"]; r < st.BitrateIn/2 || r > st.BitrateIn*3 {
		t.Errorf("FLV bitrate out %d bit/s, bitrate in %d: not plausible for one viewer", r, st.BitrateIn)
	}
	res.Body.Close()
	// The server may have written a little more than the viewer read
	// before it noticed the close; it settles once the viewer is gone.
	s.waitLog(t, `msg="player left".*via=flv`, 5*time.Second)
	flv := scrapeMetric(t, admin, series("flv"))
	t.Logf("FLV: client read %d bytes, server counted %.0f", read, flv)
	if flv < float64(read) || flv > float64(read)+512<<10 {
		t.Errorf("FLV bytes out %.0f, client read %d", flv, read)
	}

	// HLS: a playlist and every segment and part it names, without gzip so
	// that the body bytes are the bytes on the wire.
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	defer c.CloseIdleConnections()
	var got int64
	fetch := func(u string) string {
		t.Helper()
		res, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", u, res.StatusCode, err)
		}
		got += int64(len(b))
		return string(b)
	}
	index := base + "/live/demo/index.m3u8"
	body := fetch(index)
	lines := strings.Split(strings.TrimSpace(body), "\n")
	media := resolveURI(t, index, strings.TrimSpace(lines[len(lines)-1]))
	body = fetch(media)
	uris := m3u8URIs(body)
	if len(uris) == 0 {
		t.Fatalf("media playlist names nothing:\n%s", body)
	}
	for _, u := range uris {
		fetch(resolveURI(t, media, u))
	}
	hls := scrapeMetric(t, admin, series("hls"))
	t.Logf("HLS: %d responses, client read %d bytes, server counted %.0f", 2+len(uris), got, hls)
	if hls != float64(got) {
		t.Errorf("HLS bytes out %.0f, want the %d body bytes the client got", hls, got)
	}

	// RTMP and RTSP (RTP packets).
	if _, err := probe(t, s.url("live/demo"), 50); err != nil {
		t.Fatal(err)
	}
	if _, err := rtspProbe(t, "rtsp://"+s.rtspAddr(t)+"/live/demo", "tcp", 50); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"rtmp", "rtsp"} {
		if n := scrapeMetric(t, admin, series(proto)); n < 10_000 {
			t.Errorf("%s bytes out %.0f after a viewer read 50 packets", proto, n)
		}
	}
	st = getStream(t, admin, "live/demo")
	if st.BytesOut["flv"] != uint64(flv) || st.BytesOut["hls"] != uint64(hls) {
		t.Errorf("/api/v1/streams bytes out %v, metrics flv %.0f hls %.0f", st.BytesOut, flv, hls)
	}
}
