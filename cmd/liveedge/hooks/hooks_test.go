package hooks

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
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/demo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hookServer is the webhook service of a test: it records every call by
// path and answers with the handler of that path (default {"code":0}).
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	calls    map[string][]map[string]any
	handlers map[string]http.HandlerFunc
	notify   chan string // receives each call's path, if not full
}

func newHookServer(t *testing.T) *hookServer {
	t.Helper()
	s := &hookServer{calls: map[string][]map[string]any{}, handlers: map[string]http.HandlerFunc{},
		notify: make(chan string, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Method != http.MethodPost ||
			r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("hook %s: method %s, type %q, body error %v", r.URL.Path, r.Method, r.Header.Get("Content-Type"), err)
		}
		s.mu.Lock()
		s.calls[r.URL.Path] = append(s.calls[r.URL.Path], body)
		hf := s.handlers[r.URL.Path]
		s.mu.Unlock()
		select {
		case s.notify <- r.URL.Path:
		default:
		}
		if hf != nil {
			hf(w, r)
			return
		}
		io.WriteString(w, `{"code":0,"msg":"success"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *hookServer) handle(path string, f http.HandlerFunc) {
	s.mu.Lock()
	s.handlers[path] = f
	s.mu.Unlock()
}

func (s *hookServer) got(path string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.calls[path]...)
}

// waitCall waits for a call of path.
func (s *hookServer) waitCall(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case p := <-s.notify:
			if p == path {
				return
			}
		case <-deadline:
			t.Fatalf("no %s call within %v", path, timeout)
		}
	}
}

func reply(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }
}

// syncBuf is a log sink safe for concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testConfig(srv *hookServer) config.HooksConfig {
	c := config.Default().Hooks
	c.OnPlay = srv.URL + "/on_play"
	c.OnPublish = srv.URL + "/on_publish"
	c.OnStreamChanged = srv.URL + "/on_stream_changed"
	c.OnStreamNoneReader = srv.URL + "/on_stream_none_reader"
	c.OnStreamNotFound = srv.URL + "/on_stream_not_found"
	c.Timeout = config.Duration(300 * time.Millisecond)
	c.MediaServerID = "edge-test"
	return c
}

func newHooks(t *testing.T, cfg config.HooksConfig, log *slog.Logger) *Hooks {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := New(Params{Config: cfg, Logger: log, Schemas: []string{"rtmp"}})
	t.Cleanup(h.Close)
	return h
}

// newHub returns a hub whose admission is the hooks' on top of base and
// whose events go to the hooks.
func newHub(t *testing.T, h *Hooks, base hub.Authorizer, log *slog.Logger) *hub.Hub {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hb := hub.New(hub.Params{Logger: log, Authorizer: h.Authorizer(base), Events: h.Event,
		ProducerGrace: 50 * time.Millisecond, StartTimeout: 2 * time.Second})
	t.Cleanup(hb.Close)
	h.Attach(hb, nil)
	return hb
}

func playReq(stream, token string) auth.Request {
	q := url.Values{"token": {token}, "x": {"1"}}
	return auth.Request{Action: auth.Play, Stream: stream, Query: q, ClientIP: netip.MustParseAddr("192.0.2.7")}
}

var viewer = hub.Session{Protocol: "rtmp", Remote: "192.0.2.7:40001"}

func TestAdmitAllowDeny(t *testing.T) {
	srv := newHookServer(t)
	srv.handle("/on_play", func(w http.ResponseWriter, r *http.Request) {
		// The token rides in params; the test's "good" token is allowed.
		srv.mu.Lock()
		last := srv.calls["/on_play"][len(srv.calls["/on_play"])-1]
		srv.mu.Unlock()
		q, _ := url.ParseQuery(last["params"].(string))
		if q.Get("token") == "good" {
			io.WriteString(w, `{"code":0,"msg":"success"}`)
			return
		}
		io.WriteString(w, `{"code":-1,"msg":"banned viewer"}`)
	})
	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := testConfig(srv)
	cfg.CacheTTL = 0
	h := newHooks(t, cfg, log)
	hb := newHub(t, h, nil, log)

	if err := hb.Admit(playReq("live/a", "good"), viewer); err != nil {
		t.Fatalf("allowed viewer: %v", err)
	}
	if err := hb.Admit(playReq("live/a", "bad-secret-token"), viewer); !errors.Is(err, hub.ErrUnauthorized) {
		t.Fatalf("denied viewer: %v", err)
	}
	// Publish goes to on_publish (allowed by default).
	if err := hb.Admit(auth.Request{Action: auth.Publish, Stream: "live/a"}, hub.Session{Protocol: "rtmp", Remote: "[::1]:5"}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	calls := srv.got("/on_play")
	if len(calls) != 2 {
		t.Fatalf("on_play calls = %d, want 2", len(calls))
	}
	want := map[string]any{"mediaServerId": "edge-test", "app": "live", "stream": "a", "vhost": "__defaultVhost__",
		"schema": "rtmp", "params": "token=good&x=1", "ip": "192.0.2.7", "port": float64(40001), "id": "192.0.2.7:40001"}
	for k, v := range want {
		if calls[0][k] != v {
			t.Errorf("on_play %s = %#v, want %#v (body %v)", k, calls[0][k], v, calls[0])
		}
	}
	if pub := srv.got("/on_publish"); len(pub) != 1 || pub[0]["ip"] != "::1" || pub[0]["port"] != float64(5) {
		t.Fatalf("on_publish calls = %v", pub)
	}
	// The hub logged the refusal with the hook's reason, never the token.
	out := logs.String()
	if !strings.Contains(out, "access refused") || !strings.Contains(out, "banned viewer") {
		t.Fatalf("refusal not logged with its reason:\n%s", out)
	}
	if strings.Contains(out, "bad-secret-token") {
		t.Fatalf("the token was logged:\n%s", out)
	}
}

// The built-in token policy runs first: a request it refuses never reaches
// the hook.
func TestAdmitPolicyFirst(t *testing.T) {
	srv := newHookServer(t)
	h := newHooks(t, testConfig(srv), nil)
	secret := []byte("s3cret")
	hb := newHub(t, h, &auth.Policy{Default: auth.AppPolicy{Secret: secret, Play: true}}, nil)
	if err := hb.Admit(playReq("live/a", "forged"), viewer); !errors.Is(err, hub.ErrUnauthorized) {
		t.Fatalf("forged token: %v", err)
	}
	if n := len(srv.got("/on_play")); n != 0 {
		t.Fatalf("hook called %d times for a request the policy refused", n)
	}
	q := auth.Signer{Secret: secret}.Query("live/a", time.Minute, time.Now(), netip.Addr{})
	if err := hb.Admit(auth.Request{Action: auth.Play, Stream: "live/a", Query: q}, viewer); err != nil {
		t.Fatalf("signed token: %v", err)
	}
	if n := len(srv.got("/on_play")); n != 1 {
		t.Fatalf("hook called %d times, want 1", n)
	}
}

func TestAdmitFailures(t *testing.T) {
	block := make(chan struct{})
	srv := newHookServer(t)
	srv.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	srv.handle("/500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) })
	srv.handle("/garbage", reply(`<html>not json</html>`))
	srv.handle("/nocode", reply(`{"msg":"success"}`))
	defer close(block)
	const timeout = 200 * time.Millisecond
	for _, path := range []string{"/slow", "/500", "/garbage", "/nocode"} {
		for _, policy := range []string{config.FailureClosed, config.FailureOpen} {
			t.Run(path[1:]+"/"+policy, func(t *testing.T) {
				cfg := testConfig(srv)
				cfg.OnPlay, cfg.Failure, cfg.Timeout = srv.URL+path, policy, config.Duration(timeout)
				h := newHooks(t, cfg, nil)
				hb := newHub(t, h, nil, nil)
				t0 := time.Now()
				err := hb.Admit(playReq("live/a", "t"), viewer)
				if d := time.Since(t0); d > timeout+500*time.Millisecond {
					t.Fatalf("Admit took %v, timeout %v", d, timeout)
				}
				if policy == config.FailureClosed && !errors.Is(err, hub.ErrUnauthorized) {
					t.Fatalf("fail closed: %v, want a refusal", err)
				}
				if policy == config.FailureOpen && err != nil {
					t.Fatalf("fail open: %v, want allowed", err)
				}
				// Failures are not cached: the next viewer asks again.
				hb.Admit(playReq("live/a", "t"), viewer)
				if n := len(srv.got(path)); n < 2 {
					t.Fatalf("%s called %d times, want a new call after a failure", path, n)
				}
				srv.mu.Lock()
				delete(srv.calls, path)
				srv.mu.Unlock()
			})
		}
	}
}

func TestAdmitCache(t *testing.T) {
	srv := newHookServer(t)
	srv.handle("/on_publish", reply(`{"code":-2,"msg":"no"}`))
	cfg := testConfig(srv)
	cfg.CacheTTL = config.Duration(300 * time.Millisecond)
	h := newHooks(t, cfg, nil)
	hb := newHub(t, h, nil, nil)
	for range 5 { // HLS: playlist, segments, parts
		if err := hb.Admit(playReq("live/a", "tok"), viewer); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(srv.got("/on_play")); n != 1 {
		t.Fatalf("on_play called %d times for one viewer within cache_ttl, want 1", n)
	}
	// Another token, IP or stream is another answer.
	hb.Admit(playReq("live/a", "other"), viewer)
	r := playReq("live/a", "tok")
	r.ClientIP = netip.MustParseAddr("192.0.2.8")
	hb.Admit(r, viewer)
	hb.Admit(playReq("live/b", "tok"), viewer)
	if n := len(srv.got("/on_play")); n != 4 {
		t.Fatalf("on_play called %d times, want 4", n)
	}
	// A denial is cached too.
	pub := auth.Request{Action: auth.Publish, Stream: "live/a"}
	for range 3 {
		if err := hb.Admit(pub, viewer); !errors.Is(err, hub.ErrUnauthorized) {
			t.Fatalf("publish: %v", err)
		}
	}
	if n := len(srv.got("/on_publish")); n != 1 {
		t.Fatalf("on_publish called %d times, want 1", n)
	}
	// After the TTL the hook is asked again.
	time.Sleep(350 * time.Millisecond)
	hb.Admit(playReq("live/a", "tok"), viewer)
	if n := len(srv.got("/on_play")); n != 5 {
		t.Fatalf("on_play called %d times after the TTL, want 5", n)
	}

	// Viewers asking at the same time share one call.
	slow := make(chan struct{})
	srv.handle("/on_play", func(w http.ResponseWriter, r *http.Request) {
		<-slow
		io.WriteString(w, `{"code":0}`)
	})
	var wg sync.WaitGroup
	var fails atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if hb.Admit(playReq("live/c", "tok"), viewer) != nil {
				fails.Add(1)
			}
		}()
	}
	srv.waitCall(t, "/on_play", 2*time.Second)
	time.Sleep(20 * time.Millisecond)
	close(slow)
	wg.Wait()
	if n := len(srv.got("/on_play")); n != 6 || fails.Load() != 0 {
		t.Fatalf("on_play called %d times (want 6), %d refused", n, fails.Load())
	}
}

// A saturated pool fails within the timeout; it never queues.
func TestAdmitConcurrencyBound(t *testing.T) {
	release := make(chan struct{})
	srv := newHookServer(t)
	srv.handle("/on_play", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"code":0}`)
	})
	cfg := testConfig(srv)
	cfg.MaxConcurrency, cfg.Timeout = 2, config.Duration(500*time.Millisecond)
	h := newHooks(t, cfg, nil)
	hb := newHub(t, h, nil, nil)
	// Two viewers' calls hang in the hook and hold both slots.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hb.Admit(playReq("live/a", fmt.Sprint("busy", i)), viewer)
		}()
	}
	srv.waitCall(t, "/on_play", 2*time.Second)
	srv.waitCall(t, "/on_play", 2*time.Second)
	// A third viewer gets no slot: it is refused (fail closed) within the
	// timeout, and nothing more is sent.
	t0 := time.Now()
	err := hb.Admit(playReq("live/a", "third"), viewer)
	d := time.Since(t0)
	if !errors.Is(err, hub.ErrUnauthorized) || d > cfg.Timeout.Std()+500*time.Millisecond {
		t.Fatalf("saturated: %v after %v, want a refusal within ~%v", err, d, cfg.Timeout)
	}
	close(release)
	wg.Wait()
	if n := len(srv.got("/on_play")); n > 3 {
		t.Fatalf("hook calls = %d, want at most 3", n)
	}

	// The bound itself: with every slot taken, a call waits no longer than
	// its timeout and sends nothing.
	for range cap(h.conf().c.sem) {
		h.conf().c.sem <- struct{}{}
	}
	// A call that took a slot just as its own deadline passed may still
	// reach the server: count once nothing has arrived for a while.
	before := len(srv.got("/on_play"))
	for settled := time.Now(); time.Since(settled) < 300*time.Millisecond; time.Sleep(20 * time.Millisecond) {
		if n := len(srv.got("/on_play")); n != before {
			before, settled = n, time.Now()
		}
	}
	t0 = time.Now()
	err = hb.Admit(playReq("live/a", "fourth"), viewer)
	if d := time.Since(t0); !errors.Is(err, hub.ErrUnauthorized) || d < cfg.Timeout.Std()-50*time.Millisecond || d > cfg.Timeout.Std()+500*time.Millisecond {
		t.Fatalf("full pool: %v after %v", err, d)
	}
	if n := len(srv.got("/on_play")); n != before {
		t.Fatalf("a call was sent with the pool full")
	}
	for range cap(h.conf().c.sem) {
		<-h.conf().c.sem
	}
	if err := hb.Admit(playReq("live/a", "fifth"), viewer); err != nil {
		t.Fatalf("after the pool drained: %v", err)
	}
}

