package flv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/demo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSecret = "s3cret"

// testServer runs a hub with the demo clip on live/demo and sec/demo (the
// "sec" app requires play tokens) and an FLV server in front of it. tune,
// if set, adjusts the httptest server before it starts.
func testServer(t *testing.T, p Params, tune func(*httptest.Server)) (*hub.Hub, *httptest.Server) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	h := hub.New(hub.Params{Logger: log, StartTimeout: 300 * time.Millisecond,
		Authorizer: &auth.Policy{Apps: map[string]auth.AppPolicy{
			"sec": {Secret: []byte(testSecret), Play: true},
		}}})
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"live/demo", "sec/demo"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			demo.Run(ctx, h, name, clip, log) //nolint:errcheck
		}()
	}
	p.Hub = h
	if p.Logger == nil {
		p.Logger = log
	}
	if p.AllowOrigin == "" {
		p.AllowOrigin = "*"
	}
	s := New(p)
	ts := httptest.NewUnstartedServer(s)
	if tune != nil {
		tune(ts)
	}
	ts.Start()
	t.Cleanup(func() {
		s.Close()
		ts.Close()
		http.DefaultClient.CloseIdleConnections()
		cancel()
		wg.Wait()
		h.Close()
	})
	return h, ts
}

type tag struct {
	typ  byte
	ts   uint32
	body []byte
}

// readHeader reads and checks the FLV file header and PreviousTagSize0.
func readHeader(t *testing.T, r io.Reader) (flags byte) {
	t.Helper()
	var b [13]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		t.Fatalf("reading FLV header: %v", err)
	}
	if string(b[:3]) != "FLV" || b[3] != 1 || binary.BigEndian.Uint32(b[5:9]) != 9 ||
		binary.BigEndian.Uint32(b[9:13]) != 0 {
		t.Fatalf("bad FLV header % x", b)
	}
	return b[4]
}

// readTag reads one tag and checks its previous-tag-size trailer.
func readTag(r io.Reader) (tag, error) {
	var h [11]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return tag{}, err
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	tg := tag{typ: h[0], ts: uint32(h[7])<<24 | uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6])}
	if h[8] != 0 || h[9] != 0 || h[10] != 0 {
		return tg, fmt.Errorf("stream id % x", h[8:11])
	}
	tg.body = make([]byte, n+4)
	if _, err := io.ReadFull(r, tg.body); err != nil {
		return tg, err
	}
	if ps := binary.BigEndian.Uint32(tg.body[n:]); ps != uint32(n+11) {
		return tg, fmt.Errorf("previous tag size %d, want %d", ps, n+11)
	}
	tg.body = tg.body[:n]
	return tg, nil
}

// checkStart reads the header, onMetaData, the sequence headers and n
// more tags; the first video tag after the headers must be a keyframe and
// video timestamps must not go backwards.
func checkStart(t *testing.T, r io.Reader, n int) {
	t.Helper()
	if flags := readHeader(t, r); flags != flagAudio|flagVideo {
		t.Fatalf("header flags %#x, want audio+video", flags)
	}
	var got []tag
	for i := 0; i < 3+n; i++ {
		tg, err := readTag(r)
		if err != nil {
			t.Fatalf("tag %d: %v", i, err)
		}
		got = append(got, tg)
	}
	if got[0].typ != 18 || !bytes.Contains(got[0].body, []byte("onMetaData")) {
		t.Fatalf("first tag is type %d, want onMetaData", got[0].typ)
	}
	if v := got[1]; v.typ != 9 || v.body[0] != 0x17 || v.body[1] != 0 {
		t.Fatalf("second tag is not an AVC sequence header: type %d % x", v.typ, v.body[:2])
	}
	if a := got[2]; a.typ != 8 || a.body[0]>>4 != 10 || a.body[1] != 0 {
		t.Fatalf("third tag is not an AAC sequence header: type %d % x", a.typ, a.body[:2])
	}
	first, last := true, uint32(0)
	videos := 0
	for _, tg := range got[3:] {
		if tg.typ != 9 {
			continue
		}
		videos++
		if tg.body[1] != 1 {
			t.Fatalf("video tag with AVC packet type %d after the headers", tg.body[1])
		}
		if first && tg.body[0]>>4 != 1 {
			t.Fatalf("first video tag is not a keyframe: % x", tg.body[:2])
		}
		if !first && tg.ts < last {
			t.Fatalf("video timestamp went back: %d after %d", tg.ts, last)
		}
		first, last = false, tg.ts
	}
	if videos == 0 {
		t.Fatal("no video tag")
	}
}

