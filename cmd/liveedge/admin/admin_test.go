package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is an admin server over a real hub and source manager.
type env struct {
	cfg *config.Config
	hub *hub.Hub
	src *source.Manager
	srv *Server
	ts  *httptest.Server
}

// newEnv starts a hub and a source manager on cfg (config.Default, with
// the static demo live/demo, unless edit changes it) and an admin server
// over them, served by httptest.
func newEnv(t *testing.T, edit func(c *config.Config)) *env {
	t.Helper()
	cfg := config.Default()
	if edit != nil {
		edit(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := source.New(source.Params{Config: cfg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// Playing app "sec" needs a token: an Admit without one is refused.
	pol := &auth.Policy{Algorithm: auth.SHA256, Apps: map[string]auth.AppPolicy{"sec": {Secret: []byte("k"), Play: true}}}
	h := hub.New(hub.Params{Logger: log, Sourcer: src, Authorizer: pol, StartTimeout: 5 * time.Second})
	e := &env{cfg: cfg, hub: h, src: src}
	e.srv = New(Params{Config: cfg, Hub: h, Sources: src, Logger: log, Version: "v-test"})
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(func() {
		e.ts.Close()
		src.Close()
		h.Close()
	})
	if err := src.Start(h); err != nil {
		t.Fatal(err)
	}
	return e
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("reply %d %q is not a JSON object: %v", r.code, r.body, err)
	}
	return m
}

// do sends a request with an optional body (a string: form if it has no
// leading "{", else JSON) and header "Authorization: Bearer <bearer>".
func (e *env) do(t *testing.T, method, path, body, bearer string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		if strings.HasPrefix(body, "{") {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for k := range res.Header {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("%s %s: CORS header %s on the admin port", method, path, k)
		}
	}
	return reply{res.StatusCode, res.Header, b}
}

func (e *env) get(t *testing.T, path string) reply { t.Helper(); return e.do(t, "GET", path, "", "") }

// zlm calls a ZLMediaKit API by GET and returns its JSON reply, requiring
// HTTP 200.
func (e *env) zlm(t *testing.T, name string, q url.Values) map[string]any {
	t.Helper()
	r := e.get(t, "/index/api/"+name+"?"+q.Encode())
	if r.code != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", name, r.code, r.body)
	}
	return r.json(t)
}

func zlmCode(m map[string]any) int {
	c, _ := m["code"].(float64)
	return int(c)
}

// waitLive waits until name has tracks and a GOP in its cache.
func waitLive(t *testing.T, h *hub.Hub, name string) hub.StreamInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, ok := h.Stream(name)
		if ok && in.Video != nil && in.Producer != nil && in.GOP.GOPValid {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not live within 10s (%+v)", name, in)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watch subscribes a viewer of protocol to name and reads its first unit.
func watch(t *testing.T, h *hub.Hub, name, protocol string) *hub.Subscriber {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub, err := h.Subscribe(ctx, name, hub.Session{Protocol: protocol, Remote: "127.0.0.1:40000"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	if _, err := sub.Next(ctx, make([]*hub.Unit, 0, 8)); err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestSecret(t *testing.T) {
	const secret = "s3cret"
	e := newEnv(t, func(c *config.Config) { c.Admin.Secret = secret })
	for _, tc := range []struct {
		name, path, bearer string
		want               int
	}{
		{"none", "/api/v1/version", "", http.StatusUnauthorized},
		{"wrong bearer", "/api/v1/version", "nope", http.StatusUnauthorized},
		{"wrong param", "/api/v1/version?secret=nope", "", http.StatusUnauthorized},
		{"bearer", "/api/v1/version", secret, http.StatusOK},
		{"param", "/api/v1/version?secret=" + secret, "", http.StatusOK},
		{"metrics none", "/metrics", "", http.StatusUnauthorized},
		{"metrics bearer", "/metrics", secret, http.StatusOK},
	} {
		r := e.do(t, "GET", tc.path, "", tc.bearer)
		if r.code != tc.want {
			t.Errorf("%s: GET %s = %d %s, want %d", tc.name, tc.path, r.code, r.body, tc.want)
		}
		if r.code == http.StatusUnauthorized && r.json(t)["error"] == "" {
			t.Errorf("%s: no JSON error in %s", tc.name, r.body)
		}
	}
	if r := e.do(t, "GET", "/api/v1/version", "", secret); r.json(t)["version"] != "v-test" {
		t.Errorf("version = %s", r.body)
	}

	// The ZLMediaKit subset: secret as a query, form or JSON parameter.
	if m := e.zlm(t, "getMediaList", nil); zlmCode(m) != -100 || m["msg"] == "" {
		t.Errorf("getMediaList without secret = %v, want code -100", m)
	}
	if m := e.zlm(t, "getMediaList", url.Values{"secret": {"bad"}}); zlmCode(m) != -100 {
		t.Errorf("getMediaList with a wrong secret = %v, want code -100", m)
	}
	if m := e.zlm(t, "getMediaList", url.Values{"secret": {secret}}); zlmCode(m) != 0 {
		t.Errorf("getMediaList with secret = %v, want code 0", m)
	}
	for _, body := range []string{"secret=" + secret, `{"secret":"` + secret + `"}`} {
		r := e.do(t, "POST", "/index/api/getMediaList", body, "")
		if m := r.json(t); r.code != 200 || zlmCode(m) != 0 {
			t.Errorf("POST %s = %d %v, want code 0", body, r.code, m)
		}
	}
	if r := e.do(t, "POST", "/index/api/getMediaList", "secret=bad", ""); zlmCode(r.json(t)) != -100 {
		t.Errorf("POST with a wrong secret = %s", r.body)
	}

	// OPTIONS is refused, without CORS headers (checked by do).
	if r := e.do(t, "OPTIONS", "/api/v1/streams", "", secret); r.code != http.StatusMethodNotAllowed {
		t.Errorf("OPTIONS = %d", r.code)
	}
}

func TestOpenOnlyOnLoopback(t *testing.T) {
	e := newEnv(t, nil) // default: 127.0.0.1:9997, no secret
	if r := e.get(t, "/api/v1/version"); r.code != http.StatusOK {
		t.Fatalf("loopback without secret: %d %s", r.code, r.body)
	}
	if m := e.zlm(t, "getMediaList", nil); zlmCode(m) != 0 {
		t.Fatalf("ZLM on loopback without secret: %v", m)
	}
	// A listener elsewhere without a secret (which Validate refuses)
	// refuses every request.
	e2 := newEnv(t, func(c *config.Config) { c.Admin.Listen = "0.0.0.0:9997" })
	if r := e2.get(t, "/api/v1/version"); r.code != http.StatusUnauthorized {
		t.Fatalf("non-loopback without secret: %d %s", r.code, r.body)
	}
	if m := e2.zlm(t, "getMediaList", nil); zlmCode(m) != -100 {
		t.Fatalf("ZLM non-loopback without secret: %v", m)
	}
}

func TestListen(t *testing.T) {
	cfg := config.Default()
	cfg.Admin.Listen = "127.0.0.1:0"
	h := hub.New(hub.Params{})
	defer h.Close()
	s, err := Listen(Params{Config: cfg, Hub: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := http.Get("http://" + s.Addr() + "/api/v1/streams")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"streams":[]`)) {
		t.Fatalf("GET /api/v1/streams = %d %s", res.StatusCode, b)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestStreamsAPI(t *testing.T) {
	e := newEnv(t, nil)
	waitLive(t, e.hub, "live/demo")
	watch(t, e.hub, "live/demo", "test")

	var list struct {
		Streams []Stream `json:"streams"`
	}
	r := e.get(t, "/api/v1/streams")
	if err := json.Unmarshal(r.body, &list); r.code != 200 || err != nil || len(list.Streams) != 1 {
		t.Fatalf("GET /api/v1/streams = %d %s (%v)", r.code, r.body, err)
	}
	s := list.Streams[0]
	if s.Name != "live/demo" || s.App != "live" || s.Stream != "demo" || s.Viewers["test"] != 1 || s.ViewersTotal != 1 ||
		s.Producer == nil || s.Producer.Protocol != "pull" || !s.GOP.Valid || s.GOP.Bytes <= 0 || s.Proxy {
		t.Fatalf("stream = %+v", s)
	}
	if len(s.Tracks) != 2 || s.Tracks[0] != (Track{Type: "video", Codec: "H264", Width: 640, Height: 360, FPS: s.Tracks[0].FPS}) ||
		s.Tracks[1].Type != "audio" || s.Tracks[1].Codec != "AAC" || s.Tracks[1].SampleRate <= 0 {
		t.Fatalf("tracks = %+v", s.Tracks)
	}
	if s.Pull == nil || s.Pull.Origin != "demo" || !s.Pull.Up || s.Pull.Connects != 1 {
		t.Fatalf("pull = %+v", s.Pull)
	}

	var one Stream
	if r := e.get(t, "/api/v1/streams/live/demo"); r.code != 200 || json.Unmarshal(r.body, &one) != nil || one.Name != "live/demo" {
		t.Fatalf("GET one stream = %d %s", r.code, r.body)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v1/streams/live/nope"}, {"DELETE", "/api/v1/streams/live/nope"},
		{"GET", "/api/v1/nothing"}, {"DELETE", "/api/v1/sessions/12345"},
	} {
		if r := e.do(t, tc.method, tc.path, "", ""); r.code != 404 || r.json(t)["error"] == nil {
			t.Errorf("%s %s = %d %s, want 404 with a JSON error", tc.method, tc.path, r.code, r.body)
		}
	}
	if r := e.do(t, "POST", "/api/v1/streams", "", ""); r.code != http.StatusMethodNotAllowed || r.json(t)["error"] == nil {
		t.Errorf("POST /api/v1/streams = %d %s", r.code, r.body)
	}
	if r := e.do(t, "DELETE", "/api/v1/sessions/abc", "", ""); r.code != http.StatusBadRequest {
		t.Errorf("DELETE /api/v1/sessions/abc = %d", r.code)
	}

	var origins struct {
		Origins []Origin `json:"origins"`
	}
	if r := e.get(t, "/api/v1/origins"); r.code != 200 || json.Unmarshal(r.body, &origins) != nil || origins.Origins == nil {
		t.Errorf("GET /api/v1/origins = %d %s", r.code, r.body)
	}

	// Closing the stream ends its viewers.
	sub := watch(t, e.hub, "live/demo", "test")
	if r := e.do(t, "DELETE", "/api/v1/streams/live/demo", "", ""); r.code != 200 || r.json(t)["closed"] != true {
		t.Fatalf("DELETE stream = %d %s", r.code, r.body)
	}
	drainEnded(t, sub)
}

// drainEnded reads sub until it ends.
func drainEnded(t *testing.T, sub *hub.Subscriber) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]*hub.Unit, 0, 64)
	for {
		if _, err := sub.Next(ctx, buf[:0]); err != nil {
			if ctx.Err() != nil {
				t.Fatal("viewer not ended within 5s")
			}
			return
		}
	}
}

func TestSessionsAndKick(t *testing.T) {
	e := newEnv(t, nil)
	waitLive(t, e.hub, "live/demo")
	a := watch(t, e.hub, "live/demo", "rtmp")
	b := watch(t, e.hub, "live/demo", "rtmp")

	var list struct {
		Sessions []hub.SessionInfo `json:"sessions"`
	}
	if r := e.get(t, "/api/v1/sessions"); r.code != 200 || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("GET sessions = %d %s", r.code, r.body)
	}
	var viewers []hub.SessionInfo
	for _, s := range list.Sessions {
		if s.Stream == "live/demo" && s.Protocol == "rtmp" && !s.Publisher {
			viewers = append(viewers, s)
		}
	}
	if len(viewers) != 2 || viewers[0].Remote != "127.0.0.1:40000" {
		t.Fatalf("sessions = %+v", list.Sessions)
	}
	if r := e.do(t, "DELETE", "/api/v1/sessions/"+strconv.FormatUint(viewers[0].ID, 10), "", ""); r.code != 200 {
		t.Fatalf("kick = %d %s", r.code, r.body)
	}
	drainEnded(t, a)

	// ZLMediaKit: getAllSession and kick_session.
	m := e.zlm(t, "getAllSession", nil)
	data, _ := m["data"].([]any)
	var id string
	for _, d := range data {
		s := d.(map[string]any)
		if s["typeid"] == "mediakit::RtmpSession" {
			id, _ = s["id"].(string)
			if s["peer_ip"] != "127.0.0.1" || s["peer_port"] != float64(40000) || s["local_port"] != float64(1935) {
				t.Errorf("session = %v", s)
			}
		}
	}
	if zlmCode(m) != 0 || id != strconv.FormatUint(viewers[1].ID, 10) {
		t.Fatalf("getAllSession = %v, want session %d", m, viewers[1].ID)
	}
	if m := e.zlm(t, "getAllSession", url.Values{"peer_ip": {"10.0.0.1"}}); len(m["data"].([]any)) != 0 {
		t.Errorf("getAllSession peer_ip filter = %v", m)
	}
	if m := e.zlm(t, "kick_session", url.Values{"id": {id}}); zlmCode(m) != 0 {
		t.Fatalf("kick_session = %v", m)
	}
	drainEnded(t, b)
	if m := e.zlm(t, "kick_session", url.Values{"id": {id}}); zlmCode(m) != -500 {
		t.Errorf("kick_session of a gone session = %v, want -500", m)
	}
	if m := e.zlm(t, "kick_session", nil); zlmCode(m) != -300 {
		t.Errorf("kick_session without id = %v, want -300", m)
	}
}

func TestProxiesAPI(t *testing.T) {
	e := newEnv(t, nil)
	post := func(body string) reply { return e.do(t, "POST", "/api/v1/proxies", body, "") }
	if r := post(`{"stream":"live/p","origins":["demo"]}`); r.code != http.StatusCreated || r.json(t)["mode"] != "static" {
		t.Fatalf("POST proxy = %d %s", r.code, r.body)
	}
	waitLive(t, e.hub, "live/p")
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"stream":"live/p","origins":["demo"]}`, http.StatusConflict},
		{`{"stream":"bad","origins":["demo"]}`, http.StatusBadRequest},
		{`{"stream":"live/q","origins":["http://x/y"]}`, http.StatusBadRequest},
		{`{"stream":"live/q","origins":["demo"],"mode":"publish"}`, http.StatusBadRequest},
		{`{"stream":"live/q","origins":["demo"],"extra":1}`, http.StatusBadRequest},
		{`{"stream":`, http.StatusBadRequest},
		{`{"stream":"live/q","origins":["` + strings.Repeat("x", MaxBodyBytes) + `"]}`, http.StatusBadRequest},
	} {
		if r := post(tc.body); r.code != tc.want || r.json(t)["error"] == nil {
			t.Errorf("POST %.60s = %d %.200s, want %d", tc.body, r.code, r.body, tc.want)
		}
	}
	var list struct {
		Proxies []source.Proxy `json:"proxies"`
	}
	if r := e.get(t, "/api/v1/proxies"); json.Unmarshal(r.body, &list) != nil || len(list.Proxies) != 1 ||
		list.Proxies[0].Stream != "live/p" || list.Proxies[0].Origins[0] != "demo" {
		t.Fatalf("GET proxies = %s", r.body)
	}
	var st Stream
	if r := e.get(t, "/api/v1/streams/live/p"); json.Unmarshal(r.body, &st) != nil || !st.Proxy || st.Pull == nil {
		t.Fatalf("proxied stream = %s", r.body)
	}
	if r := e.do(t, "DELETE", "/api/v1/proxies/live/p", "", ""); r.code != 200 {
		t.Fatalf("DELETE proxy = %d %s", r.code, r.body)
	}
	if r := e.do(t, "DELETE", "/api/v1/proxies/live/p", "", ""); r.code != 404 {
		t.Fatalf("DELETE proxy again = %d %s", r.code, r.body)
	}

	// ZLMediaKit: addStreamProxy, listStreamProxy, delStreamProxy.
	m := e.zlm(t, "addStreamProxy", url.Values{"vhost": {"__defaultVhost__"}, "app": {"live"}, "stream": {"z"}, "url": {"demo"}})
	if zlmCode(m) != 0 || m["data"].(map[string]any)["key"] != "__defaultVhost__/live/z" {
		t.Fatalf("addStreamProxy = %v", m)
	}
	waitLive(t, e.hub, "live/z")
	if m := e.zlm(t, "addStreamProxy", url.Values{"app": {"live"}, "stream": {"z"}, "url": {"demo"}}); zlmCode(m) != -1 {
		t.Errorf("addStreamProxy twice = %v, want -1", m)
	}
	if m := e.zlm(t, "addStreamProxy", url.Values{"app": {"live"}, "stream": {"y"}}); zlmCode(m) != -300 {
		t.Errorf("addStreamProxy without url = %v, want -300", m)
	}
	if m := e.zlm(t, "addStreamProxy", url.Values{"app": {"live"}, "stream": {"y"}, "url": {"ftp://x/y"}}); zlmCode(m) != -300 {
		t.Errorf("addStreamProxy with a bad url = %v, want -300", m)
	}
	m = e.zlm(t, "listStreamProxy", nil)
	data, _ := m["data"].([]any)
	if zlmCode(m) != 0 || len(data) != 1 || data[0].(map[string]any)["key"] != "__defaultVhost__/live/z" ||
		data[0].(map[string]any)["url"] != "demo" {
		t.Fatalf("listStreamProxy = %v", m)
	}
	r := e.do(t, "POST", "/index/api/delStreamProxy", `{"key":"__defaultVhost__/live/z"}`, "")
	if m := r.json(t); zlmCode(m) != 0 || m["data"].(map[string]any)["flag"] != true {
		t.Fatalf("delStreamProxy = %s", r.body)
	}
	if m := e.zlm(t, "delStreamProxy", url.Values{"key": {"__defaultVhost__/live/z"}}); zlmCode(m) != 0 ||
		m["data"].(map[string]any)["flag"] != false {
		t.Fatalf("delStreamProxy again = %v", m)
	}
	if m := e.zlm(t, "delStreamProxy", nil); zlmCode(m) != -300 {
		t.Errorf("delStreamProxy without key = %v", m)
	}

	// Origin credentials and tokens are not shown.
	if r := post(`{"stream":"live/s","origins":["rtmp://u:pw@127.0.0.1:1/live/s?token=abc"],"mode":"on_demand"}`); r.code != http.StatusCreated ||
		bytes.Contains(r.body, []byte("pw")) || bytes.Contains(r.body, []byte("abc")) {
		t.Fatalf("POST proxy with credentials = %d %s", r.code, r.body)
	}
	for _, path := range []string{"/api/v1/proxies", "/index/api/listStreamProxy"} {
		if r := e.get(t, path); !bytes.Contains(r.body, []byte(`rtmp://127.0.0.1:1/live/s`)) || bytes.Contains(r.body, []byte("pw")) ||
			bytes.Contains(r.body, []byte("abc")) {
			t.Errorf("GET %s = %s, want the origin without credentials", path, r.body)
		}
	}
}

func TestZLMMedia(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Auth.Secrets = map[string]string{"live": "k"}
		c.Admin.Secret = "adm"
		c.Streams = append(c.Streams, c.NewStream("x/*", config.ModeOnDemand, "rtmp://u:pw@127.0.0.1:1/x/$stream?t=1"))
	})
	in := waitLive(t, e.hub, "live/demo")
	watch(t, e.hub, "live/demo", "rtmp")
	sec := func(q url.Values) url.Values {
		if q == nil {
			q = url.Values{}
		}
		q.Set("secret", "adm")
		return q
	}

	m := e.zlm(t, "getMediaList", sec(nil))
	data, _ := m["data"].([]any)
	if zlmCode(m) != 0 || len(data) != 3 {
		t.Fatalf("getMediaList = %v, want rtmp, rtsp and hls entries", m)
	}
	schemas := map[string]map[string]any{}
	for _, d := range data {
		x := d.(map[string]any)
		schemas[x["schema"].(string)] = x
		if x["app"] != "live" || x["stream"] != "demo" || x["vhost"] != "__defaultVhost__" ||
			x["totalReaderCount"] != float64(1) || x["originType"] != float64(4) || x["originUrl"] != "demo" {
			t.Errorf("entry = %v", x)
		}
	}
	if schemas["rtmp"]["readerCount"] != float64(1) || schemas["hls"]["readerCount"] != float64(0) || schemas["rtsp"] == nil {
		t.Errorf("entries = %v", schemas)
	}
	tracks, _ := schemas["rtmp"]["tracks"].([]any)
	if len(tracks) != 2 {
		t.Fatalf("tracks = %v", tracks)
	}
	v, a := tracks[0].(map[string]any), tracks[1].(map[string]any)
	if v["codec_id_name"] != "H264" || v["codec_type"] != float64(0) || v["width"] != float64(640) || v["height"] != float64(360) || v["ready"] != true {
		t.Errorf("video track = %v", v)
	}
	if a["codec_id_name"] != "mpeg4-generic" || a["codec_type"] != float64(1) || a["sample_rate"] != float64(in.Audio.SampleRate) ||
		a["channels"] != float64(in.Audio.Channels) {
		t.Errorf("audio track = %v", a)
	}
	for q, want := range map[string]int{"schema=rtmp": 1, "app=live&stream=demo": 3, "app=other": 0, "stream=x": 0,
		"vhost=other": 0, "vhost=__defaultVhost__&schema=hls": 1} {
		qv, _ := url.ParseQuery(q)
		if d := e.zlm(t, "getMediaList", sec(qv))["data"].([]any); len(d) != want {
			t.Errorf("getMediaList %s: %d entries, want %d", q, len(d), want)
		}
	}

	online := func(q string) map[string]any {
		qv, _ := url.ParseQuery(q)
		return e.zlm(t, "isMediaOnline", sec(qv))
	}
	if m := online("schema=rtmp&vhost=__defaultVhost__&app=live&stream=demo"); zlmCode(m) != 0 || m["online"] != true {
		t.Errorf("isMediaOnline = %v", m)
	}
	if m := online("schema=rtmp&vhost=__defaultVhost__&app=live&stream=nope"); zlmCode(m) != 0 || m["online"] != false {
		t.Errorf("isMediaOnline of a missing stream = %v", m)
	}
	if m := online("app=live&stream=demo"); zlmCode(m) != -300 {
		t.Errorf("isMediaOnline without schema = %v", m)
	}

	closeStreams := func(q string) map[string]any {
		qv, _ := url.ParseQuery(q)
		return e.zlm(t, "close_streams", sec(qv))
	}
	if m := closeStreams("app=live&stream=demo"); zlmCode(m) != 0 || m["count_hit"] != float64(1) || m["count_closed"] != float64(0) {
		t.Errorf("close_streams of a watched stream without force = %v", m)
	}
	if m := closeStreams("app=live&stream=demo&force=1"); zlmCode(m) != 0 || m["count_hit"] != float64(1) || m["count_closed"] != float64(1) {
		t.Errorf("close_streams force = %v", m)
	}

	m = e.zlm(t, "getServerConfig", sec(nil))
	list, _ := m["data"].([]any)
	if zlmCode(m) != 0 || len(list) != 1 {
		t.Fatalf("getServerConfig = %v", m)
	}
	conf := list[0].(map[string]any)
	for k, want := range map[string]string{"rtmp.listen": ":1935", "admin.listen": "127.0.0.1:9997",
		"auth.secrets.live": "REDACTED", "admin.secret": "REDACTED", "streams.0.match": "live/demo",
		"hub.start_timeout": "5s", "auth.play": "0", "streams.1.origins.0": "rtmp://127.0.0.1:1/x/$stream"} {
		if conf[k] != want {
			t.Errorf("getServerConfig %s = %v, want %q", k, conf[k], want)
		}
	}
	if bytes.Contains(e.get(t, "/index/api/getServerConfig?secret=adm").body, []byte(`"k"`)) {
		t.Error("getServerConfig shows a secret")
	}

	r := e.get(t, "/index/api/noSuchThing?secret=adm")
	if m := r.json(t); r.code != 404 || zlmCode(m) != -500 {
		t.Errorf("unknown API = %d %s", r.code, r.body)
	}
	if r := e.do(t, "DELETE", "/index/api/getMediaList?secret=adm", "", ""); r.code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE on a ZLM API = %d", r.code)
	}
}

// scrape returns the /metrics text.
func (e *env) scrape(t *testing.T) string {
	t.Helper()
	r := e.get(t, "/metrics")
	if r.code != 200 {
		t.Fatalf("GET /metrics = %d %s", r.code, r.body)
	}
	return string(r.body)
}

// metric returns the value of the sample written exactly as series
// (name{labels} in the exposition's label order), or -1.
func metric(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		dead := c.NewStream("dead/x", config.ModeOnDemand, "rtmp://127.0.0.1:1/live/x")
		dead.ProbeInterval = config.Duration(100 * time.Millisecond)
		c.Streams = append(c.Streams, dead)
	})
	in := waitLive(t, e.hub, "live/demo")
	watch(t, e.hub, "live/demo", "test")
	if err := e.hub.Admit(auth.Request{Action: auth.Play, Stream: "sec/x"}, hub.Session{Protocol: "test"}); err == nil {
		t.Fatal("Admit without a token succeeded")
	}

	var text string
	deadline := time.Now().Add(5 * time.Second)
	for {
		text = e.scrape(t)
		if metric(text, `liveedge_origin_up{origin="rtmp://127.0.0.1:1/live/x"}`) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for series, want := range map[string]float64{
		`liveedge_viewers{protocol="test",stream="live/demo"}`: 1,
		`liveedge_streams`: 1,
		`liveedge_auth_refusals_total{reason="missing_token"}`:    1,
		`liveedge_ttff_seconds_count{protocol="test"}`:            1,
		`liveedge_ttff_seconds_bucket{protocol="test",le="+Inf"}`: 1,
		`liveedge_pull_connects_total{stream="live/demo"}`:        1,
		`liveedge_pull_failures_total{stream="live/demo"}`:        0,
		`liveedge_pull_failovers_total{stream="live/demo"}`:       0,
		`liveedge_pull_failbacks_total{stream="live/demo"}`:       0,
		`liveedge_pull_up{origin="demo",stream="live/demo"}`:      1,
		`liveedge_origin_up{origin="rtmp://127.0.0.1:1/live/x"}`:  0,
		`liveedge_slow_viewer_dropped_units_total`:                0,
		`liveedge_slow_viewer_disconnects_total`:                  0,
		`liveedge_stream_gop_cache_bytes{stream="live/demo"}`:     -2, // any value
		`liveedge_pull_bytes_in_total{stream="live/demo"}`:        -2,
		`go_goroutines`: -2,
		`liveedge_ttff_seconds_bucket{protocol="test",le="5"}`:            1,
		`liveedge_ttff_seconds_bucket{protocol="test",le="0.01"}`:         -2,
		`liveedge_viewers{protocol="test",stream="_other"}`:               -1, // absent
		`liveedge_origin_rtt_seconds{origin="rtmp://127.0.0.1:1/live/x"}`: -1,
	} {
		got := metric(text, series)
		switch {
		case want == -2 && got < 0:
			t.Errorf("%s missing", series)
		case want != -2 && got != want:
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if g := metric(text, `liveedge_stream_gop_cache_bytes{stream="live/demo"}`); g <= 0 || g > float64(in.GOP.GOPBytes)*10 {
		t.Errorf("gop cache bytes = %v", g)
	}
	// The demo feeds 25 frames a second: its last unit is recent, and it
	// brought media bytes.
	if g := metric(text, `liveedge_stream_seconds_since_media{stream="live/demo"}`); g < 0 || g > 1 {
		t.Errorf("seconds since media = %v", g)
	}
	if g := metric(text, `liveedge_stream_media_bytes_in_total{stream="live/demo"}`); g <= 0 {
		t.Errorf("media bytes in = %v", g)
	}
	if !strings.Contains(text, "# TYPE liveedge_ttff_seconds histogram") || !strings.Contains(text, "process_") {
		t.Errorf("metrics text lacks the histogram type or the process collector:\n%s", text)
	}
}

func TestMetricsCardinality(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Admin.MetricsMaxStreams = 2
		c.Streams = nil
		for _, n := range []string{"live/a", "live/b", "live/c"} {
			c.Streams = append(c.Streams, c.NewStream(n, config.ModeStatic, config.DemoOrigin))
		}
	})
	for _, n := range []string{"live/a", "live/b", "live/c"} {
		waitLive(t, e.hub, n)
	}
	// c and b have the most viewers: they keep their labels, a is summed.
	for range 3 {
		watch(t, e.hub, "live/c", "test")
	}
	for range 2 {
		watch(t, e.hub, "live/b", "test")
	}
	watch(t, e.hub, "live/a", "rtmp").CountOut(1000)
	e.hub.CountOut("live/c", "hls", 500)
	text := e.scrape(t)
	for series, want := range map[string]float64{
		`liveedge_bytes_out_total{protocol="rtmp",stream="_other"}`: 1000,
		`liveedge_bytes_out_total{protocol="hls",stream="live/c"}`:  500,
		`liveedge_viewers{protocol="test",stream="live/c"}`:         3,
		`liveedge_viewers{protocol="test",stream="live/b"}`:         2,
		`liveedge_viewers{protocol="rtmp",stream="_other"}`:         1,
		`liveedge_pull_connects_total{stream="_other"}`:             1,
		`liveedge_pull_up{origin="_other",stream="_other"}`:         1,
		`liveedge_streams`: 3,
	} {
		if got := metric(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if strings.Contains(text, `stream="live/a"`) {
		t.Errorf("live/a has its own label past metrics_max_streams:\n%s", text)
	}
	if g := metric(text, `liveedge_stream_gop_cache_bytes{stream="_other"}`); g <= 0 {
		t.Errorf("_other gop cache bytes = %v", g)
	}
}

func TestFlatten(t *testing.T) {
	out := map[string]string{}
	flatten("", map[string]any{"a": map[string]any{"b": "x", "c": []any{1.0, true}}, "d": nil, "e": []any{}}, out)
	want := map[string]string{"a.b": "x", "a.c.0": "1", "a.c.1": "1", "d": "", "e": ""}
	if fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("flatten = %v, want %v", out, want)
	}
}

// TestReloadAPI: POST /api/v1/reload calls the reload and reports the
// sections that need a restart, or 400 with the reason; other methods
// get 405; without a reload function, 501.
func TestReloadAPI(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.do(t, "POST", "/api/v1/reload", "", ""); r.code != http.StatusNotImplemented {
		t.Fatalf("no reload function: %d %s", r.code, r.body)
	}
	calls := 0
	fail := false
	e.srv.p.Reload = func() ([]string, error) {
		calls++
		if fail {
			return nil, errors.New("streams[0].mode: bogus")
		}
		return []string{"rtsp"}, nil
	}
	r := e.do(t, "POST", "/api/v1/reload", "", "")
	if m := r.json(t); r.code != http.StatusOK || m["reloaded"] != true || fmt.Sprint(m["restart_needed"]) != "[rtsp]" {
		t.Fatalf("reload: %d %s", r.code, r.body)
	}
	fail = true
	if r := e.do(t, "POST", "/api/v1/reload", "", ""); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "streams[0].mode") {
		t.Fatalf("refused reload: %d %s", r.code, r.body)
	}
	if r := e.get(t, "/api/v1/reload"); r.code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", r.code)
	}
	if calls != 2 {
		t.Fatalf("%d reloads", calls)
	}
}

// TestConfigFollowsReload: getServerConfig and the ZLMediaKit schemas
// show the configuration in effect (Params.Current) after a reload,
// not the start-up one; the /api/v1/streams view carries bytes and
// bitrates in and out.
func TestConfigFollowsReload(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Admin.Secret = "adm" })
	var current atomic.Pointer[config.Config]
	e.srv.p.Current = current.Load
	q := url.Values{"secret": {"adm"}}
	conf := func() map[string]any {
		m := e.zlm(t, "getServerConfig", q)
		list, _ := m["data"].([]any)
		if zlmCode(m) != 0 || len(list) != 1 {
			t.Fatalf("getServerConfig = %v", m)
		}
		return list[0].(map[string]any)
	}
	if c := conf(); c["limits.max_viewers"] != "0" || c["hooks.on_play"] != "" {
		t.Fatalf("start-up config: max_viewers %v, on_play %v", c["limits.max_viewers"], c["hooks.on_play"])
	}
	next := config.Default()
	next.Admin.Secret = "adm"
	next.Limits.MaxViewers = 7
	next.Limits.MaxBitratePerIP = 20_000_000
	next.Hooks.OnPlay = "http://127.0.0.1:1/hook?key=secret"
	next.RTSP.Listen = ""
	current.Store(next)
	c := conf()
	for k, want := range map[string]string{"limits.max_viewers": "7", "limits.max_bitrate_per_ip": "20M",
		"hooks.on_play": "http://127.0.0.1:1/hook?key=REDACTED"} {
		if c[k] != want {
			t.Errorf("after SetConfig: %s = %v, want %q", k, c[k], want)
		}
	}
	waitLive(t, e.hub, "live/demo")
	m := e.zlm(t, "getMediaList", q)
	var schemas []any
	for _, item := range m["data"].([]any) {
		schemas = append(schemas, item.(map[string]any)["schema"])
	}
	if fmt.Sprint(schemas) != "[rtmp hls]" {
		t.Errorf("getMediaList schemas %v, want [rtmp hls] once rtsp is off", schemas)
	}

	watch(t, e.hub, "live/demo", "rtmp").CountOut(4096)
	r := e.get(t, "/api/v1/streams/live/demo?secret=adm")
	var v Stream
	if err := json.Unmarshal(r.body, &v); r.code != 200 || err != nil {
		t.Fatalf("GET stream: %d %s", r.code, r.body)
	}
	if v.BytesIn == 0 || v.BytesOut["rtmp"] != 4096 {
		t.Errorf("stream view: bytes in %d, bytes out %v", v.BytesIn, v.BytesOut)
	}
	if _, ok := v.BitrateOut["rtmp"]; !ok || !bytes.Contains(r.body, []byte(`"bitrate_in":`)) {
		t.Errorf("stream view lacks bitrates: %s", r.body)
	}
}

