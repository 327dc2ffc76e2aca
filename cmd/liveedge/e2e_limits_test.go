package main

import (
	"net/http"
	"testing"
	"time"
)

// TestViewerLimit: with limits.max_viewers_per_stream 1, a second viewer
// of the demo is refused over HTTP-FLV (503) and RTMP; once the first
// leaves, a new one plays.
func TestViewerLimit(t *testing.T) {
	requireTools(t, "ffprobe")
	s := startServer(t, hlsBaseConfig+`
limits: {max_viewers_per_stream: 1}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	flv := "http://" + s.httpAddr(t) + "/live/demo.flv"
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	c := &http.Client{Timeout: 10 * time.Second}
	first, err := c.Get(flv)
	if err != nil || first.StatusCode != http.StatusOK {
		t.Fatalf("first viewer: %v %v", err, first)
	}
	second, err := c.Get(flv)
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second viewer: %d, want 503", second.StatusCode)
	}
	if _, err := probe(t, s.url("live/demo"), 10); err == nil {
		t.Fatal("an RTMP viewer past the limit played")
	}
	first.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := c.Get(flv)
		if err == nil && res.StatusCode == http.StatusOK {
			res.Body.Close()
			break
		}
		if res != nil {
			res.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no place after the first viewer left: %v %v", err, res)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := countLines(s.logLines(), `viewer refused: limit reached`); n < 2 {
		t.Fatalf("%d refusals logged, want 2", n)
	}
}