func TestPath(t *testing.T) {
	for p, want := range map[string]string{
		"/live/x.flv":      "live/x",
		"/live/x.live.flv": "live/x",
		"/live/x":          "",
		"/live/x/y.flv":    "",
		"/x.flv":           "",
		"/live/.flv":       "",
		"/live/...flv":     "",
		"live/x.flv":       "",
		"/live/x.flv/":     "",
	} {
		got, ok := parsePath(p)
		if got != want || ok != (want != "") {
			t.Errorf("parsePath(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
}

func TestPlay(t *testing.T) {
	_, ts := testServer(t, Params{}, nil)
	for _, path := range []string{"/live/demo.flv", "/live/demo.live.flv"} {
		res, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", path, res.StatusCode)
		}
		h := res.Header
		if h.Get("Content-Type") != "video/x-flv" || h.Get("Cache-Control") != "no-cache" ||
			h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("headers: %v", h)
		}
		if res.ContentLength != -1 || len(res.TransferEncoding) == 0 || res.TransferEncoding[0] != "chunked" {
			t.Errorf("not chunked: length %d, transfer encoding %v", res.ContentLength, res.TransferEncoding)
		}
		checkStart(t, bufio.NewReader(res.Body), 60)
		res.Body.Close()
	}
}

func TestHeadersOnConfigChange(t *testing.T) {
	v1 := &hub.Track{Codec: hub.CodecH264, SPS: []byte{0x67, 0x42, 0xc0, 0x1e, 1}, PPS: []byte{0x68, 1}}
	v2 := &hub.Track{Codec: hub.CodecH264, SPS: []byte{0x67, 0x64, 0x00, 0x1f, 2}, PPS: []byte{0x68, 2}}
	a := &hub.Track{Codec: hub.CodecAAC, AudioConfig: []byte{0x12, 0x10}, SampleRate: 44100, Channels: 2}
	t1 := &hub.Tracks{Video: v1, Audio: a}
	t2 := &hub.Tracks{Video: v2, Audio: a, Start: 5 * time.Second}

	start := headers(nil, t1)
	if again := headers(nil, t1); &again[0] != &start[0] {
		t.Error("start headers are not memoised on the Tracks")
	}
	r := bytes.NewReader(start)
	readHeader(t, r)
	for _, want := range []byte{18, 9, 8} {
		tg, err := readTag(r)
		if err != nil || tg.typ != want {
			t.Fatalf("start tag type %d (%v), want %d", tg.typ, err, want)
		}
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes after the start headers", r.Len())
	}

	r = bytes.NewReader(headers(t1, t2))
	tg, err := readTag(r)
	if err != nil || tg.typ != 9 || tg.ts != 5000 || tg.body[1] != 0 || r.Len() != 0 {
		t.Fatalf("change headers: type %d ts %d, %d bytes left, err %v; want one video sequence header at 5000",
			tg.typ, tg.ts, r.Len(), err)
	}
	if b := headers(t1, &hub.Tracks{Video: v1, Audio: a}); len(b) != 0 {
		t.Fatalf("unchanged configuration gave %d header bytes", len(b))
	}
}

func sign(stream string) string {
	exp := time.Now().Add(time.Hour).Unix()
	return "expires=" + strconv.FormatInt(exp, 10) + "&token=" +
		auth.Sign(auth.SHA256, []byte(testSecret), stream, exp, netip.Addr{})
}

func TestAdmission(t *testing.T) {
	_, ts := testServer(t, Params{}, nil)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"expires=9999999999&token=00", http.StatusForbidden},
		{sign("sec/other"), http.StatusForbidden},
		{sign("sec/demo"), http.StatusOK},
	} {
		res, err := http.Get(ts.URL + "/sec/demo.flv?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.want {
			t.Errorf("query %q: %d, want %d", tc.query, res.StatusCode, tc.want)
		}
		if tc.want == http.StatusOK {
			readHeader(t, res.Body)
		} else if b, _ := io.ReadAll(res.Body); strings.Contains(strings.ToLower(string(b)), "token") {
			t.Errorf("refusal says why: %q", b)
		}
		res.Body.Close()
	}
}

