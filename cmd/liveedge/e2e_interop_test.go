package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/gorilla/websocket"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/internal/whepclient"
)

// Secrets of the interop suite's two tiers.
const (
	interopOriginSecret = "origin-secret" // the upstream liveedge's app live
	interopEdgeSecret   = "edge-secret"   // the edge's app tier
)

// interopInput is one way media enters the edge, and the stream names it
// has there.
type interopInput struct {
	name   string
	stream string // on the edge
	ts     string // the same media under an app whose HLS variant is MPEG-TS
	token  bool   // the edge wants a token to play stream
}

// interopOutput plays stream (with query q) from the edge with an
// independent client and asserts codec, resolution, a minimum frame count
// and that the first video frame is a keyframe.
type interopOutput struct {
	name string
	play func(t *testing.T, e *interopEdge, in interopInput, q string)
}

// interopEdge is the edge under test and its addresses.
type interopEdge struct {
	s                *server
	rtmp, rtsp, http string
}

// TestInterop is the table of inputs × outputs, with third-party clients on
// every protocol (ffmpeg/ffprobe, a Go WS-FLV reader, a pion WHEP client):
//
//   - inputs: an ffmpeg RTMP publisher; an RTMP pull from nginx-rtmp; an
//     RTSP pull from a second liveedge (edge chained to edge, tokens on
//     both hops: the edge signs its pull, its own viewers need a token);
//     the built-in demo;
//   - outputs: RTMP, RTSP over TCP and UDP, HTTP-FLV, WS-FLV, LL-HLS,
//     MPEG-TS HLS and WHEP.
//
// MPEG-TS HLS is a per-app setting, so each input is also relayed, by the
// edge pulling from its own RTMP output, into an app with that variant.
func TestInterop(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	nginxtest.Require(t, "ffmpeg")

	// The upstream tier: a liveedge serving live/demo over RTSP to
	// token holders only.
	up := startServer(t, fmt.Sprintf(`
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: "127.0.0.1:0", udp_rtp_port: 0}
http: {listen: ""}
admin: {listen: ""}
auth:
  secrets: {live: %q}
  apps: {live: {play: true}}
streams:
  - {match: live/demo, mode: static, origins: [demo]}
`, interopOriginSecret))
	upRTSP := up.rtspAddr(t)

	ngx := nginxtest.Start(t)
	ngx.Publish(t, "x")

	rtmpPort := nginxtest.FreePort(t)
	self := fmt.Sprintf("rtmp://127.0.0.1:%d", rtmpPort)
	s := startServer(t, fmt.Sprintf(`
log: {level: debug}
rtmp: {listen: "127.0.0.1:%[1]d"}
rtsp: {listen: "127.0.0.1:0", udp_rtp_port: %[2]d}
http: {listen: "127.0.0.1:0"}
admin: {listen: ""}
webrtc:
  udp_port: %[3]d
  tcp_port: 0
  udp_host: 127.0.0.1
  remote_candidates: {allow: [127.0.0.0/8]}
auth:
  secrets: {live: %[4]q, tier: %[5]q}
  apps: {tier: {play: true}}
hls:
  apps: {tsl: {variant: mpegts}, tsn: {variant: mpegts}, tst: {variant: mpegts}}
streams:
  - {match: "ngx/*", mode: on_demand, origins: ["%[6]s"]}
  - {match: "tier/*", mode: on_demand, sign: true, origins: ["rtsp://%[7]s/live/$stream"]}
  - {match: live/demo, mode: static, origins: [demo]}
  - {match: "live/*", mode: publish}
  - {match: "tsl/*", mode: on_demand, origins: ["%[8]s/live/$stream"]}
  - {match: "tsn/*", mode: on_demand, origins: ["%[8]s/ngx/$stream"]}
  - {match: "tst/*", mode: on_demand, sign: true, origins: ["%[8]s/tier/$stream"]}
`, rtmpPort, freeUDPPair(t), freeUDPPort(t), interopOriginSecret, interopEdgeSecret,
		ngx.URL("$stream"), upRTSP, self))
	e := &interopEdge{s: s, rtmp: fmt.Sprintf("127.0.0.1:%d", rtmpPort), rtsp: s.rtspAddr(t), http: s.httpAddr(t)}
	publish(t, "rtmp://"+e.rtmp+"/live/pub")
	s.waitLog(t, `msg=publishing .*stream=live/pub`, 15*time.Second)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)

	inputs := []interopInput{
		{name: "rtmp-publish", stream: "live/pub", ts: "tsl/pub"},
		{name: "nginx-pull", stream: "ngx/x", ts: "tsn/x"},
		{name: "edge-rtsp-pull", stream: "tier/demo", ts: "tst/demo", token: true},
		{name: "demo", stream: "live/demo", ts: "tsl/demo"},
	}
	outputs := []interopOutput{
		{"rtmp", func(t *testing.T, e *interopEdge, in interopInput, q string) {
			checkProbe(t, "rtmp://"+e.rtmp+"/"+in.stream+q, "")
		}},
		{"rtsp-tcp", func(t *testing.T, e *interopEdge, in interopInput, q string) {
			checkProbe(t, "rtsp://"+e.rtsp+"/"+in.stream+q, "tcp")
		}},
		{"rtsp-udp", func(t *testing.T, e *interopEdge, in interopInput, q string) {
			checkProbe(t, "rtsp://"+e.rtsp+"/"+in.stream+q, "udp")
		}},
		{"http-flv", func(t *testing.T, e *interopEdge, in interopInput, q string) {
			checkProbe(t, "http://"+e.http+"/"+in.stream+".flv"+q, "")
		}},
		{"ws-flv", func(t *testing.T, e *interopEdge, in interopInput, q string) {
			checkWSFLV(t, "ws://"+e.http+"/"+in.stream+".live.flv"+q)
		}},
		{"ll-hls", func(t *testing.T, e *interopEdge, in interopInput, q string) {
			index := "http://" + e.http + "/" + in.stream + "/index.m3u8" + q
			checkProbe(t, index, "")
			if _, body := httpGet(t, mediaPlaylist(t, index)); !strings.Contains(body, "#EXT-X-PART:") {
				t.Fatalf("not an LL-HLS playlist:\n%s", body)
			}
		}},
		{"hls-ts", func(t *testing.T, e *interopEdge, in interopInput, _ string) {
			index := "http://" + e.http + "/" + in.ts + "/index.m3u8"
			checkProbe(t, index, "")
			if _, body := httpGet(t, mediaPlaylist(t, index)); !strings.Contains(body, ".ts") {
				t.Fatalf("not an MPEG-TS playlist:\n%s", body)
			}
		}},
		{"whep", func(t *testing.T, e *interopEdge, in interopInput, q string) {
			checkWHEP(t, "http://"+e.http+"/"+in.stream+"/whep"+q)
		}},
	}

	// At most a few clients at once: this is a correctness table, and the
	// machine running it may have two cores.
	sem := make(chan struct{}, 4)
	for _, in := range inputs {
		q := ""
		if in.token {
			signer := auth.Signer{Secret: []byte(interopEdgeSecret)}
			q = "?" + signer.Query(in.stream, time.Hour, time.Now(), netip.Addr{}).Encode()
		}
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			if in.token {
				// Without the token the edge refuses, on every protocol tried.
				if _, err := probe(t, "rtmp://"+e.rtmp+"/"+in.stream, 10); err == nil {
					t.Fatal("RTMP play without a token was accepted")
				}
				if res, _ := httpGet(t, "http://"+e.http+"/"+in.stream+".flv"); res.StatusCode != http.StatusUnauthorized {
					t.Fatalf("HTTP-FLV without a token: %d, want 401", res.StatusCode)
				}
			}
			for _, out := range outputs {
				t.Run(out.name, func(t *testing.T) {
					t.Parallel()
					sem <- struct{}{}
					defer func() { <-sem }()
					out.play(t, e, in, q)
				})
			}
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			logPullStates(t, s)
		}
	})
}

