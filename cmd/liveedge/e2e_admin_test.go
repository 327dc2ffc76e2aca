package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const adminSecret = "adm-s3cret"

// adminConfig runs the static demo with the admin listener on a free
// loopback port, protected by adminSecret.
const adminConfig = `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: ""}
admin: {listen: "127.0.0.1:0", secret: "` + adminSecret + `"%s}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`

var adminListenRe = regexp.MustCompile(`msg=listening proto=admin addr=(\S+)`)

// adminClient talks to a server's admin listener.
type adminClient struct {
	base string
	c    *http.Client
}

func newAdminClient(t *testing.T, s *server) *adminClient {
	t.Helper()
	line := s.waitLog(t, `msg=listening proto=admin addr=`, 10*time.Second)
	c := &adminClient{base: "http://" + adminListenRe.FindStringSubmatch(line)[1], c: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(c.c.CloseIdleConnections)
	return c
}

// do sends a request with the secret (unless secret is false) and returns
// the status and body.
func (a *adminClient) do(t *testing.T, method, path string, secret bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret {
		req.Header.Set("Authorization", "Bearer "+adminSecret)
	}
	res, err := a.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// zlm calls a ZLMediaKit API with the secret as a parameter.
func (a *adminClient) zlm(t *testing.T, name string, q url.Values) map[string]any {
	t.Helper()
	if q == nil {
		q = url.Values{}
	}
	q.Set("secret", adminSecret)
	code, b := a.do(t, "GET", "/index/api/"+name+"?"+q.Encode(), false)
	var m map[string]any
	if err := json.Unmarshal(b, &m); code != 200 || err != nil {
		t.Fatalf("%s: %d %s", name, code, b)
	}
	if m["code"] != float64(0) {
		t.Fatalf("%s: %s", name, b)
	}
	return m
}

// rtmpViewers returns live/demo's RTMP viewer count from /api/v1/streams.
func (a *adminClient) viewers(t *testing.T, name, protocol string) int {
	t.Helper()
	code, b := a.do(t, "GET", "/api/v1/streams", true)
	var list struct {
		Streams []struct {
			Name    string         `json:"name"`
			Viewers map[string]int `json:"viewers"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(b, &list); code != 200 || err != nil {
		t.Fatalf("GET /api/v1/streams: %d %s", code, b)
	}
	for _, s := range list.Streams {
		if s.Name == name {
			return s.Viewers[protocol]
		}
	}
	return -1
}

// TestAdminAPIAgainstFFmpeg: an ffmpeg RTMP viewer is listed by the JSON
// API and getMediaList, kick_session disconnects it, addStreamProxy of a
// pull from the server's own demo makes a stream that plays, and the
// metrics count viewers.
func TestAdminAPIAgainstFFmpeg(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	s := startServer(t, strings.Replace(adminConfig, "%s", "", 1))
	a := newAdminClient(t, s)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)

	if code, _ := a.do(t, "GET", "/api/v1/streams", false); code != http.StatusUnauthorized {
		t.Fatalf("no secret: %d, want 401", code)
	}
	code, b := a.do(t, "GET", "/api/v1/version", true)
	if code != 200 || !bytes.Contains(b, []byte(`"version":"dev"`)) {
		t.Fatalf("version: %d %s", code, b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	viewer := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-i", s.url("live/demo"), "-c", "copy", "-f", "null", "-")
	if err := viewer.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- viewer.Wait() }()
	defer func() {
		cancel()
		<-exited
	}()
	deadline := time.Now().Add(15 * time.Second)
	for a.viewers(t, "live/demo", "rtmp") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the ffmpeg viewer is not listed by /api/v1/streams")
		}
		time.Sleep(100 * time.Millisecond)
	}

	list := a.zlm(t, "getMediaList", url.Values{"schema": {"rtmp"}, "app": {"live"}, "stream": {"demo"}})["data"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["readerCount"] != float64(1) {
		t.Fatalf("getMediaList = %v", list)
	}
	code, b = a.do(t, "GET", "/metrics", true)
	if code != 200 || !bytes.Contains(b, []byte(`liveedge_viewers{protocol="rtmp",stream="live/demo"} 1`)) {
		t.Fatalf("metrics (%d) lack the RTMP viewer:\n%s", code, b)
	}

	// Kick the viewer: ffmpeg's connection is closed and it exits.
	var id string
	for _, x := range a.zlm(t, "getAllSession", nil)["data"].([]any) {
		sess := x.(map[string]any)
		if sess["typeid"] == "mediakit::RtmpSession" && sess["stream"] == "live/demo" && sess["publisher"] == false {
			id, _ = sess["id"].(string)
		}
	}
	if id == "" {
		t.Fatal("getAllSession does not list the RTMP viewer")
	}
	a.zlm(t, "kick_session", url.Values{"id": {id}})
	select {
	case <-exited:
		exited <- nil // for the deferred wait
	case <-time.After(10 * time.Second):
		t.Fatal("ffmpeg still runs 10s after kick_session")
	}
	s.waitLog(t, `msg="session kicked" id=`+id, 5*time.Second)

	// A proxy pulling the server's own demo over RTMP.
	m := a.zlm(t, "addStreamProxy", url.Values{"vhost": {"__defaultVhost__"}, "app": {"live"}, "stream": {"relay"},
		"url": {"rtmp://" + s.rtmp + "/live/demo"}})
	if m["data"].(map[string]any)["key"] != "__defaultVhost__/live/relay" {
		t.Fatalf("addStreamProxy = %v", m)
	}
	r, err := probe(t, s.url("live/relay"), 60)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 20)
	code, b = a.do(t, "GET", "/metrics", true)
	if code != 200 || !bytes.Contains(b, []byte(`liveedge_pull_connects_total{stream="live/relay"} 1`)) {
		t.Fatalf("metrics lack the relay pull:\n%s", b)
	}
	if l := a.zlm(t, "listStreamProxy", nil)["data"].([]any); len(l) != 1 {
		t.Fatalf("listStreamProxy = %v", l)
	}
}

// TestAdminProxyStateFile: a proxy added over the API is restored by a
// restart with the same state file.
func TestAdminProxyStateFile(t *testing.T) {
	requireTools(t)
	state := filepath.Join(t.TempDir(), "state.json")
	cfg := strings.Replace(adminConfig, "%s", `, state_file: "`+state+`"`, 1)
	s := startServer(t, cfg)
	a := newAdminClient(t, s)
	req, _ := http.NewRequest("POST", a.base+"/api/v1/proxies", strings.NewReader(`{"stream":"live/kept","origins":["demo"],"mode":"on_demand"}`))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	res, err := a.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/proxies = %d", res.StatusCode)
	}
	s.stop(t)

	s2 := startServer(t, cfg)
	a2 := newAdminClient(t, s2)
	code, b := a2.do(t, "GET", "/api/v1/proxies", true)
	if code != 200 || !bytes.Contains(b, []byte(`{"stream":"live/kept","origins":["demo"],"mode":"on_demand"}`)) {
		t.Fatalf("proxies after a restart: %d %s", code, b)
	}
}

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "liveedge dev (go") {
		t.Fatalf("liveedge version = %d %q %q", code, out.String(), errb.String())
	}
	if code := run([]string{"version", "x"}, &out, &errb); code != 2 {
		t.Fatalf("liveedge version x = %d, want 2", code)
	}
}
