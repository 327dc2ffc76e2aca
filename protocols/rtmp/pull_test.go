package rtmp

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/protocols/demo"
)

func TestClientURL(t *testing.T) {
	cases := []struct {
		in, path, key, err string
	}{
		{in: "rtmp://origin:1935/live/cam1", path: "/live", key: "cam1"},
		{in: "rtmp://origin/live/cam1?expires=10&token=ab%2B", path: "/live", key: "cam1?expires=10&token=ab%2B"},
		{in: "rtmp://origin/live/a/b", path: "/live", key: "a/b"},
		{in: "rtmps://origin/app/s", path: "/app", key: "s"},
		{in: "http://origin/live/x", err: "unsupported scheme"},
		{in: "rtmp://origin/live", err: "no app/stream"},
		{in: "rtmp:///live/x", err: "no host"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			u, err := clientURL(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Path != tc.path || u.Fragment != tc.key || u.RawQuery != "" {
				t.Fatalf("got path %q key %q query %q, want %q %q", u.Path, u.Fragment, u.RawQuery, tc.path, tc.key)
			}
		})
	}
}

// pullInto runs Pull from url into a fresh edge stream and returns the
// edge hub, a channel with Pull's result and a function that waits for
// the first media.
func pullInto(t *testing.T, url string, opts PullOptions) (*hub.Hub, <-chan error, <-chan struct{}) {
	t.Helper()
	h := hub.New(hub.Params{StartTimeout: 5 * time.Second})
	p, err := h.Publish("edge/s", hub.Session{Protocol: "pull", Remote: "test"})
	if err != nil {
		t.Fatal(err)
	}
	media := make(chan struct{})
	opts.OnMedia = func() { close(media) }
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		res <- Pull(ctx, url, p, opts)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		p.Close()
		h.Close()
	})
	return h, res, media
}

// readUnits reads n units from the edge stream and checks that the first
// video unit is a keyframe and the timeline is monotonic.
func readUnits(t *testing.T, h *hub.Hub, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := h.Subscribe(ctx, "edge/s", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got, sawVideo := 0, false
	var last [2]time.Duration
	buf := make([]*hub.Unit, 0, 64)
	for got < n {
		units, err := sub.Next(ctx, buf)
		if err != nil {
			t.Fatalf("after %d units: %v", got, err)
		}
		for _, u := range units {
			k := 0
			if u.Video {
				k = 1
				if !sawVideo && !u.Key {
					t.Fatal("first video unit is not a keyframe")
				}
				sawVideo = true
			}
			if u.DTS < last[k] {
				t.Fatalf("DTS went back: %v after %v", u.DTS, last[k])
			}
			last[k] = u.DTS
			got++
		}
	}
}

func TestPullFromLiveedgeOrigin(t *testing.T) {
	origin := newTestEnv(t, Params{}, hub.Params{})
	op, err := origin.hub.Publish("live/src", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	stopFeed := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		feedUntil(op, stopFeed)
	}()
	t.Cleanup(func() {
		select {
		case <-stopFeed:
		default:
			close(stopFeed)
		}
		<-fed
		op.Close()
	})

	start := time.Now()
	h, res, media := pullInto(t, "rtmp://"+origin.srv.Addr().String()+"/live/src?x=1",
		PullOptions{StallTimeout: 500 * time.Millisecond})
	select {
	case <-media:
	case err := <-res:
		t.Fatalf("pull ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no media within 5 s")
	}
	// The codec detection must not wait for the reader's two seconds.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("first media after %v, want well under 2 s", d)
	}
	t.Logf("first media after %v", time.Since(start))
	readUnits(t, h, 50)

	// The origin's publisher stops sending: the pull stalls.
	close(stopFeed)
	select {
	case err := <-res:
		if !errors.Is(err, ErrLost) || !errors.Is(err, ErrStalled) {
			t.Fatalf("err = %v, want lost + stalled", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("stalled pull did not end")
	}
}

// feedUntil writes the demo clip in real time until stop closes.
func feedUntil(p *hub.Producer, stop <-chan struct{}) {
	clip, err := demo.Default()
	if err != nil {
		return
	}
	if err := p.SetTracks(clip.Video, clip.Audio); err != nil {
		return
	}
	start := time.Now()
	for l := 0; ; l++ {
		off := time.Duration(l) * clip.Duration
		for _, f := range clip.Frames {
			select {
			case <-stop:
				return
			case <-time.After(time.Until(start.Add(off + f.DTS))):
			}
			if f.Video {
				p.WriteVideo(off+f.PTS, off+f.DTS, f.NALUs)
			} else {
				p.WriteAudio(off+f.DTS, f.Payload)
			}
		}
	}
}

func TestPullConnectFailures(t *testing.T) {
	// Nothing listens on the port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	_, res, _ := pullInto(t, "rtmp://"+dead+"/live/x", PullOptions{ConnectTimeout: time.Second})
	select {
	case err := <-res:
		if !errors.Is(err, ErrConnectFailed) {
			t.Fatalf("err = %v, want ErrConnectFailed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("pull of a dead origin did not end")
	}

	// A server that accepts and never answers: the connect timeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, res, _ = pullInto(t, "rtmp://"+silent.Addr().String()+"/live/x", PullOptions{ConnectTimeout: 500 * time.Millisecond})
	select {
	case err := <-res:
		if !errors.Is(err, ErrConnectFailed) {
			t.Fatalf("err = %v, want ErrConnectFailed", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("silent origin took %v to fail", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("pull of a silent origin did not end")
	}

	// A liveedge origin without the stream refuses the play.
	origin := newTestEnv(t, Params{}, hub.Params{StartTimeout: 200 * time.Millisecond})
	_, res, _ = pullInto(t, "rtmp://"+origin.srv.Addr().String()+"/live/none", PullOptions{})
	select {
	case err := <-res:
		if !errors.Is(err, ErrConnectFailed) {
			t.Fatalf("err = %v, want ErrConnectFailed", err)
		}
		t.Logf("missing stream: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("pull of a missing stream did not end")
	}
}

func TestPullFromNginx(t *testing.T) {
	o := nginxtest.Start(t)
	o.Publish(t, "x")
	start := time.Now()
	// nginx-rtmp splits app and stream as every RTMP server does and sees
	// the query on the stream name.
	h, res, media := pullInto(t, o.URL("x")+"?expires=1&token=abc", PullOptions{})
	select {
	case <-media:
	case err := <-res:
		t.Fatalf("pull ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no media within 5 s")
	}
	t.Logf("first media after %v", time.Since(start))
	readUnits(t, h, 50)
	if n := o.Players(t, "x"); n != 1 {
		t.Fatalf("origin has %d players, want 1", n)
	}

	rtt, err := Probe(context.Background(), o.URL("x"), 2*time.Second, nil)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	t.Logf("probe rtt %v", rtt)
	if _, err := Probe(context.Background(), o.URL("nobody"), 500*time.Millisecond, nil); !errors.Is(err, ErrConnectFailed) {
		t.Fatalf("probe of an unpublished stream: %v, want ErrConnectFailed", err)
	}

	o.Kill()
	select {
	case err := <-res:
		if !errors.Is(err, ErrLost) || !errors.Is(err, ErrOriginClosed) {
			t.Fatalf("err = %v, want lost + closed", err)
		}
		t.Logf("origin killed: %v", err)
	case <-time.After(3 * time.Second):
		t.Fatal("pull did not end when the origin died")
	}
}
