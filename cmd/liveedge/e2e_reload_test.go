package main

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
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

// TestReloadHooksAndServerConfig: hooks that were off at start-up are
// turned on by a reload (POST /api/v1/reload) while a viewer watches: the
// new on_play refuses and admits new viewers, on_stream_changed is posted
// for a new stream, the existing viewer never notices, and
// getServerConfig shows the configuration in effect: the new hooks and
// limits, and the old value of a listener that only changes at a restart.
func TestReloadHooksAndServerConfig(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	const conf = `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: ""}
admin: {listen: "127.0.0.1:0"}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`
	s := startServer(t, conf)
	admin := openAdmin(t, s)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	v := watch(t, s.url("live/demo"))
	v.waitFrames(t, 10, 10*time.Second)
	hr := newHookRecorder(t)

	serverConfig := func() map[string]any {
		t.Helper()
		res, err := http.Get(admin + "/index/api/getServerConfig")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m struct {
			Code int              `json:"code"`
			Data []map[string]any `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil || m.Code != 0 || len(m.Data) != 1 {
			t.Fatalf("getServerConfig: %v %+v", err, m)
		}
		return m.Data[0]
	}
	if c := serverConfig(); c["hooks.on_play"] != "" || c["limits.max_viewers"] != "0" {
		t.Fatalf("start-up getServerConfig: on_play %v, max_viewers %v", c["hooks.on_play"], c["limits.max_viewers"])
	}

	next := strings.Replace(conf, `rtsp: {listen: ""}`, `rtsp: {listen: "127.0.0.1:0"}`, 1) + `
limits: {max_viewers: 50}
hooks:
  on_play: ` + hr.URL + `/on_play
  on_stream_changed: ` + hr.URL + `/on_stream_changed
  timeout: 1s
  failure: open
`
	if err := os.WriteFile(s.conf, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(admin+"/api/v1/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Reloaded bool     `json:"reloaded"`
		Restart  []string `json:"restart_needed"`
	}
	json.NewDecoder(res.Body).Decode(&rep)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !rep.Reloaded || !slices.Equal(rep.Restart, []string{"rtsp"}) {
		t.Fatalf("reload: %d %+v, want only rtsp to need a restart", res.StatusCode, rep)
	}

	// The new on_play decides.
	if _, err := probe(t, s.url("live/demo?token=revoked-viewer-token"), 10); err == nil {
		t.Fatal("a viewer the new on_play refuses played")
	}
	if _, err := probe(t, s.url("live/demo?token=good"), 10); err != nil {
		t.Fatalf("a viewer the new on_play admits: %v", err)
	}
	if n := len(hr.got("/on_play")); n != 2 {
		t.Fatalf("on_play called %d times, want 2", n)
	}
	// on_stream_changed for a stream published after the reload, once per
	// schema in effect (rtmp only: rtsp and http are off until a restart).
	publish(t, s.url("live/new"))
	deadline := time.Now().Add(10 * time.Second)
	for len(hr.got("/on_stream_changed")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	sc := hr.got("/on_stream_changed")
	if len(sc) != 1 || sc[0]["stream"] != "new" || sc[0]["regist"] != true || sc[0]["schema"] != "rtmp" {
		t.Fatalf("on_stream_changed = %v", sc)
	}

	c := serverConfig()
	for k, want := range map[string]string{"hooks.on_play": hr.URL + "/on_play", "hooks.failure": "open",
		"limits.max_viewers": "50", "rtsp.listen": ""} {
		if c[k] != want {
			t.Errorf("getServerConfig after the reload: %s = %v, want %q", k, c[k], want)
		}
	}

	// The viewer of live/demo never noticed.
	v.reset()
	gap := v.checkSwitch(t, 500*time.Millisecond)
	t.Logf("viewer kept playing across the reload (largest gap since: %v)", gap)
	if n := countLines(s.logLines(), `player left.*stream=live/demo`); n != 1 {
		t.Errorf("%d live/demo players left, want 1 (the admitted probe)", n)
	}
}
