package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/internal/whepclient"
)

const webrtcSecret = "s3cret-for-tests"

// webrtcConfig is a configuration with the HTTP listener and WebRTC on
// loopback only: the server offers 127.0.0.1 candidates and accepts only
// 127.0.0.0/8 ones.
func webrtcConfig(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf(`
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: "127.0.0.1:0"}
admin: {listen: ""}
hub: {start_timeout: 1s}
webrtc:
  udp_port: %d
  tcp_port: %d
  udp_host: 127.0.0.1
  remote_candidates: {allow: [127.0.0.0/8]}
  start_delay: 60ms
auth:
  secrets: {sec: %q}
  apps: {sec: {play: true}}
streams:
  - {match: live/demo, mode: static, origins: [demo]}
  - {match: sec/demo, mode: static, origins: [demo]}
`, freeUDPPort(t), nginxtest.FreePort(t), webrtcSecret)
}

// freeUDPPort returns a UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// whepPlay runs a WHEP session against the binary and checks that the
// first frame is an IDR and that frames keep arriving; it returns the
// session URL.
func whepPlay(t *testing.T, base, stream, query string) string {
	t.Helper()
	c, err := whepclient.New(whepclient.Options{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the caller's DELETE
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.Start()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	res, err := whepclient.Post(ctx, base+"/"+stream+"/whep"+query, "", offer)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusCreated || !strings.HasPrefix(res.Location, "/"+stream+"/whep/") || res.ETag == "" {
		t.Fatalf("POST %s: %d location %q etag %q: %s", stream, res.Status, res.Location, res.ETag, res.Body)
	}
	for _, l := range strings.Split(res.Body, "\n") {
		if strings.HasPrefix(l, "a=candidate:") && !strings.Contains(l, " 127.0.0.1 ") {
			t.Fatalf("answer offers a non-loopback candidate: %s", l)
		}
	}
	if err := c.Answer(res.Body); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFrames(ctx, 25); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.VideoCodec != "video/H264" || st.First == nil || !st.First.IsIDR() {
		t.Fatalf("codec %q, first frame %+v", st.VideoCodec, st.First)
	}
	n := st.Frames
	time.Sleep(time.Second)
	if got := c.Stats().Frames - n; got < 15 {
		t.Fatalf("%d frames in the second after the start", got)
	}
	t.Logf("%s: TTFF (POST to first complete keyframe) %v; %d frames, %d incomplete",
		stream, st.TTFF, c.Stats().Frames, c.Stats().Incomplete)
	return base + res.Location
}

func TestWHEPDemoAndPublished(t *testing.T) {
	requireTools(t, "ffmpeg")
	s := startServer(t, webrtcConfig(t))
	base := "http://" + s.httpAddr(t)
	s.waitLog(t, `msg=listening proto=webrtc addr=127\.0\.0\.1:`, 10*time.Second)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // a GOP in the cache

	loc := whepPlay(t, base, "live/demo", "")
	res, err := whepclient.Do(context.Background(), http.MethodDelete, loc, "", nil)
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("DELETE: %v %d", err, res.Status)
	}
	s.waitLog(t, `webrtc peer removed.*reason="session deleted"`, 5*time.Second)
	if r, _ := whepclient.Do(context.Background(), http.MethodDelete, loc, "", nil); r.Status != http.StatusNotFound {
		t.Fatalf("second DELETE: %d", r.Status)
	}

	// A stream an ffmpeg publisher relays.
	publish(t, s.url("live/cam"))
	s.waitLog(t, `msg=tracks stream=live/cam`, 15*time.Second)
	loc = whepPlay(t, base, "live/cam", "")
	if r, _ := whepclient.Do(context.Background(), http.MethodDelete, loc, "", nil); r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d", r.Status)
	}
	s.waitLog(t, `webrtc peer removed.*stream=live/cam.*reason="session deleted"`, 5*time.Second)

	// A token-protected stream with a token in the query.
	exp := time.Now().Add(time.Hour).Unix()
	tok := auth.Sign(auth.SHA256, []byte(webrtcSecret), "sec/demo", exp, netip.Addr{})
	whepPlay(t, base, "sec/demo", "?expires="+strconv.FormatInt(exp, 10)+"&token="+tok)
}

