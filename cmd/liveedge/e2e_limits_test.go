package main

import (
	"net"
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

// TestConnectionRateLimit: with limits.connections_per_ip, new
// connections past the burst are closed at accept, on HTTP and RTMP.
func TestConnectionRateLimit(t *testing.T) {
	s := startServer(t, hlsBaseConfig+`
limits: {connections_per_ip: 0.2, connection_burst: 2}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	base := "http://" + s.httpAddr(t)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ok := 0
	for i := 0; i < 5; i++ {
		res, err := c.Get(base + "/status.json")
		if err == nil {
			res.Body.Close()
			ok++
		}
	}
	if ok != 2 {
		t.Fatalf("%d of 5 new HTTP connections served, want the burst of 2", ok)
	}
	s.waitLog(t, `msg="connections refused: rate per IP exceeded" proto=http ip=127.0.0.1`, 5*time.Second)
	// RTMP has its own buckets: two connections, then refused.
	for i := 0; i < 2; i++ {
		conn, err := net.Dial("tcp", s.rtmp)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	conn, err := net.Dial("tcp", s.rtmp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("third RTMP connection not closed by the server: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
