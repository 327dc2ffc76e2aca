package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookRecorder is the webhook service of an end-to-end test.
type hookRecorder struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string][]map[string]any
	rtmp  string // the edge's RTMP address, for on_stream_not_found
}

func newHookRecorder(t *testing.T) *hookRecorder {
	t.Helper()
	hr := &hookRecorder{calls: map[string][]map[string]any{}}
	hr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		hr.mu.Lock()
		hr.calls[r.URL.Path] = append(hr.calls[r.URL.Path], body)
		rtmp := hr.rtmp
		hr.mu.Unlock()
		switch r.URL.Path {
		case "/on_play":
			q, _ := url.ParseQuery(fmt.Sprint(body["params"]))
			if q.Get("token") == "revoked-viewer-token" {
				io.WriteString(w, `{"code":-1,"msg":"subscription expired"}`)
				return
			}
		case "/on_stream_not_found":
			if body["stream"] == "wanted" {
				fmt.Fprintf(w, `{"code":0,"msg":"success","url":"rtmp://%s/live/demo"}`, rtmp)
				return
			}
		}
		io.WriteString(w, `{"code":0,"msg":"success"}`)
	}))
	t.Cleanup(hr.Close)
	return hr
}

func (hr *hookRecorder) got(path string) []map[string]any {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	return append([]map[string]any(nil), hr.calls[path]...)
}

func hooksConfig(base string) string {
	return baseConfig + `
hooks:
  on_play: ` + base + `/on_play
  on_publish: ` + base + `/on_publish
  on_stream_changed: ` + base + `/on_stream_changed
  on_stream_not_found: ` + base + `/on_stream_not_found
  timeout: 2s
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`
}

// on_play admits and refuses RTMP viewers; the refusal is logged with the
// hook's reason, never with the viewer's token.
func TestHooksPlayAllowDeny(t *testing.T) {
	requireTools(t, "ffprobe")
	hr := newHookRecorder(t)
	s := startServer(t, hooksConfig(hr.URL))
	r, err := probe(t, s.url("live/demo?token=good-viewer-token"), 60)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 20)
	if _, err := probe(t, s.url("live/demo?token=revoked-viewer-token"), 10); err == nil {
		t.Fatal("a viewer the hook refused could play")
	}
	line := s.waitLog(t, `msg="access refused".*stream=live/demo`, 5*time.Second)
	if !strings.Contains(line, "subscription expired") {
		t.Fatalf("refusal logged without the hook's reason: %s", line)
	}
	for _, l := range s.logLines() {
		if strings.Contains(l, "revoked-viewer-token") || strings.Contains(l, "good-viewer-token") {
			t.Fatalf("a viewer's token was logged: %s", l)
		}
	}
	plays := hr.got("/on_play")
	if len(plays) < 2 || plays[0]["app"] != "live" || plays[0]["stream"] != "demo" || plays[0]["schema"] != "rtmp" ||
		plays[0]["ip"] != "127.0.0.1" || plays[0]["vhost"] != "__defaultVhost__" {
		t.Fatalf("on_play calls = %v", plays)
	}
	// The demo started: on_stream_changed regist=true.
	var started bool
	for _, c := range hr.got("/on_stream_changed") {
		started = started || c["stream"] == "demo" && c["regist"] == true
	}
	if !started {
		t.Fatalf("on_stream_changed = %v, want regist=true for live/demo", hr.got("/on_stream_changed"))
	}
}

// on_stream_not_found names an origin (here the same edge's demo): the
// unknown stream plays, pulled on demand.
func TestHooksNotFoundPulls(t *testing.T) {
	requireTools(t, "ffprobe")
	hr := newHookRecorder(t)
	s := startServer(t, hooksConfig(hr.URL))
	hr.mu.Lock()
	hr.rtmp = s.rtmp
	hr.mu.Unlock()
	r, err := probe(t, s.url("live/wanted"), 60)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 20)
	nf := hr.got("/on_stream_not_found")
	if len(nf) != 1 || nf[0]["app"] != "live" || nf[0]["stream"] != "wanted" {
		t.Fatalf("on_stream_not_found calls = %v", nf)
	}
	s.waitLog(t, `on_stream_not_found: pulling on demand.*stream=live/wanted`, time.Second)

	// A stream the hook does not know stays unknown.
	if _, err := probe(t, s.url("live/nobody"), 5); err == nil {
		t.Fatal("live/nobody played")
	}
}