// TestPprof: the runtime profiles are served only when admin.pprof is on,
// and then behind the secret like every other endpoint.
func TestPprof(t *testing.T) {
	off := newEnv(t, nil)
	if r := off.get(t, "/debug/pprof/heap"); r.code != http.StatusNotFound {
		t.Errorf("pprof off: GET /debug/pprof/heap = %d, want 404", r.code)
	}
	const secret = "s3cret"
	on := newEnv(t, func(c *config.Config) { c.Admin.Secret = secret; c.Admin.Pprof = true })
	if r := on.get(t, "/debug/pprof/heap"); r.code != http.StatusUnauthorized {
		t.Errorf("pprof on, no secret: GET /debug/pprof/heap = %d, want 401", r.code)
	}
	r := on.do(t, "GET", "/debug/pprof/heap", "", secret)
	if r.code != http.StatusOK || len(r.body) == 0 {
		t.Errorf("pprof on: GET /debug/pprof/heap = %d (%d bytes), want 200 and a profile", r.code, len(r.body))
	}
	if r := on.do(t, "GET", "/debug/pprof/goroutine?debug=1", "", secret); r.code != http.StatusOK ||
		!strings.Contains(string(r.body), "goroutine profile") {
		t.Errorf("pprof on: goroutine profile = %d %.80q", r.code, r.body)
	}
}