func TestNotFound(t *testing.T) {
	_, ts := testServer(t, Params{}, nil)
	for _, path := range []string{"/live/nothing.flv", "/live/demo.mp4", "/a/b/c.flv"} {
		res, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, res.StatusCode)
		}
	}
}

func TestCORS(t *testing.T) {
	_, ts := testServer(t, Params{AllowOrigin: "https://player.example"}, nil)
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/live/demo.flv", nil)
	req.Header.Set("Origin", "https://player.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent ||
		res.Header.Get("Access-Control-Allow-Origin") != "https://player.example" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Fatalf("preflight = %d %v", res.StatusCode, res.Header)
	}
	res, err = http.Head(ts.URL + "/live/demo.flv")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "video/x-flv" {
		t.Fatalf("HEAD = %d %v", res.StatusCode, res.Header)
	}
	req, _ = http.NewRequest(http.MethodPost, ts.URL+"/live/demo.flv", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST = %d, want 405", res.StatusCode)
	}
}

func viewers(h *hub.Hub, name, proto string) int {
	in, ok := h.Stream(name)
	if !ok {
		return 0
	}
	return in.Viewers[proto]
}

func waitViewers(t *testing.T, h *hub.Hub, proto string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for viewers(h, "live/demo", proto) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s viewers = %d, want %d", proto, viewers(h, "live/demo", proto), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client that never reads is dropped after the write timeout; a viewer
// reading alongside it keeps getting media at live pace.
func TestNeverReadingClientDropped(t *testing.T) {
	logs := &syncBuffer{}
	p := Params{WriteTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		SendBuffer: -1} // the 4 KiB set below
	h, ts := testServer(t, p, func(ts *httptest.Server) {
		ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetWriteBuffer(4096)
			}
			return ctx
		}
	})
	addr := ts.Listener.Addr().String()

	// The good viewer.
	res, err := http.Get(ts.URL + "/live/demo.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 32<<10)
		for {
			n, err := res.Body.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()

	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
	}}
	stalled, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /live/demo.flv HTTP/1.1\r\nHost: x\r\n\r\n")
	waitViewers(t, h, "flv", 2, 2*time.Second)
	// Dropped within the timeout plus the time to fill the buffers.
	waitViewers(t, h, "flv", 1, 5*time.Second)

	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), `reason="write timeout (slow viewer)"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no slow-viewer reason logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := got.Load()
	time.Sleep(500 * time.Millisecond)
	if after := got.Load(); after <= before {
		t.Fatalf("the reading viewer got nothing more after the stalled one was dropped (%d bytes)", after)
	}
	res.Body.Close()
	<-readDone
}

// A client that disconnects mid-stream leaves no viewer and no goroutine
// (goleak checks the package at exit).
func TestDisconnectMidStream(t *testing.T) {
	h, ts := testServer(t, Params{}, nil)
	for i := 0; i < 3; i++ {
		res, err := http.Get(ts.URL + "/live/demo.flv")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(res.Body, make([]byte, 3000+i*777)); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	waitViewers(t, h, "flv", 0, 3*time.Second)

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/live/demo.flv", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitViewers(t, h, "ws-flv", 0, 3*time.Second)
}

// wsReader concatenates the binary messages of a WebSocket connection.
type wsReader struct {
	c   *websocket.Conn
	buf []byte
}

func (r *wsReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		typ, b, err := r.c.ReadMessage()
		if err != nil {
			return 0, err
		}
		if typ != websocket.BinaryMessage {
			return 0, fmt.Errorf("message type %d", typ)
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func TestWebSocket(t *testing.T) {
	_, ts := testServer(t, Params{}, nil)
	base := "ws" + strings.TrimPrefix(ts.URL, "http")
	hdr := http.Header{"Origin": {"https://elsewhere.example"}}
	c, _, err := websocket.DefaultDialer.Dial(base+"/live/demo.live.flv", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	checkStart(t, &wsReader{c: c}, 40)

	_, res, err := websocket.DefaultDialer.Dial(base+"/sec/demo.flv", nil)
	if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without token: err %v, response %v; want 401", err, res)
	}
	c2, _, err := websocket.DefaultDialer.Dial(base+"/sec/demo.flv?"+sign("sec/demo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	readHeader(t, &wsReader{c: c2})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
