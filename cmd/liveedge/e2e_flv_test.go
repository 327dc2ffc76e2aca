package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestFLVPlayback(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	cfg := hlsBaseConfig + `
auth:
  secrets: {sec: "s3cret-for-tests"}
  apps: {sec: {play: true}}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
  - {match: "sec/demo", mode: static, origins: [demo]}
`
	s := startServer(t, cfg)
	addr := s.httpAddr(t)
	publish(t, s.url("live/x"))
	s.waitLog(t, `msg=publishing .*stream=live/x`, 15*time.Second)
	good := signToken(t, writeFile(t, cfg), "sec/demo", "1h")

	for _, tc := range []struct{ name, path string }{
		{"publisher", "/live/x.flv"},
		{"demo", "/live/demo.live.flv"},
		{"token", "/sec/demo.flv?" + good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := probe(t, "http://"+addr+tc.path, 100)
			if err != nil {
				t.Fatal(err)
			}
			checkPlayback(t, r, 30)
		})
	}
	t.Run("ws", func(t *testing.T) {
		t.Parallel()
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/live/demo.flv", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := &wsFLV{c: c}
		var hdr [13]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatal(err)
		}
		if string(hdr[:3]) != "FLV" || hdr[4] != 0x05 {
			t.Fatalf("FLV header % x", hdr)
		}
		for i := 0; i < 20; i++ {
			var th [11]byte
			if _, err := io.ReadFull(r, th[:]); err != nil {
				t.Fatal(err)
			}
			n := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
			body := make([]byte, n+4)
			if _, err := io.ReadFull(r, body); err != nil {
				t.Fatal(err)
			}
			if binary.BigEndian.Uint32(body[n:]) != uint32(n+11) {
				t.Fatalf("tag %d: bad previous tag size", i)
			}
			if th[0] != 9 || body[1] != 1 { // not a coded video frame
				continue
			}
			if body[0]>>4 != 1 {
				t.Fatalf("first video frame is not a keyframe: % x", body[:2])
			}
			return
		}
		t.Fatal("no video frame in the first 20 tags")
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"/sec/demo.flv", "/sec/demo.flv?expires=9999999999&token=00"} {
			res, body := httpGet(t, "http://"+addr+u)
			if res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
				t.Fatalf("GET %s = %d, want 401 or 403", u, res.StatusCode)
			}
			if strings.Contains(strings.ToLower(body), "token") || strings.Contains(strings.ToLower(body), "expire") {
				t.Fatalf("refusal says why: %q", body)
			}
		}
		_, res, err := websocket.DefaultDialer.Dial("ws://"+addr+"/sec/demo.flv", nil)
		if err == nil || res == nil || (res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden) {
			t.Fatalf("WS-FLV without token: %v, %v", err, res)
		}
	})
}

// wsFLV reads the FLV byte stream carried by WS-FLV binary messages.
type wsFLV struct {
	c   *websocket.Conn
	buf []byte
}

func (r *wsFLV) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		typ, b, err := r.c.ReadMessage()
		if err != nil {
			return 0, err
		}
		if typ != websocket.BinaryMessage {
			return 0, fmt.Errorf("WS-FLV message type %d, want binary", typ)
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
