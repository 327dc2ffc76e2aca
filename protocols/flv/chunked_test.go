package flv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

// dialFLV sends a raw HTTP/1.1 request for path and returns the connection
// and a reader on it.
func dialFLV(t *testing.T, ts *httptest.Server, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readChunk reads one chunk of a chunked body, strictly: a bare hex size,
// CRLF, the data, CRLF.
func readChunk(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	hexSize, ok := strings.CutSuffix(line, "\r\n")
	if !ok || hexSize == "" || strings.ToLower(hexSize) != hexSize {
		return nil, fmt.Errorf("chunk size line %q", line)
	}
	n, err := strconv.ParseUint(hexSize, 16, 32)
	if err != nil {
		return nil, fmt.Errorf("chunk size line %q: %w", line, err)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, err
	}
	if string(b[n:]) != "\r\n" {
		return nil, fmt.Errorf("chunk of %d bytes not followed by CRLF: % x", n, b[n:])
	}
	return b[:n], nil
}

// The hijacked response is a valid HTTP/1.1 response for net/http's own
// parser, with the FLV headers, and its body starts with the FLV header,
// the sequence headers and a keyframe.
func TestHijackedResponse(t *testing.T) {
	_, ts := testServer(t, Params{AllowOrigin: "https://player.example"}, nil)
	_, br := dialFLV(t, ts, "/live/demo.flv")
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/live/demo.flv", nil)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	// Not res.Body.Close: it would read the endless body; the cleanup
	// closes the connection.
	if res.StatusCode != http.StatusOK || res.Proto != "HTTP/1.1" {
		t.Fatalf("status %q, proto %s", res.Status, res.Proto)
	}
	h := res.Header
	for k, want := range map[string]string{
		"Content-Type":                "video/x-flv",
		"Cache-Control":               "no-cache",
		"Access-Control-Allow-Origin": "https://player.example",
		"Vary":                        "Origin",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if _, err := http.ParseTime(h.Get("Date")); err != nil {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if !res.Close || res.ContentLength != -1 || len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
		t.Errorf("close %v, length %d, transfer encoding %v; want a chunked response that closes",
			res.Close, res.ContentLength, res.TransferEncoding)
	}
	checkStart(t, bufio.NewReader(res.Body), 60)

	// Through the default client as well.
	res, err = http.Get(ts.URL + "/live/demo.live.flv")
	if err != nil {
		t.Fatal(err)
	}
	checkStart(t, bufio.NewReader(res.Body), 10)
	res.Body.Close()
}

// Each chunk holds whole FLV tags (one chunk per batch), and the first
// holds the FLV header, the sequence headers and the cached keyframe.
func TestChunkPerBatch(t *testing.T) {
	_, ts := testServer(t, Params{}, nil)
	_, br := dialFLV(t, ts, "/live/demo.flv")
	tp, err := br.ReadString('\n')
	if err != nil || tp != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("status line %q (%v)", tp, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		if !strings.HasSuffix(line, "\r\n") || !strings.Contains(line, ": ") {
			t.Fatalf("header line %q", line)
		}
	}
	var body bytes.Buffer
	for i := 0; i < 30; i++ {
		c, err := readChunk(br)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if len(c) == 0 {
			t.Fatalf("chunk %d: last chunk while the stream is live", i)
		}
		r := bytes.NewReader(c)
		if i == 0 {
			readHeader(t, r)
		}
		sawKey := false
		for r.Len() > 0 {
			tg, err := readTag(r)
			if err != nil {
				t.Fatalf("chunk %d does not hold whole tags: %v", i, err)
			}
			if tg.typ == 9 && tg.body[1] == 1 && tg.body[0]>>4 == 1 {
				sawKey = true
			}
		}
		if i == 0 && !sawKey {
			t.Fatal("the first chunk holds no keyframe")
		}
		body.Write(c)
	}
	checkStart(t, &body, 20)
}

// endHub runs a hub with one demo stream, live/end, that ends when stop is
// called, and an FLV server in front of it.
func endHub(t *testing.T) (ts *httptest.Server, s *Server, stop func()) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	h := hub.New(hub.Params{Logger: log, StartTimeout: 300 * time.Millisecond, ProducerGrace: time.Millisecond})
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Publish("live/end", hub.Session{Protocol: "demo", Remote: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		demo.Feed(ctx, p, clip, nil) //nolint:errcheck
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-fed
			p.Close()
		})
	}
	s = New(Params{Hub: h, Logger: log})
	ts = httptest.NewServer(s)
	t.Cleanup(func() {
		stop()
		s.Close()
		ts.Close()
		http.DefaultClient.CloseIdleConnections()
		h.Close()
	})
	return ts, s, stop
}

