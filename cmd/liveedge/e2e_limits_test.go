package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
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

// adminStream is a stream in /api/v1/streams, as the limit and bytes-out
// tests read it.
type adminStream struct {
	Name       string            `json:"name"`
	Viewers    map[string]int    `json:"viewers"`
	BytesIn    uint64            `json:"bytes_in"`
	BitrateIn  int64             `json:"bitrate_in"`
	BytesOut   map[string]uint64 `json:"bytes_out"`
	BitrateOut map[string]int64  `json:"bitrate_out"`
}

// openAdmin returns the base URL of a server's admin listener (loopback,
// no secret).
func openAdmin(t *testing.T, s *server) string {
	t.Helper()
	line := s.waitLog(t, `msg=listening proto=admin addr=`, 10*time.Second)
	return "http://" + adminListenRe.FindStringSubmatch(line)[1]
}

func getStream(t *testing.T, admin, name string) adminStream {
	t.Helper()
	res, err := http.Get(admin + "/api/v1/streams/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st adminStream
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/streams/%s: %d %v", name, res.StatusCode, err)
	}
	return st
}

// scrapeMetric returns the value of one series of /metrics, or -1.
func scrapeMetric(t *testing.T, admin, series string) float64 {
	t.Helper()
	res, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// flvFrom starts an HTTP-FLV viewer of u from local address ip and
// returns the response (status 200: playing) for the caller to close.
func flvFrom(t *testing.T, ip, u string) *http.Response {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	res, err := c.Get(u)
	if err != nil {
		t.Fatalf("FLV viewer from %s: %v", ip, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// TestBitratePerIPLimit: limits.max_bitrate_per_ip, put in effect by a
// reload, set between one and two times the demo's measured bitrate:
// one viewer from 127.0.0.1 plays, a second one from the same IP is
// refused (HTTP-FLV 503, RTMP fails), a viewer from 127.0.0.2 still
// plays, and the refusals are counted by reason.
func TestBitratePerIPLimit(t *testing.T) {
	requireTools(t, "ffprobe")
	const conf = `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`
	s := startServer(t, conf)
	admin := openAdmin(t, s)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	// The demo's bitrate in, over the hub's window of a few seconds.
	var samples []int64
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if b := getStream(t, admin, "live/demo").BitrateIn; b > 0 {
			samples = append(samples, b)
		}
	}
	if len(samples) < 5 {
		t.Fatalf("demo bitrate samples %v", samples)
	}
	rate := slices.Max(samples[len(samples)/2:])
	t.Logf("demo bitrate in: %d bit/s (samples %v)", rate, samples)
	if rate < 200_000 || rate > 5_000_000 {
		t.Fatalf("demo bitrate %d bit/s, want about 1 Mbit/s", rate)
	}
	limit := rate * 3 / 2
	if err := os.WriteFile(s.conf, []byte(conf+"limits: {max_bitrate_per_ip: "+strconv.FormatInt(limit, 10)+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(admin+"/api/v1/reload", "", nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("reload: %v %v", err, res)
	}
	res.Body.Close()

	flv := "http://" + s.httpAddr(t) + "/live/demo.flv"
	first := flvFrom(t, "127.0.0.1", flv)
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first viewer from 127.0.0.1: %d", first.StatusCode)
	}
	if _, err := io.ReadFull(first.Body, make([]byte, 4096)); err != nil {
		t.Fatalf("first viewer reads: %v", err)
	}
	if second := flvFrom(t, "127.0.0.1", flv); second.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second FLV viewer from 127.0.0.1: %d, want 503", second.StatusCode)
	}
	if _, err := probe(t, s.url("live/demo"), 10); err == nil {
		t.Fatal("an RTMP viewer from 127.0.0.1 past the bitrate cap played")
	}
	other := flvFrom(t, "127.0.0.2", flv)
	if other.StatusCode != http.StatusOK {
		t.Fatalf("viewer from 127.0.0.2: %d, want 200", other.StatusCode)
	}
	if _, err := io.ReadFull(other.Body, make([]byte, 4096)); err != nil {
		t.Fatalf("viewer from 127.0.0.2 reads: %v", err)
	}
	if n := scrapeMetric(t, admin, `liveedge_auth_refusals_total{reason="bitrate_per_ip"}`); n != 2 {
		t.Fatalf("bitrate_per_ip refusals %v, want 2", n)
	}
	s.waitLog(t, `viewer refused: limit reached.*max_bitrate_per_ip=`+strconv.FormatInt(limit, 10)+` ip=127.0.0.1`, time.Second)
}
