package rtmp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
	"github.com/liveedge/liveedge/protocols/internal/feedtest"
)

// TestAppendMessageParsesWithIndependentReader checks the pre-chunked
// output against gortmplib's chunk reader: small, multi-chunk and
// extended-timestamp messages, each decodable from its own first byte.
func TestAppendMessageParsesWithIndependentReader(t *testing.T) {
	cases := []struct {
		name string
		ts   uint32
		size int
	}{
		{"small", 1000, 100},
		{"exactly one chunk", 5, chunkSize},
		{"three chunks", 77, 2*chunkSize + 10},
		{"extended timestamp", 0x1000000, 300},
		{"extended timestamp, two chunks", 0xffffff, chunkSize + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := make([]byte, tc.size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			b := appendMessage(nil, csidVideo, 9, tc.ts, body)
			if len(b) > messageSize(len(body)) {
				t.Fatalf("size %d exceeds bound %d", len(b), messageSize(len(body)))
			}
			bc := bytecounter.NewReader(bytes.NewReader(b))
			r := rawmessage.NewReader(bc, bc, func(uint32) error { return nil })
			if err := r.SetChunkSize(chunkSize); err != nil {
				t.Fatal(err)
			}
			m, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != 9 || m.ChunkStreamID != csidVideo || !bytes.Equal(m.Body, body) ||
				uint32(m.Timestamp/time.Millisecond) != tc.ts || m.MessageStreamID != 0x1000000 {
				t.Fatalf("got type=%d csid=%d ts=%v msid=%#x len=%d", m.Type, m.ChunkStreamID, m.Timestamp,
					m.MessageStreamID, len(m.Body))
			}
		})
	}
}

// tlog sends the server's log to the test's log, shown on failure.
type tlog struct{ t *testing.T }

func (l tlog) Write(b []byte) (int, error) {
	l.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

type testEnv struct {
	hub *hub.Hub
	srv *Server
}

func newTestEnv(t *testing.T, p Params, hp hub.Params) *testEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hp.Logger = log
	h := hub.New(hp)
	p.Listen = "127.0.0.1:0"
	p.Hub = h
	p.Logger = log
	s, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		s.Close()
	})
	return &testEnv{hub: h, srv: s}
}

func (e *testEnv) url(path string) *url.URL {
	u, _ := url.Parse("rtmp://" + e.srv.Addr().String() + "/" + path)
	return u
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// feed writes the demo clip to a producer as fast as possible, n loops.
func feed(t *testing.T, p *hub.Producer, loops int) { feedPaced(t, p, loops, 0) }

// feedPaced writes n loops of the demo clip at speed times real time
// (0: as fast as possible).
func feedPaced(t *testing.T, p *hub.Producer, loops int, speed float64) {
	t.Helper()
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTracks(clip.Video, clip.Audio); err != nil {
		t.Fatal(err)
	}
	if err := feedtest.Loops(p, clip, 0, loops, speed); err != nil {
		t.Fatal(err)
	}
}

// dialPlayer connects a play client; rcvbuf > 0 shrinks its receive buffer.
func dialPlayer(t *testing.T, u *url.URL, rcvbuf int) *gortmplib.Client {
	t.Helper()
	d := &net.Dialer{}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}
	}
	c := &gortmplib.Client{URL: u, DialContext: d.DialContext}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestPlayerStartsOnKeyframeWithHeaders(t *testing.T) {
	e := newTestEnv(t, Params{}, hub.Params{GOP: cache.Limits{MaxFrames: 2048}})
	p, err := e.hub.Publish("live/a", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, p, 1) // the GOP cache now holds the clip's last GOP

	c := dialPlayer(t, e.url("live/a"), 0)
	r := &gortmplib.Reader{Conn: c}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	var video, audio bool
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *codecs.H264:
			video = true
			first := true
			r.OnDataH264(tr, func(_, _ time.Duration, au [][]byte) {
				if au[0][0]&0x1f == 7 {
					return // the sequence header, delivered as SPS+PPS
				}
				if first && !hub.IsKeyframe(hub.CodecH264, au) {
					t.Error("first video unit is not a keyframe")
				}
				first = false
			})
		case *codecs.MPEG4Audio:
			audio = true
			r.OnDataMPEG4Audio(tr, func(time.Duration, []byte) {})
		}
	}
	if !video || !audio {
		t.Fatalf("tracks: video=%v audio=%v", video, audio)
	}
	c.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 20; i++ {
		if err := r.Read(); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	p.Close()
}