// The response ends with the last chunk when the stream ends and when the
// server closes: the client reads a complete body, not a truncated one.
func TestResponseEnds(t *testing.T) {
	for _, how := range []string{"stream ended", "server closed"} {
		t.Run(how, func(t *testing.T) {
			ts, s, stop := endHub(t)
			res, err := http.Get(ts.URL + "/live/end.flv")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET = %d", res.StatusCode)
			}
			br := bufio.NewReader(res.Body)
			readHeader(t, br)
			for i := 0; i < 10; i++ {
				if _, err := readTag(br); err != nil {
					t.Fatal(err)
				}
			}
			if how == "server closed" {
				s.Close()
			} else {
				stop()
			}
			done := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, br)
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("body ended with %v, want a complete chunked body", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the response did not end")
			}
		})
	}
}

// A client that disconnects in the middle of a chunk, with a FIN or a RST,
// leaves no viewer and no goroutine.
func TestDisconnectMidChunk(t *testing.T) {
	h, ts := testServer(t, Params{}, nil)
	ignore := goleak.IgnoreCurrent()
	for _, rst := range []bool{false, true} {
		c, br := dialFLV(t, ts, "/live/demo.flv")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d", res.StatusCode)
		}
		// The response head is read; now part of the first chunk.
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(line), 16, 32)
		if err != nil || n < 100 {
			t.Fatalf("chunk size line %q", line)
		}
		if _, err := io.ReadFull(br, make([]byte, n/2)); err != nil {
			t.Fatal(err)
		}
		waitViewers(t, h, "flv", 1, 2*time.Second)
		if rst {
			c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
		waitViewers(t, h, "flv", 0, 3*time.Second)
	}
	goleak.VerifyNone(t, ignore)
}

// A client that never reads does not delay the others: while it is stuck
// (its socket full, its write pending until the write timeout), a reading
// viewer gets video frames at the clip's pace, 25 fps.
func TestStuckClientDoesNotDelayOthers(t *testing.T) {
	p := Params{WriteTimeout: 3 * time.Second, SendBuffer: -1} // the 4 KiB set below
	h, ts := testServer(t, p, func(ts *httptest.Server) {
		ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetWriteBuffer(4096)
			}
			return ctx
		}
	})

	res, err := http.Get(ts.URL + "/live/demo.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var mu sync.Mutex
	var frames []time.Time // arrival of each video frame
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		br := bufio.NewReaderSize(res.Body, 64<<10)
		var hdr [13]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		for {
			tg, err := readTag(br)
			if err != nil {
				return
			}
			if tg.typ == 9 && tg.body[1] == 1 {
				mu.Lock()
				frames = append(frames, time.Now())
				mu.Unlock()
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // past the cached GOP's burst

	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
	}}
	stuck, err := d.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /live/demo.flv HTTP/1.1\r\nHost: x\r\n\r\n")
	waitViewers(t, h, "flv", 2, 2*time.Second)
	time.Sleep(200 * time.Millisecond) // its buffers fill with the GOP

	from := time.Now()
	time.Sleep(1500 * time.Millisecond)
	to := time.Now()
	if n := viewers(h, "live/demo", "flv"); n != 2 {
		t.Fatalf("%d viewers at the end of the window: the stuck client left too early", n)
	}

	mu.Lock()
	var gap time.Duration
	count := 0
	prev := from
	for _, at := range frames {
		if at.Before(from) {
			continue
		}
		if at.After(to) {
			break
		}
		gap = max(gap, at.Sub(prev))
		prev = at
		count++
	}
	gap = max(gap, to.Sub(prev))
	mu.Unlock()
	t.Logf("while a client was stuck: %d video frames in %v, max gap %v", count, to.Sub(from).Round(time.Millisecond), gap)
	if gap > 250*time.Millisecond {
		t.Fatalf("the reading viewer waited %v for a frame while a client was stuck (bound 250ms)", gap)
	}
	if count < 25 { // 37 at 25 fps
		t.Fatalf("%d video frames in %v", count, to.Sub(from))
	}
	res.Body.Close()
	<-readDone
}