// TestWHEPOverTCP: a client that can only use TCP plays through the
// binary's ICE-TCP port.
func TestWHEPOverTCP(t *testing.T) {
	s := startServer(t, webrtcConfig(t))
	base := "http://" + s.httpAddr(t)
	s.waitLog(t, `msg=listening proto=webrtc-tcp addr=127\.0\.0\.1:`, 10*time.Second)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	c, err := whepclient.New(whepclient.Options{TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.Start()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	res, err := whepclient.Post(ctx, base+"/live/demo/whep", "", offer)
	if err != nil || res.Status != http.StatusCreated || !strings.Contains(res.Body, "tcptype passive") {
		t.Fatalf("POST: %v %d\n%s", err, res.Status, res.Body)
	}
	if err := c.Answer(res.Body); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFrames(ctx, 25); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.First == nil || !st.First.IsIDR() {
		t.Fatalf("first frame %+v", st.First)
	}
}

func TestWHEPErrorsFromBinary(t *testing.T) {
	s := startServer(t, webrtcConfig(t))
	base := "http://" + s.httpAddr(t)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	c, err := whepclient.New(whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Repeat("0", 64)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	for _, tc := range []struct {
		name, path, ctype, body string
		want                    int
	}{
		{"garbage sdp", "/live/demo/whep", "application/sdp", "garbage", 400},
		{"no video", "/live/demo/whep", "application/sdp", strings.ReplaceAll(offer, "m=video", "m=text"), 400},
		{"2 MiB body", "/live/demo/whep", "application/sdp", strings.Repeat("v", 2<<20), 413},
		{"unknown stream", "/live/nothing/whep", "application/sdp", offer, 404},
		{"no token", "/sec/demo/whep", "application/sdp", offer, 401},
		{"bad token", "/sec/demo/whep?expires=" + exp + "&token=" + bad, "application/sdp", offer, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := whepclient.Do(context.Background(), http.MethodPost, base+tc.path, tc.ctype, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want {
				t.Fatalf("status %d, want %d: %s", res.Status, tc.want, res.Body)
			}
		})
	}
	if n := countLines(s.logLines(), "webrtc peer created"); n != 0 {
		t.Fatalf("%d peers created by bad requests", n)
	}
}

// TestWSSignallingAndPagesFromBinary: the WebSocket signalling and the
// player pages are routed by the binary's HTTP listener.
func TestWSSignallingAndPagesFromBinary(t *testing.T) {
	s := startServer(t, webrtcConfig(t))
	base := "http://" + s.httpAddr(t)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for path, want := range map[string]string{"/": `href="/live/demo/"`, "/live/demo/": "<video", "/sec/demo/": "<video"} {
		r, err := whepclient.Do(ctx, http.MethodGet, base+path, "", nil)
		if err != nil || r.Status != http.StatusOK || !strings.Contains(r.Body, want) {
			t.Fatalf("GET %s: %v %d", path, err, r.Status)
		}
	}
	if r, _ := whepclient.Do(ctx, http.MethodGet, base+"/live/demo/nothing", "", nil); r.Status != http.StatusNotFound {
		t.Fatalf("GET unknown path: %d", r.Status)
	}

	c, err := whepclient.New(whepclient.Options{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Start()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	conn, res, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+s.httpAddr(t)+"/live/demo/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	defer conn.Close()
	if err := conn.WriteJSON(map[string]string{"type": "offer", "sdp": offer}); err != nil {
		t.Fatal(err)
	}
	var ans struct{ Type, SDP, ID, Message string }
	if err := conn.ReadJSON(&ans); err != nil || ans.Type != "answer" || ans.ID == "" {
		t.Fatalf("answer: %v %+v", err, ans)
	}
	if err := c.Answer(ans.SDP); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFrames(ctx, 25); err != nil {
		t.Fatal(err)
	}
	if f := c.Stats().First; f == nil || !f.IsIDR() {
		t.Fatalf("first frame %+v", f)
	}
	t.Logf("WebSocket signalling: TTFF %v", c.Stats().TTFF)
	conn.Close()
	s.waitLog(t, `webrtc peer removed.*stream=live/demo`, 5*time.Second)
}