func TestSlowPlayerIsDisconnectedOthersContinue(t *testing.T) {
	e := newTestEnv(t, Params{WriteTimeout: 300 * time.Millisecond, SendBuffer: 8192},
		hub.Params{GOP: cache.Limits{MaxFrames: 2048, MaxLag: 5 * time.Second},
			SlowViewerTimeout: 2 * time.Second})
	p, err := e.hub.Publish("live/slow", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, p, 1)

	// One player that never reads after the handshake, one that reads.
	dialPlayer(t, e.url("live/slow"), 4096)
	good := dialPlayer(t, e.url("live/slow"), 0)
	received := make(chan int, 1)
	go func() {
		buf := make([]byte, 64<<10)
		n := 0
		for {
			good.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := good.NetConn().Read(buf)
			n += k
			if err != nil {
				received <- n
				return
			}
		}
	}()
	waitViewers(t, e.hub, "live/slow", 2)

	// Far more than fits in the slow player's socket buffers, at 10x real
	// time: the slow player is dropped, the other one keeps up.
	feedPaced(t, p, 8, 10)
	waitViewers(t, e.hub, "live/slow", 1)

	p.Close()
	e.hub.Close()
	if n := <-received; n < 5<<20 {
		t.Fatalf("reading player got %d bytes, want the whole feed (> 5 MiB)", n)
	}
	if in, ok := e.hub.Stream("live/slow"); ok {
		t.Fatalf("stream still listed after close: %+v", in)
	}
}

func waitViewers(t *testing.T, h *hub.Hub, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if in, ok := h.Stream(name); ok && in.Viewers["rtmp"] == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	in, _ := h.Stream(name)
	t.Fatalf("viewers of %s = %v, want %d", name, in.Viewers, n)
}

// TestKickedPlayerDisconnected: a player kicked through the hub (on the
// shared fast path, waiting for media) is disconnected.
func TestKickedPlayerDisconnected(t *testing.T) {
	e := newTestEnv(t, Params{}, hub.Params{GOP: cache.Limits{MaxFrames: 2048}})
	p, err := e.hub.Publish("live/k", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	feed(t, p, 1)
	c := dialPlayer(t, e.url("live/k"), 0)
	waitViewers(t, e.hub, "live/k", 1)
	var id uint64
	for _, s := range e.hub.Sessions() {
		if s.Protocol == "rtmp" && !s.Publisher {
			id = s.ID
		}
	}
	if id == 0 {
		t.Fatalf("no rtmp player in %+v", e.hub.Sessions())
	}
	nc := c.NetConn()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(nc, make([]byte, 1000)); err != nil { // it plays
		t.Fatal(err)
	}
	if err := e.hub.Kick(id); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	waitViewers(t, e.hub, "live/k", 0)
}

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEncryptedHandshakeRefused: a client opening an RTMPE handshake (the
// one gortmplib's client does for rtmpe) is closed at its C0 with a log
// line saying why, instead of being served unguarded.
func TestEncryptedHandshakeRefused(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	h := hub.New(hub.Params{Logger: log})
	s, err := Listen(Params{Listen: "127.0.0.1:0", Hub: h, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.Close()
		h.Close()
	}()
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, _, err := handshake.DoClient(nc, true, false); err == nil {
		t.Fatal("the encrypted handshake succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %v, want at once", d)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), "encrypted RTMP (RTMPE) is not served") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