// checkProbe plays u with ffprobe (over transport, for RTSP) and checks
// what it got.
func checkProbe(t *testing.T, u, transport string) {
	t.Helper()
	var r probeResult
	var err error
	if transport != "" {
		r, err = rtspProbe(t, u, transport, 60)
	} else {
		r, err = probe(t, u, 60)
	}
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 20)
}

// checkWSFLV reads WS-FLV with a Go client: the FLV header, an AVC
// sequence header for 640x360, a keyframe as the first coded video frame,
// and at least 20 video frames.
func checkWSFLV(t *testing.T, u string) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, res, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("WS-FLV %s: %v (%v)", u, err, res)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	r := &wsFLV{c: c}
	var hdr [13]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || string(hdr[:3]) != "FLV" {
		t.Fatalf("FLV header: % x, %v", hdr, err)
	}
	frames, width, height := 0, 0, 0
	for frames < 20 {
		var th [11]byte
		if _, err := io.ReadFull(r, th[:]); err != nil {
			t.Fatalf("after %d frames: %v", frames, err)
		}
		n := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
		body := make([]byte, n+4)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		if th[0] != 9 || n < 5 {
			continue
		}
		if body[0]&0x0f != 7 {
			t.Fatalf("video codec id %d, want 7 (AVC)", body[0]&0x0f)
		}
		switch body[1] {
		case 0: // AVCDecoderConfigurationRecord
			width, height = avcResolution(t, body[5:n])
		case 1:
			if frames == 0 && body[0]>>4 != 1 {
				t.Fatal("first video frame is not a keyframe")
			}
			frames++
		}
	}
	if width != 640 || height != 360 {
		t.Fatalf("resolution %dx%d, want 640x360", width, height)
	}
}

