package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rtspAddr waits for the RTSP listener's address.
func (s *server) rtspAddr(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		a := s.rtsp
		s.mu.Unlock()
		if a != "" {
			return a
		}
	}
	t.Fatal("liveedge did not log an RTSP listener")
	return ""
}

// freeUDPPair returns an even UDP port on 127.0.0.1 whose successor is
// free too (for RTP and RTCP). Another process could take them before the
// server does; on loopback in a test that is unlikely.
func freeUDPPair(t *testing.T) int {
	t.Helper()
	for range 100 {
		c1, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := c1.LocalAddr().(*net.UDPAddr).Port
		if p%2 != 0 || p >= 65535 || p == 8188 {
			c1.Close()
			continue
		}
		c2, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+1))
		c1.Close()
		if err != nil {
			continue
		}
		c2.Close()
		return p
	}
	t.Fatal("no free UDP port pair")
	return 0
}

// rtspProbe plays url with ffprobe over transport ("tcp" or "udp") and
// returns its streams and the first n packets it read.
func rtspProbe(t *testing.T, u, transport string, n int) (probeResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-hide_banner", "-v", "error",
		"-rtsp_transport", transport, "-timeout", "15000000",
		"-show_streams", "-show_packets", "-read_intervals", "%+#"+strconv.Itoa(n),
		"-of", "json", u).Output()
	var r probeResult
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return r, fmt.Errorf("ffprobe %s: %v: %s", u, err, msg)
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("ffprobe output: %v", err)
	}
	return r, nil
}

func TestRTSPPlayback(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	cfg := fmt.Sprintf(`
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: "127.0.0.1:0", udp_rtp_port: %d}
http: {listen: ""}
admin: {listen: ""}
auth:
  secrets: {sec: "s3cret-for-tests"}
  apps: {sec: {play: true}}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
  - {match: "sec/demo", mode: static, origins: [demo]}
`, freeUDPPair(t))
	s := startServer(t, cfg)
	addr := s.rtspAddr(t)
	s.waitLog(t, `msg=listening proto=rtsp addr=\S+ udp_rtp=127\.0\.0\.1:\d+`, 5*time.Second)
	publish(t, s.url("live/x"))
	s.waitLog(t, `msg=publishing .*stream=live/x`, 15*time.Second)
	good := signToken(t, writeFile(t, cfg), "sec/demo", "1h")
	q, err := url.ParseQuery(good)
	if err != nil {
		t.Fatal(err)
	}
	exp, tok := q.Get("expires"), q.Get("token")
	base := "rtsp://" + addr + "/"

	for _, tc := range []struct{ name, url, transport string }{
		{"publisher tcp", base + "live/x", "tcp"},
		{"publisher udp", base + "live/x", "udp"},
		{"demo tcp", base + "live/demo", "tcp"},
		{"demo udp", base + "live/demo", "udp"},
		{"token query", base + "sec/demo?" + good, "tcp"},
		{"token basic credentials", "rtsp://" + exp + ":" + tok + "@" + addr + "/sec/demo", "udp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := rtspProbe(t, tc.url, tc.transport, 100)
			if err != nil {
				t.Fatal(err)
			}
			checkPlayback(t, r, 30)
		})
	}
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct{ url, status string }{
			{base + "sec/demo", "401"},
			{base + "sec/demo?expires=" + exp + "&token=" + strings.Repeat("0", 64), "403"},
			{"rtsp://" + exp + ":" + strings.Repeat("1", 64) + "@" + addr + "/sec/demo", "403"},
		} {
			if _, err := rtspProbe(t, c.url, "tcp", 10); err == nil {
				t.Fatalf("ffprobe %s: played without a valid token", c.url)
			}
			s.waitLog(t, `msg="rtsp refused" .*status=`+c.status+` stream=sec/demo`, 5*time.Second)
		}
	})
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		if _, err := rtspProbe(t, base+"live/nothing", "tcp", 10); err == nil {
			t.Fatal("played a stream that does not exist")
		}
		s.waitLog(t, `msg="rtsp refused" .*status=404 stream=live/nothing`, 10*time.Second)
		t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
	})
}
