package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDemoStreamPlaysOverRTMP(t *testing.T) {
	requireTools(t, "ffprobe")
	s := startServer(t, baseConfig+`
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	r, err := probe(t, s.url("live/demo"), 120)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 40)
}

func TestPublishAndPlay(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	s := startServer(t, baseConfig)
	publish(t, s.url("live/test"))
	s.waitLog(t, `msg=publishing .*stream=live/test`, 15*time.Second)

	// First viewer, then a second one joining mid-stream: both start on a
	// keyframe with the stream's codecs, and receive a steady flow.
	for i := 0; i < 2; i++ {
		r, err := probe(t, s.url("live/test"), 150)
		if err != nil {
			t.Fatal(err)
		}
		checkPlayback(t, r, 50)
	}

	// A second publisher for the live stream is refused with a clear error.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-i", clipPath(t), "-c", "copy", "-f", "flv", s.url("live/test")).CombinedOutput()
	if err == nil {
		t.Fatal("second publisher was accepted")
	}
	if !bytes.Contains(out, []byte("already being published")) {
		t.Fatalf("second publisher error = %q, want it to say the stream is already being published", out)
	}
	s.waitLog(t, `publish refused.*already has a publisher`, 5*time.Second)
}

func TestPlayUnknownStreamFails(t *testing.T) {
	requireTools(t, "ffprobe")
	s := startServer(t, baseConfig+"hub: {start_timeout: 300ms}\n")
	start := time.Now()
	if _, err := probe(t, s.url("live/nothing"), 10); err == nil {
		t.Fatal("playing a stream that does not exist succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("refusal took %v", d)
	}
	s.waitLog(t, `play refused.*stream=live/nothing.*stream not found`, 5*time.Second)
}

func signToken(t *testing.T, cfgPath, stream, ttl string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"token", "sign", "--config", cfgPath, "--stream", stream, "--ttl", ttl}, &stdout, &stderr); code != 0 {
		t.Fatalf("token sign: exit %d: %s", code, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

func TestTokenAuth(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	cfg := baseConfig + `
auth:
  secrets: {live: "s3cret-for-tests"}
  play: true
  publish: true
  clock_skew: 0s
`
	s := startServer(t, cfg)
	cfgPath := writeFile(t, cfg)
	good := signToken(t, cfgPath, "live/auth", "1h")
	expired := signToken(t, cfgPath, "live/auth", "-1m")
	otherStream := signToken(t, cfgPath, "live/other", "1h")

	for _, tc := range []struct {
		name, query string
	}{
		{"no token", ""},
		{"expired", expired},
		{"other stream", otherStream},
		{"tampered", strings.Replace(good, "token=", "token=0", 1)[:len(good)]},
	} {
		t.Run("publish "+tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			url := s.url("live/auth")
			if tc.query != "" {
				url += "?" + tc.query
			}
			out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error",
				"-re", "-i", clipPath(t), "-t", "2", "-c", "copy", "-f", "flv", url).CombinedOutput()
			if err == nil {
				t.Fatalf("publish with %s was accepted", tc.name)
			}
			if strings.Contains(string(out), "s3cret") {
				t.Fatal("client learned the secret")
			}
		})
	}
	if n := countLines(s.logLines(), `access refused.*action=publish`); n < 4 {
		t.Fatalf("logged %d publish refusals, want 4", n)
	}
	for _, l := range s.logLines() {
		if strings.Contains(l, "token=") || strings.Contains(l, "s3cret") {
			t.Fatalf("a log line carries a token or secret: %s", l)
		}
	}

	publish(t, s.url("live/auth?"+good))
	s.waitLog(t, `msg=publishing .*stream=live/auth`, 15*time.Second)

	if _, err := probe(t, s.url("live/auth"), 20); err == nil {
		t.Fatal("play without a token was accepted")
	}
	if _, err := probe(t, s.url("live/auth?"+expired), 20); err == nil {
		t.Fatal("play with an expired token was accepted")
	}
	r, err := probe(t, s.url("live/auth?"+good), 100)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 30)
}

func TestCheckConfig(t *testing.T) {
	good := writeFile(t, baseConfig)
	bad := writeFile(t, "rtmp: {listen: \"127.0.0.1:0\"}\nstreams:\n  - {match: \"live/x\", mode: bogus}\n")
	unknown := writeFile(t, "rtmp: {listn: \":1935\"}\n")
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{good, 0, "configuration ok"},
		{bad, 1, "streams[0].mode"},
		{unknown, 1, "listn"},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"--config", tc.path, "--check-config"}, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (%s)", tc.path, code, tc.code, stderr.String())
		}
		if !strings.Contains(stdout.String()+stderr.String(), tc.want) {
			t.Errorf("%s: output %q does not mention %q", tc.path, stdout.String()+stderr.String(), tc.want)
		}
	}
}

func TestShutdownWithViewers(t *testing.T) {
	requireTools(t, "ffmpeg")
	s := startServer(t, baseConfig+`
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	viewer := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-i", s.url("live/demo"), "-f", "null", "-")
	if err := viewer.Start(); err != nil {
		t.Fatal(err)
	}
	s.waitLog(t, `msg=playing .*stream=live/demo`, 15*time.Second)
	start := time.Now()
	s.stop(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if s.err != nil {
		t.Fatalf("liveedge exited with %v", s.err)
	}
	// The viewer is told the stream ended and exits by itself.
	done := make(chan error, 1)
	go func() { done <- viewer.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("viewer still running after the server stopped")
	}
}

// TestExampleConfigs: the configurations shipped in packaging/examples are
// valid.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "packaging", "examples", "*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("example configurations: %v %v", files, err)
	}
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"--config", f, "--check-config"}, &stdout, &stderr); code != 0 {
			t.Errorf("%s: exit %d: %s", f, code, stderr.String())
		}
	}
}
