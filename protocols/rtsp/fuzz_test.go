package rtsp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

// FuzzServerRequest sends arbitrary bytes to a real server (loopback TCP,
// with the demo stream live/demo playing, so that DESCRIBE, SETUP and
// PLAY succeed), then closes its side: the server must close the
// connection within a deadline, without a panic. Seeds are the requests
// of TestServerBadInput and a complete TCP session.
func FuzzServerRequest(f *testing.F) {
	const u = "rtsp://127.0.0.1:8554/live/demo"
	for _, s := range []string{
		"OPTIONS " + u + " RTSP/1.0\r\nCSeq: 1\r\n\r\n",
		"DESCRIBE " + u + " RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n" +
			"SETUP " + u + "/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n" +
			"PLAY " + u + " RTSP/1.0\r\nCSeq: 4\r\nRange: npt=0-\r\n\r\n" +
			"$\x01\x00\x08\x81\xc9\x00\x01\x00\x00\x00\x01" +
			"TEARDOWN " + u + " RTSP/1.0\r\nCSeq: 5\r\n\r\n",
		"DESCRIBE " + u + "?token=x&expires=1 RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n",
		"GARBAGE\r\n\r\n",
		"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"DELETE " + u + " RTSP/1.0\r\nCSeq: 1\r\n\r\n",
		"DESCRIBE " + u + " RTSP/1.0\r\n\r\n",
		"PLAY " + u + " RTSP/1.0\r\nCSeq: 1\r\n\r\n",
		"ANNOUNCE " + u + " RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 0\r\n\r\n",
		"SETUP " + u + "/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: nonsense\r\n\r\n",
		"SETUP " + u + "/trackID=9 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
		"SETUP " + u + "/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n",
		"DESCRIBE rtsp://127.0.0.1:8554/../../etc/passwd RTSP/1.0\r\nCSeq: 1\r\n\r\n",
		"DESCRIBE " + u + " RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 999999999\r\n\r\n",
	} {
		f.Add([]byte(s))
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := hub.New(hub.Params{Logger: log, StartTimeout: 100 * time.Millisecond})
	clip, err := demo.Default()
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		demo.Run(ctx, h, "live/demo", clip, log) //nolint:errcheck
	}()
	s, err := Listen(Params{Listen: "127.0.0.1:0", UDPRTPAddress: "127.0.0.1:0", Hub: h, Logger: log,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, FeedLinger: time.Second})
	if err != nil {
		cancel()
		wg.Wait()
		f.Fatal(err)
	}
	f.Cleanup(func() {
		s.Close()
		cancel()
		wg.Wait()
		h.Close()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if in, ok := h.Stream("live/demo"); ok && in.GOP.GOPValid {
			break
		}
		if time.Now().After(deadline) {
			f.Fatal("demo stream did not start")
		}
	}
	addr := s.Addr().String()

	f.Fuzz(func(t *testing.T, data []byte) {
		// Requests name the server's real address.
		data = []byte(strings.ReplaceAll(string(data), "127.0.0.1:8554", addr))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		drained := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			drained <- err
		}()
		if _, err := c.Write(data); err == nil {
			c.(*net.TCPConn).CloseWrite() //nolint:errcheck
		}
		var ne net.Error
		if err := <-drained; errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server did not close the connection within 5s after %.200q", data)
		}
	})
}
