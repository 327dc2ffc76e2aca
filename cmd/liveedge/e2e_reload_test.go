package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadKeepsViewers: SIGHUP with a broken file is refused and
// changes nothing; with a good one, auth and limits take effect for new
// viewers while a viewer of an unchanged stream keeps playing, and a
// changed listener section is reported as needing a restart.
func TestReloadKeepsViewers(t *testing.T) {
	requireTools(t, "ffprobe")
	const conf = `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: ""}
admin: {listen: ""}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
  - {match: "sec/demo", mode: static, origins: [demo]}
`
	s := startServer(t, conf)
	s.waitLog(t, `msg="origin up" stream=sec/demo`, 10*time.Second)
	v := watch(t, s.url("live/demo"))
	v.waitFrames(t, 10, 10*time.Second)
	if _, err := probe(t, s.url("sec/demo"), 10); err != nil {
		t.Fatalf("sec/demo before the reload: %v", err)
	}

	// A broken file: refused, nothing changes.
	if err := os.WriteFile(s.conf, []byte(conf+"auth: {algorithm: md5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog(t, `msg="configuration reload refused: the running configuration stays".*auth.algorithm`, 5*time.Second)

	// A good one: sec/demo now needs a token, the rtsp listener changed.
	good := conf + `auth: {secrets: {sec: "s3cret"}, apps: {sec: {play: true}}}
limits: {max_viewers_per_stream: 5}
`
	good = strings.Replace(good, `rtsp: {listen: ""}`, `rtsp: {listen: "127.0.0.1:0"}`, 1)
	if err := os.WriteFile(s.conf, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog(t, `msg="configuration reloaded; these sections changed and take effect at the next restart" sections=\[rtsp\]`, 5*time.Second)
	if _, err := probe(t, s.url("sec/demo"), 10); err == nil {
		t.Fatal("sec/demo played without a token after the reload")
	}
	// The viewer of live/demo never noticed.
	v.reset()
	gap := v.checkSwitch(t, 500*time.Millisecond)
	t.Logf("viewer kept playing across two reloads (largest gap since: %v)", gap)
	if n := countLines(s.logLines(), `player left.*stream=live/demo`); n != 0 {
		t.Fatalf("%d live/demo players left", n)
	}
}