// noHijack hides the connection from the FLV server, as a middleware that
// wraps the ResponseWriter without Unwrap would.
type noHijack struct{ w http.ResponseWriter }

func (n noHijack) Header() http.Header         { return n.w.Header() }
func (n noHijack) Write(b []byte) (int, error) { return n.w.Write(b) }
func (n noHijack) WriteHeader(code int)        { n.w.WriteHeader(code) }
func (n noHijack) Flush()                      { http.NewResponseController(n.w).Flush() } //nolint:errcheck
func (n noHijack) SetWriteDeadline(d time.Time) error {
	return http.NewResponseController(n.w).SetWriteDeadline(d)
}

// HTTP/2, HTTP/1.0 and a ResponseWriter that cannot be hijacked are served
// through the ResponseWriter.
func TestResponseWriterPaths(t *testing.T) {
	h, _ := testServer(t, Params{}, nil)
	s := New(Params{Hub: h, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(s.Close)
	start := func(t *testing.T, handler http.Handler, tls bool) *httptest.Server {
		t.Helper()
		ts := httptest.NewUnstartedServer(handler)
		if tls {
			ts.EnableHTTP2 = true
			ts.StartTLS()
		} else {
			ts.Start()
		}
		t.Cleanup(func() {
			ts.Close()
			ts.Client().CloseIdleConnections()
		})
		return ts
	}

	t.Run("http2", func(t *testing.T) {
		ts := start(t, s, true)
		res, err := ts.Client().Get(ts.URL + "/live/demo.flv")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || res.Header.Get("Content-Type") != "video/x-flv" {
			t.Fatalf("status %d, proto %s, headers %v", res.StatusCode, res.Proto, res.Header)
		}
		checkStart(t, bufio.NewReader(res.Body), 30)
	})
	t.Run("http1.0", func(t *testing.T) {
		ts := start(t, s, false)
		_, br := dialFLV10(t, ts)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || len(res.TransferEncoding) != 0 || !res.Close {
			t.Fatalf("status %d, transfer encoding %v, close %v", res.StatusCode, res.TransferEncoding, res.Close)
		}
		checkStart(t, bufio.NewReader(res.Body), 30)
	})
	t.Run("no hijacker", func(t *testing.T) {
		ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.ServeHTTP(noHijack{w}, r)
		}), false)
		res, err := http.Get(ts.URL + "/live/demo.flv")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK || len(res.TransferEncoding) == 0 || res.Close {
			t.Fatalf("status %d, transfer encoding %v, close %v; want net/http's own chunked response",
				res.StatusCode, res.TransferEncoding, res.Close)
		}
		checkStart(t, bufio.NewReader(res.Body), 30)
	})
}

// dialFLV10 requests live/demo.flv over HTTP/1.0.
func dialFLV10(t *testing.T, ts *httptest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprint(c, "GET /live/demo.flv HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}
