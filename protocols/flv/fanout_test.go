package flv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
	"github.com/liveedge/liveedge/protocols/internal/feedtest"
)

// TestFanoutDeliversEveryTagOnce runs hijacked viewers on the shared fast
// path and viewers whose small receive buffers and bursty reading push
// them off it and back again: each must get every tag once, in order, in
// whole-tag chunks, and the response must end with the last chunk.
func TestFanoutDeliversEveryTagOnce(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h := hub.New(hub.Params{Logger: log, GOP: cache.Limits{MaxFrames: 2048, MaxLag: 10 * time.Second},
		SlowViewerTimeout: 10 * time.Second, ProducerGrace: time.Millisecond})
	defer h.Close()
	p, err := h.Publish("live/fan", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTracks(clip.Video, clip.Audio); err != nil {
		t.Fatal(err)
	}
	if err := feedtest.Loops(p, clip, 0, 1, 0); err != nil {
		t.Fatal(err)
	}

	s := New(Params{Hub: h, Logger: log, SendBuffer: -1}) // the 8 KiB set below
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetWriteBuffer(8192)
		}
		return ctx
	}
	ts.Start()
	defer func() {
		s.Close()
		ts.Close()
	}()

	type result struct {
		name  string
		tags  []string        // type, timestamp and size of every tag after the start
		dts   []time.Duration // video timestamps
		key   bool            // the first video tag is a keyframe
		ended bool            // the last chunk came
		err   error
	}
	results := make(chan result, 16)
	var wg sync.WaitGroup
	start := func(name string, rcvbuf int, pause time.Duration) {
		d := net.Dialer{}
		if rcvbuf > 0 {
			d.Control = func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
				})
			}
		}
		c, err := d.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /live/fan.flv HTTP/1.1\r\nHost: x\r\n\r\n")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			res := result{name: name}
			defer func() { results <- res }()
			res.err = readViewer(c, pause, &res.tags, &res.dts, &res.key, &res.ended)
		}()
	}
	for i := 0; i < 6; i++ {
		start("fast", 0, 0)
	}
	for i := 0; i < 3; i++ {
		start("bursty", 4096, 30*time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); viewers(h, "live/fan", "flv") != 9; {
		if time.Now().After(deadline) {
			t.Fatalf("flv viewers = %d, want 9", viewers(h, "live/fan", "flv"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := feedtest.Loops(p, clip, 1, 3, 5); err != nil {
		t.Fatal(err)
	}
	p.Close()
	wg.Wait()
	close(results)

	joins, handoffs := s.fan.Stats()
	t.Logf("fast path joins=%d handoffs=%d", joins, handoffs)
	if handoffs < 9+3 || joins != handoffs {
		t.Errorf("fast path joins=%d handoffs=%d: the viewers did not go through it as intended", joins, handoffs)
	}
	var ref []string
	for res := range results {
		if res.err != nil {
			t.Errorf("%s viewer: %v", res.name, res.err)
			continue
		}
		if !res.ended {
			t.Errorf("%s viewer: no last chunk", res.name)
		}
		if err := feedtest.CheckVideo(res.dts, res.key, 700); err != nil {
			t.Errorf("%s viewer: %v", res.name, err)
			continue
		}
		// Every viewer joined at the same point: all got the same tags.
		if ref == nil {
			ref = res.tags
		} else if strings.Join(res.tags, " ") != strings.Join(ref, " ") {
			t.Errorf("%s viewer got %d tags, another %d, not the same ones", res.name, len(res.tags), len(ref))
		}
	}
}

// readViewer reads a hijacked FLV response strictly (chunks of whole
// tags) until its last chunk, pausing for pause every 5 video tags.
func readViewer(c net.Conn, pause time.Duration, tags *[]string, dts *[]time.Duration, key, ended *bool) error {
	br := bufio.NewReaderSize(c, 1024)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || len(res.TransferEncoding) != 1 {
		return fmt.Errorf("response %s, transfer encoding %v", res.Status, res.TransferEncoding)
	}
	for first := true; ; first = false {
		chunk, err := readChunk(br)
		if err != nil {
			return err
		}
		if len(chunk) == 0 {
			*ended = true
			return nil
		}
		r := bytes.NewReader(chunk)
		if first {
			r.Seek(13, 0) // the FLV header and PreviousTagSize0
		}
		for r.Len() > 0 {
			tg, err := readTag(r)
			if err != nil {
				return fmt.Errorf("a chunk does not hold whole tags: %w", err)
			}
			*tags = append(*tags, fmt.Sprintf("%d/%d/%d", tg.typ, tg.ts, len(tg.body)))
			if tg.typ != 9 || tg.body[1] != 1 {
				continue
			}
			if len(*dts) == 0 {
				*key = tg.body[0]>>4 == 1
			}
			*dts = append(*dts, time.Duration(tg.ts)*time.Millisecond)
			if pause > 0 && len(*dts)%5 == 0 {
				time.Sleep(pause)
			}
		}
	}
}