func TestStreamChangedAndNoneReader(t *testing.T) {
	srv := newHookServer(t)
	cfg := testConfig(srv)
	cfg.NoneReaderDelay = config.Duration(150 * time.Millisecond)
	h := newHooks(t, cfg, nil)
	hb := newHub(t, h, nil, nil)
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	p, err := hb.Publish("live/ev", hub.Session{Protocol: "rtmp", Remote: "192.0.2.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTracks(clip.Video, clip.Audio); err != nil {
		t.Fatal(err)
	}
	srv.waitCall(t, "/on_stream_changed", 2*time.Second)
	got := srv.got("/on_stream_changed")
	if len(got) != 1 || got[0]["regist"] != true || got[0]["app"] != "live" || got[0]["stream"] != "ev" ||
		got[0]["vhost"] != "__defaultVhost__" || got[0]["schema"] != "rtmp" || got[0]["mediaServerId"] != "edge-test" ||
		got[0]["protocol"] != "rtmp" {
		t.Fatalf("on_stream_changed = %v", got)
	}
	feedCtx, stopFeed := context.WithCancel(context.Background())
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		demo.Feed(feedCtx, p, clip, nil)
	}()
	defer func() { stopFeed(); <-fed }()

	// A viewer comes and goes; nobody comes back: none_reader after the
	// delay, not before.
	sub, err := hb.Subscribe(context.Background(), "live/ev", viewer)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	left := time.Now()
	srv.waitCall(t, "/on_stream_none_reader", 2*time.Second)
	if d := time.Since(left); d < 150*time.Millisecond {
		t.Fatalf("on_stream_none_reader after %v, before none_reader_delay", d)
	}
	if nr := srv.got("/on_stream_none_reader"); len(nr) != 1 || nr[0]["stream"] != "ev" || nr[0]["app"] != "live" {
		t.Fatalf("on_stream_none_reader = %v", nr)
	}

	// A viewer that returns within the delay cancels it.
	sub, err = hb.Subscribe(context.Background(), "live/ev", viewer)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	sub, err = hb.Subscribe(context.Background(), "live/ev", viewer)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(srv.got("/on_stream_none_reader")); n != 1 {
		t.Fatalf("on_stream_none_reader called %d times while a viewer watched", n)
	}

	// {"close":true} ends the stream.
	srv.handle("/on_stream_none_reader", reply(`{"code":0,"close":true}`))
	sub.Close()
	srv.waitCall(t, "/on_stream_none_reader", 2*time.Second)
	select {
	case <-p.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("close:true did not end the stream")
	}
	stopFeed()
	<-fed
	p.Close()
	srv.waitCall(t, "/on_stream_changed", 2*time.Second)
	got = srv.got("/on_stream_changed")
	if len(got) != 2 || got[1]["regist"] != false || got[1]["stream"] != "ev" {
		t.Fatalf("on_stream_changed = %v, want regist true then false", got)
	}
}

