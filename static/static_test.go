package static

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

func get(t *testing.T, h http.Handler, method, path string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Result().Header, string(b)
}

func TestHandles(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/live/demo/": true, "/static/vendor/hls.min.js": true,
		"/live/demo": false, "/live/demo/index.m3u8": false, "/live/demo/whep": false, "/live/demo.flv": false,
		"/live/": false, "//demo/": false, "/a/b/c/": false, "/live/../": false,
		"/static/vendor/": false, "/static/vendor/a/b.js": false, "/static/vendor/.x": false,
	} {
		if got := Handles(p); got != want {
			t.Errorf("Handles(%q) = %v", p, got)
		}
	}
}

func TestPages(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	hb := hub.New(hub.Params{Logger: log})
	defer hb.Close()
	h := New(Params{Hub: hb, Logger: log})

	code, _, body := get(t, h, "GET", "/")
	if code != 200 || !strings.Contains(body, `id="empty"`) {
		t.Fatalf("empty list: %d\n%s", code, body)
	}

	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		demo.Run(ctx, hb, "live/demo", clip, log) //nolint:errcheck
	}()
	defer func() { cancel(); wg.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s, ok := hb.Stream("live/demo"); ok && s.Video != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("demo stream did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, hd, body := get(t, h, "GET", "/")
	if code != 200 || !strings.Contains(body, `<a href="/live/demo/">live/demo</a>`) || !strings.Contains(body, "H264") ||
		!strings.HasPrefix(hd.Get("Content-Type"), "text/html") {
		t.Fatalf("list: %d %v\n%s", code, hd, body)
	}

	code, _, body = get(t, h, "GET", "/live/demo/")
	if code != 200 || !strings.Contains(body, "<video") || !strings.Contains(body, `stream: "live/demo"`) {
		t.Fatalf("player: %d\n%s", code, body)
	}
	if HasHLSJS() != strings.Contains(body, "/static/vendor/hls.min.js") {
		t.Fatalf("hls.js embedded %v, page:\n%s", HasHLSJS(), body)
	}
	if HasMPEGTS() != strings.Contains(body, "/static/vendor/mpegts.js") {
		t.Fatalf("mpegts.js embedded %v, page:\n%s", HasMPEGTS(), body)
	}
	// Names are escaped in HTML and in the script.
	_, _, body = get(t, h, "GET", "/live/%3Cb%3E%22x/")
	if strings.Contains(body, "<b>") || !strings.Contains(body, `\u003cb\u003e\"x`) {
		t.Fatalf("unescaped name:\n%s", body)
	}

	if code, _, _ := get(t, h, "POST", "/"); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", code)
	}
	for _, f := range []string{"README.md", "lock.sha256"} {
		if code, _, _ := get(t, h, "GET", "/static/vendor/"+f); code != 404 {
			t.Fatalf("%s: %d", f, code)
		}
	}
	if code, _, _ := get(t, h, "GET", "/live/demo"); code != 404 {
		t.Fatalf("no slash: %d", code)
	}
	if HasHLSJS() {
		code, hd, body := get(t, h, "GET", "/static/vendor/hls.min.js")
		if code != 200 || !strings.Contains(hd.Get("Content-Type"), "javascript") || len(body) < 1000 {
			t.Fatalf("hls.js: %d %v", code, hd)
		}
	}
}

type fakeSources struct{}

func (fakeSources) Pull(stream string) (string, bool, bool) {
	return "rtmp://origin-a/live/demo", true, stream == "live/demo"
}
func (fakeSources) Origins() []OriginStatus {
	return []OriginStatus{{Origin: "rtmp://origin-a/live/demo", Up: true, RTTMs: 12}, {Origin: "rtmp://origin-b/live/demo"}}
}

// TestStatusJSON: the dashboard's JSON lists the streams with their
// viewers per protocol and source, and the origins' health.
func TestStatusJSON(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	hb := hub.New(hub.Params{Logger: log})
	defer hb.Close()
	h := New(Params{Hub: hb, Logger: log, Sources: fakeSources{}})
	if !Handles(StatusPath) {
		t.Fatal("status path not handled")
	}
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		demo.Run(ctx, hb, "live/demo", clip, log) //nolint:errcheck
	}()
	defer func() { cancel(); wg.Wait() }()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	sub, err := hb.Subscribe(sctx, "live/demo", hub.Session{Protocol: "rtsp"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	code, hd, body := get(t, h, "GET", StatusPath)
	if code != 200 || hd.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v", code, hd)
	}
	var st status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Streams) != 1 || len(st.Origins) != 2 {
		t.Fatalf("status %s", body)
	}
	s := st.Streams[0]
	if s.Name != "live/demo" || s.URL != "/live/demo/" || s.Video != "H264 640x360" || s.ByProto["rtsp"] != 1 ||
		s.Viewers != 1 || s.Source != "rtmp://origin-a/live/demo" || !s.SourceUp {
		t.Fatalf("stream %+v", s)
	}
	if !st.Origins[0].Up || st.Origins[0].RTTMs != 12 || st.Origins[1].Up {
		t.Fatalf("origins %+v", st.Origins)
	}
}