// avcResolution reads the resolution from an AVC decoder configuration
// record's first SPS.
func avcResolution(t *testing.T, rec []byte) (int, int) {
	t.Helper()
	if len(rec) < 8 || rec[5]&0x1f == 0 {
		t.Fatalf("short AVC configuration record: % x", rec)
	}
	n := int(binary.BigEndian.Uint16(rec[6:8]))
	if len(rec) < 8+n {
		t.Fatalf("AVC configuration record: SPS of %d bytes in %d", n, len(rec))
	}
	var sps h264.SPS
	if err := sps.Unmarshal(rec[8 : 8+n]); err != nil {
		t.Fatal(err)
	}
	return sps.Width(), sps.Height()
}

// checkWHEP plays u (a WHEP endpoint) with the pion client: H.264, the
// first complete frame an IDR whose SPS says 640x360, and 25 frames.
func checkWHEP(t *testing.T, u string) {
	t.Helper()
	var mu sync.Mutex
	var first *whepclient.Frame
	c, err := whepclient.New(whepclient.Options{Audio: true, OnFrame: func(f whepclient.Frame) {
		mu.Lock()
		if first == nil {
			first = &f
		}
		mu.Unlock()
	}})
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
	res, err := whepclient.Post(ctx, u, "", offer)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("POST %s: %v %d %s", u, err, res.Status, res.Body)
	}
	if err := c.Answer(res.Body); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFrames(ctx, 25); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	mu.Lock()
	f := first
	mu.Unlock()
	if st.VideoCodec != "video/H264" || f == nil || !f.IsIDR() {
		t.Fatalf("codec %q, first complete frame types %v (%d incomplete frames)", st.VideoCodec, f.NALTypes, st.Incomplete)
	}
	var sps, pps []byte
	for _, n := range f.NALUs {
		switch {
		case len(n) > 0 && n[0]&0x1f == 7:
			sps = n
		case len(n) > 0 && n[0]&0x1f == 8:
			pps = n
		}
	}
	if tr, err := hub.NewH264Track(sps, pps); err != nil || tr.Width != 640 || tr.Height != 360 {
		t.Fatalf("first frame's SPS: %v %+v", err, tr)
	}
	if pu, err := url.Parse(u); err == nil {
		whepclient.Do(ctx, http.MethodDelete, pu.Scheme+"://"+pu.Host+res.Location, "", nil) //nolint:errcheck // Close ends the peer anyway
	}
}