// The publisher leaving ends the stream: regist false.
func TestStreamChangedPublisherLeaves(t *testing.T) {
	srv := newHookServer(t)
	h := newHooks(t, testConfig(srv), nil)
	hb := newHub(t, h, nil, nil)
	clip, _ := demo.Default()
	p, err := hb.Publish("live/pub", hub.Session{Protocol: "rtmp"})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTracks(clip.Video, clip.Audio)
	p.Close()
	srv.waitCall(t, "/on_stream_changed", 2*time.Second)
	srv.waitCall(t, "/on_stream_changed", 2*time.Second)
	got := srv.got("/on_stream_changed")
	if len(got) != 2 || got[0]["regist"] != true || got[1]["regist"] != false {
		t.Fatalf("on_stream_changed = %v", got)
	}
}

// A slow event hook never delays media, and a full queue drops events
// instead of blocking the hub.
func TestSlowEventHookNeverBlocksMedia(t *testing.T) {
	release := make(chan struct{})
	srv := newHookServer(t)
	srv.handle("/on_stream_changed", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"code":0}`)
	})
	defer close(release)
	cfg := testConfig(srv)
	cfg.Timeout = config.Duration(5 * time.Second)
	h := New(Params{Config: cfg, Logger: slog.New(slog.DiscardHandler), QueueSize: 2, Workers: 1})
	defer h.Close()
	hb := newHub(t, h, nil, nil)
	clip, _ := demo.Default()

	p, err := hb.Publish("live/m", hub.Session{Protocol: "rtmp"})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTracks(clip.Video, clip.Audio)
	srv.waitCall(t, "/on_stream_changed", 2*time.Second) // the worker is now stuck in the hook
	// Many streams start and end meanwhile: the queue overflows.
	t0 := time.Now()
	for i := range 20 {
		q, err := hb.Publish(fmt.Sprintf("live/x%d", i), hub.Session{Protocol: "rtmp"})
		if err != nil {
			t.Fatal(err)
		}
		q.SetTracks(clip.Video, clip.Audio)
		q.Close()
	}
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Fatalf("40 events took %v: the hub waited for the hooks", d)
	}
	if h.Dropped() == 0 {
		t.Fatal("no event dropped with a full queue")
	}

	// A viewer keeps receiving while the hook sleeps.
	sub, err := hb.Subscribe(context.Background(), "live/m", viewer)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		demo.Feed(ctx, p, clip, nil)
	}()
	defer func() { cancel(); <-fed; p.Close() }()
	got := 0
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer rcancel()
	buf := make([]*hub.Unit, 0, 16)
	for got < 30 {
		us, err := sub.Next(rctx, buf)
		if err != nil {
			t.Fatalf("viewer got %d units, then %v", got, err)
		}
		got += len(us)
	}
}

// fakePuller records what on_stream_not_found asks of the source manager.
type fakePuller struct {
	mu      sync.Mutex
	added   []source.Proxy
	removed []string
	wants   chan string
}

func (f *fakePuller) AddProxy(p source.Proxy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, p)
	return nil
}

func (f *fakePuller) RemoveProxy(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, s)
	return nil
}

func (f *fakePuller) Want(name string) { f.wants <- name }

func TestNotFound(t *testing.T) {
	srv := newHookServer(t)
	srv.handle("/on_stream_not_found", func(w http.ResponseWriter, r *http.Request) {
		srv.mu.Lock()
		calls := srv.calls["/on_stream_not_found"]
		body := calls[len(calls)-1]
		srv.mu.Unlock()
		switch body["stream"] {
		case "known":
			io.WriteString(w, `{"code":0,"msg":"success","url":"rtmp://origin.example/live/known?k=v"}`)
		case "bad":
			io.WriteString(w, `{"code":0,"url":"http://origin.example/x.flv"}`)
		default:
			io.WriteString(w, `{"code":0,"msg":"success"}`)
		}
	})
	h := newHooks(t, testConfig(srv), nil)
	hb := newHub(t, h, nil, nil)
	fp := &fakePuller{wants: make(chan string, 4)}
	h.Attach(hb, fp)

	h.NotFound("live/known")
	select {
	case name := <-fp.wants:
		if name != "live/known" {
			t.Fatalf("Want(%q)", name)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream the hook named was not pulled")
	}
	fp.mu.Lock()
	added := fp.added
	fp.mu.Unlock()
	if len(added) != 1 || added[0].Stream != "live/known" || added[0].Mode != config.ModeOnDemand ||
		len(added[0].Origins) != 1 || added[0].Origins[0] != "rtmp://origin.example/live/known?k=v" {
		t.Fatalf("AddProxy = %+v", added)
	}
	calls := srv.got("/on_stream_not_found")
	if len(calls) != 1 || calls[0]["app"] != "live" || calls[0]["vhost"] != "__defaultVhost__" || calls[0]["mediaServerId"] != "edge-test" {
		t.Fatalf("on_stream_not_found = %v", calls)
	}

	// No url, or one we cannot pull: nothing is added.
	h.NotFound("live/none")
	h.NotFound("live/bad")
	srv.waitCall(t, "/on_stream_not_found", 2*time.Second)
	srv.waitCall(t, "/on_stream_not_found", 2*time.Second)
	time.Sleep(50 * time.Millisecond)
	fp.mu.Lock()
	n := len(fp.added)
	fp.mu.Unlock()
	if n != 1 || len(fp.wants) != 0 {
		t.Fatalf("AddProxy calls = %d, Want calls pending = %d; want 1 and 0", n, len(fp.wants))
	}

	// The pulled stream ends: its proxy goes, so the hook is asked again
	// next time.
	clip, _ := demo.Default()
	p, err := hb.Publish("live/known", hub.Session{Protocol: "pull"})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTracks(clip.Video, clip.Audio)
	p.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		fp.mu.Lock()
		removed := fp.removed
		fp.mu.Unlock()
		if len(removed) == 1 && removed[0] == "live/known" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RemoveProxy calls = %q", removed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A failing hook's error, which the hub logs, does not carry the hook
// URL (it may hold the service's secret).
func TestFailureHidesHookURL(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	addr := ln.Listener.Addr().String()
	ln.Close() // nothing listens there now
	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := config.Default().Hooks
	cfg.OnPlay = "http://" + addr + "/on_play?secret=hook-service-secret"
	h := newHooks(t, cfg, log)
	hb := newHub(t, h, nil, log)
	if err := hb.Admit(playReq("live/a", "t"), viewer); !errors.Is(err, hub.ErrUnauthorized) {
		t.Fatalf("unreachable hook, fail closed: %v", err)
	}
	if out := logs.String(); !strings.Contains(out, "access refused") || strings.Contains(out, "hook-service-secret") {
		t.Fatalf("log:\n%s", out)
	}
}

// TestStreamChangedPerSchema: as ZLMediaKit does, on_stream_changed is
// posted once per schema (rtmp, rtsp, hls by default), in order, when the
// stream starts and again when it ends, with ZLMediaKit's field names.
func TestStreamChangedPerSchema(t *testing.T) {
	srv := newHookServer(t)
	h := New(Params{Config: testConfig(srv), Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(h.Close)
	hb := newHub(t, h, nil, nil)
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	p, err := hb.Publish("live/sch", hub.Session{Protocol: "rtmp", Remote: "192.0.2.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTracks(clip.Video, clip.Audio); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		srv.waitCall(t, "/on_stream_changed", 2*time.Second)
	}
	p.Close()
	for range 3 {
		srv.waitCall(t, "/on_stream_changed", 2*time.Second)
	}
	got := srv.got("/on_stream_changed")
	if len(got) != 6 {
		t.Fatalf("%d on_stream_changed calls, want 6: %v", len(got), got)
	}
	for i, c := range got {
		want := map[string]any{"mediaServerId": "edge-test", "app": "live", "stream": "sch", "vhost": "__defaultVhost__",
			"schema": DefaultSchemas[i%3], "regist": i < 3, "protocol": "rtmp"}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("call %d: %s = %v, want %v (%v)", i, k, c[k], v, c)
			}
		}
	}
}

// TestReconfigure: new hook settings apply at once, without a new Hooks:
// a cached refusal from the old on_play is dropped and the new URL is
// asked, the failure policy switches, a hook that was off turns on, and
// mediaServerId and schemas change.
func TestReconfigure(t *testing.T) {
	srv := newHookServer(t)
	srv.handle("/deny", reply(`{"code":1,"msg":"no"}`))
	cfg := testConfig(srv)
	cfg.OnPlay = srv.URL + "/deny"
	cfg.OnStreamChanged = ""
	h := newHooks(t, cfg, nil)
	hb := newHub(t, h, nil, nil)
	if err := hb.Admit(playReq("live/a", "tok"), viewer); !errors.Is(err, hub.ErrUnauthorized) {
		t.Fatalf("old on_play: %v, want a refusal", err)
	}

	// A new on_play that allows: the cached refusal is not used.
	cfg2 := cfg
	cfg2.OnPlay = srv.URL + "/on_play"
	cfg2.OnStreamChanged = srv.URL + "/on_stream_changed"
	cfg2.MediaServerID = "edge-2"
	h.Reconfigure(cfg2, []string{"rtmp", "hls"})
	if err := hb.Admit(playReq("live/a", "tok"), viewer); err != nil {
		t.Fatalf("new on_play: %v", err)
	}
	if n := len(srv.got("/on_play")); n != 1 {
		t.Fatalf("new on_play called %d times, want 1", n)
	}

	// on_stream_changed, off at the start, is posted with the new id and
	// schemas.
	clip, _ := demo.Default()
	p, err := hb.Publish("live/re", hub.Session{Protocol: "rtmp"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SetTracks(clip.Video, clip.Audio); err != nil {
		t.Fatal(err)
	}
	srv.waitCall(t, "/on_stream_changed", 2*time.Second)
	srv.waitCall(t, "/on_stream_changed", 2*time.Second)
	got := srv.got("/on_stream_changed")
	if len(got) != 2 || got[0]["schema"] != "rtmp" || got[1]["schema"] != "hls" || got[0]["mediaServerId"] != "edge-2" {
		t.Fatalf("on_stream_changed = %v", got)
	}

	// A failing hook, with the policy switched from closed to open, and a
	// shorter timeout (a new client).
	srv.handle("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	cfg3 := cfg2
	cfg3.OnPlay = srv.URL + "/fail"
	cfg3.Timeout = config.Duration(200 * time.Millisecond)
	h.Reconfigure(cfg3, nil)
	if err := hb.Admit(playReq("live/b", "tok"), viewer); !errors.Is(err, hub.ErrUnauthorized) {
		t.Fatalf("failing hook, failure closed: %v", err)
	}
	cfg3.Failure = config.FailureOpen
	h.Reconfigure(cfg3, nil)
	if err := hb.Admit(playReq("live/b", "tok"), viewer); err != nil {
		t.Fatalf("failing hook, failure open: %v", err)
	}
	if st := h.conf(); st.c == nil || cap(st.c.sem) != cfg3.MaxConcurrency || st.c.http.Timeout != cfg3.Timeout.Std() {
		t.Fatalf("client not rebuilt for the new timeout")
	}
}
