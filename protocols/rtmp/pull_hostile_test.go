package rtmp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

// originStage is how far a fake origin plays along before it misbehaves.
type originStage int

const (
	afterHandshake originStage = iota // S0 S1 S2, nothing else
	afterPlay                         // connect, createStream and play answered
	afterMedia                        // and an H.264 configuration and frames, taken by the edge
)

// fakeOrigin serves one pull on 127.0.0.1: the plain handshake, then as
// far as stage says, then act (which writes on the raw connection), then
// it reads until the pull closes the connection. For afterMedia it waits
// for gate (the pull took media) before act.
func fakeOrigin(t *testing.T, stage originStage, gate <-chan struct{}, act func(nc net.Conn)) (url string, wait func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conn net.Conn
	var mu sync.Mutex
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		conn = nc
		mu.Unlock()
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := serveUntil(nc, stage, gate); err != nil {
			t.Logf("fake origin: %v", err)
			return
		}
		act(nc)
		io.Copy(io.Discard, nc) //nolint:errcheck // until the pull closes
	}()
	var once sync.Once
	wait = func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			if conn != nil {
				conn.Close()
			}
			mu.Unlock()
			<-done
		})
	}
	t.Cleanup(wait)
	return "rtmp://" + ln.Addr().String() + "/live/src", wait
}

func serveUntil(nc net.Conn, stage originStage, gate <-chan struct{}) error {
	if stage == afterHandshake {
		_, _, err := handshake.DoServer(nc, false)
		return err
	}
	sc := &gortmplib.ServerConn{RW: nc}
	if err := sc.Initialize(); err != nil {
		return err
	}
	if err := sc.AcceptConn(); err != nil {
		return err
	}
	if stage == afterPlay {
		return sc.AcceptAction()
	}
	clip, err := demo.Default()
	if err != nil {
		return err
	}
	track := &gortmplib.Track{Codec: &codecs.H264{SPS: clip.Video.SPS, PPS: clip.Video.PPS}}
	w := &gortmplib.Writer{Conn: sc, Tracks: []*gortmplib.Track{track}}
	if err := w.Initialize(); err != nil {
		return err
	}
	n := 0
	for _, f := range clip.Frames {
		if !f.Video {
			continue
		}
		if n == 0 && !hub.IsKeyframe(hub.CodecH264, f.NALUs) {
			continue
		}
		if err := w.WriteH264(track, f.PTS, f.DTS, f.NALUs); err != nil {
			return err
		}
		if n++; n == 10 {
			break
		}
	}
	select {
	case <-gate:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the pull took no media")
	}
}

// rawHeader0 is a type 0 chunk header on message stream 1.
func rawHeader0(csid byte, length uint32, typ byte) []byte {
	return []byte{csid, 0, 0, 0, byte(length >> 16), byte(length >> 8), byte(length), typ, 1, 0, 0, 0}
}

// rawSetChunkSize is a Set Chunk Size message.
func rawSetChunkSize(v uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0}, v)
}

// trickle writes one byte every 20 ms until the pull closes the
// connection (or 10 s).
func trickle(nc net.Conn) {
	for range 500 {
		if _, err := nc.Write([]byte{0}); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memPeak samples the live heap (after a GC) every few milliseconds.
type memPeak struct {
	base      runtime.MemStats
	inuse     uint64 // the highest HeapInuse seen
	alloc     uint64 // the highest HeapAlloc seen
	stop      chan struct{}
	done      chan struct{}
	totalDiff uint64
}

func startMemPeak() *memPeak {
	m := &memPeak{stop: make(chan struct{}), done: make(chan struct{})}
	runtime.GC()
	runtime.ReadMemStats(&m.base)
	m.inuse, m.alloc = m.base.HeapInuse, m.base.HeapAlloc
	go func() {
		defer close(m.done)
		var s runtime.MemStats
		for {
			runtime.GC()
			runtime.ReadMemStats(&s)
			m.inuse = max(m.inuse, s.HeapInuse)
			m.alloc = max(m.alloc, s.HeapAlloc)
			m.totalDiff = s.TotalAlloc - m.base.TotalAlloc
			select {
			case <-m.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return m
}

// end stops the sampler and returns the peak growth of HeapInuse and
// HeapAlloc over the start, and the bytes allocated meanwhile, in MiB.
func (m *memPeak) end() (inuse, alloc, total float64) {
	close(m.stop)
	<-m.done
	mib := func(a, b uint64) float64 {
		if a < b {
			return 0
		}
		return float64(a-b) / (1 << 20)
	}
	return mib(m.inuse, m.base.HeapInuse), mib(m.alloc, m.base.HeapAlloc), float64(m.totalDiff) / (1 << 20)
}

// waitGoroutines polls until the goroutine count is back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type hostileCase struct {
	name  string
	stage originStage
	act   func(nc net.Conn)
	opts  PullOptions

	is       []error  // what the error must wrap
	text     []string // what it must say
	minTime  time.Duration
	maxTime  time.Duration
	maxHeapM float64 // bound of the peak HeapInuse growth, MiB
}

// TestPullHostileOrigin: an origin that misbehaves ends the pull within a
// bounded time with an error that says why, without making the edge hold
// more than the chunk guard's budget, and without leaving goroutines.
func TestPullHostileOrigin(t *testing.T) {
	zeros := make([]byte, 1<<16)
	cases := []hostileCase{
		{
			// gortmplib refuses a chunk size over 10 MiB by itself.
			name:  "16 MiB chunk size",
			stage: afterPlay,
			act: func(nc net.Conn) {
				b := append(rawSetChunkSize(16<<20), rawHeader0(6, 0xffffff, 9)...)
				if _, err := nc.Write(b); err == nil {
					trickle(nc)
				}
			},
			opts:     PullOptions{ConnectTimeout: 3 * time.Second},
			is:       []error{ErrConnectFailed},
			text:     []string{"chunk size (16777216) exceeds maximum (10485760)"},
			maxTime:  1500 * time.Millisecond,
			maxHeapM: 4,
		},
		{
			// Unguarded, gortmplib allocates the first 10 MiB chunk of the
			// message at its header and holds it while the bytes trickle
			// in, until the stall timeout.
			name:  "10 MiB chunks, a 16 MiB message, trickled",
			stage: afterMedia,
			act: func(nc net.Conn) {
				b := append(rawSetChunkSize(maxMessage), rawHeader0(6, 0xffffff, 9)...)
				if _, err := nc.Write(b); err == nil {
					trickle(nc)
				}
			},
			opts:     PullOptions{StallTimeout: 2 * time.Second},
			is:       []error{ErrLost, ErrChunkBudget},
			text:     []string{"the origin sent an oversized message (16777215 bytes on chunk stream 6; the maximum is 10485760)"},
			maxTime:  1500 * time.Millisecond,
			maxHeapM: 4,
		},
		{
			// Before play the budget is budgetConnect: a 10 MiB command.
			name:  "10 MiB command before connect",
			stage: afterHandshake,
			act: func(nc net.Conn) {
				b := append(rawSetChunkSize(maxMessage), rawHeader0(3, maxMessage, 20)...)
				b = append(b, zeros[:1024]...)
				if _, err := nc.Write(b); err == nil {
					trickle(nc)
				}
			},
			opts:     PullOptions{ConnectTimeout: 3 * time.Second},
			is:       []error{ErrConnectFailed, ErrChunkBudget},
			text:     []string{"the origin sent more unfinished message data than we hold", "budget 262144"},
			maxTime:  1500 * time.Millisecond,
			maxHeapM: 4,
		},
		{
			// 768 KiB of a 10 MiB message on each of 61 chunk streams:
			// unguarded, 45.75 MiB held until the stall timeout.
			name:  "unfinished messages on 61 chunk streams",
			stage: afterMedia,
			act: func(nc net.Conn) {
				if _, err := nc.Write(rawSetChunkSize(1 << 16)); err != nil {
					return
				}
				for k := range 12 {
					for csid := byte(3); csid <= 63; csid++ {
						b := []byte{0xc0 | csid}
						if k == 0 {
							b = rawHeader0(csid, maxMessage, 9)
						}
						if _, err := nc.Write(b); err != nil {
							return
						}
						if _, err := nc.Write(zeros); err != nil {
							return
						}
					}
				}
			},
			opts:     PullOptions{StallTimeout: 3 * time.Second},
			is:       []error{ErrLost, ErrChunkBudget},
			text:     []string{"the origin sent more unfinished message data than we hold", "budget 12582912"},
			maxTime:  2500 * time.Millisecond,
			maxHeapM: 24,
		},
		{
			// A video frame announced as 1000 bytes followed by 256 KiB
			// more: what follows its end is read as chunk headers (here a
			// type 0 header on chunk stream 3 for a 197379-byte message,
			// then a second type 0 header in the middle of it), which
			// gortmplib refuses.
			name:  "message longer than announced",
			stage: afterMedia,
			act: func(nc net.Conn) {
				b := rawHeader0(6, 1000, 9)
				b = append(b, 0x27, 1, 0, 0, 0, 0, 0, 0x03, 0xdf, 0x41) // AVC inter frame, one 991-byte NALU
				b = append(b, bytes.Repeat([]byte{3}, 990+256<<10)...)
				nc.Write(b) //nolint:errcheck
			},
			opts:     PullOptions{StallTimeout: 2 * time.Second},
			is:       []error{ErrLost},
			text:     []string{"received type 0 chunk but expected type 3 chunk"},
			maxTime:  1500 * time.Millisecond,
			maxHeapM: 4,
		},
		{
			name:     "silent after the handshake",
			stage:    afterHandshake,
			act:      func(net.Conn) {},
			opts:     PullOptions{ConnectTimeout: time.Second},
			is:       []error{ErrConnectFailed, context.DeadlineExceeded},
			text:     []string{"no answer within the connect timeout"},
			minTime:  time.Second,
			maxTime:  2500 * time.Millisecond,
			maxHeapM: 4,
		},
		{
			name:  "silent in the middle of a message",
			stage: afterMedia,
			act: func(nc net.Conn) {
				nc.Write(append(rawHeader0(6, 100000, 9), zeros[:1000]...)) //nolint:errcheck
			},
			opts:     PullOptions{StallTimeout: time.Second},
			is:       []error{ErrLost, ErrStalled},
			text:     []string{"no media within the stall timeout"},
			minTime:  time.Second,
			maxTime:  2500 * time.Millisecond,
			maxHeapM: 4,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runHostile(t, tc) })
	}
}

func runHostile(t *testing.T, tc hostileCase) {
	goroutines := runtime.NumGoroutine()
	mem := startMemPeak()

	h := hub.New(hub.Params{StartTimeout: 5 * time.Second})
	p, err := h.Publish("edge/s", hub.Session{Protocol: "pull", Remote: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	closeHub := func() { closeOnce.Do(func() { p.Close(); h.Close() }) }
	t.Cleanup(closeHub)
	media := make(chan struct{})
	opts := tc.opts
	opts.OnMedia = func() { close(media) }
	url, originDone := fakeOrigin(t, tc.stage, media, tc.act)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	res := make(chan error, 1)
	go func() { res <- Pull(ctx, url, p, opts) }()
	var elapsed time.Duration
	select {
	case err = <-res:
		elapsed = time.Since(start)
	case <-time.After(15 * time.Second):
		cancel()
		<-res
		t.Fatal("the pull did not end within 15 s")
	}
	inuse, alloc, total := mem.end()
	t.Logf("ended after %v: %v", elapsed.Round(time.Millisecond), err)
	t.Logf("peak growth: HeapInuse %.1f MiB, HeapAlloc %.1f MiB; allocated %.1f MiB", inuse, alloc, total)

	if tc.stage == afterMedia {
		select {
		case <-media:
		default:
			t.Error("the pull took no media before the origin misbehaved")
		}
	}
	if err == nil {
		t.Fatal("the pull returned no error")
	}
	for _, want := range tc.is {
		if !errors.Is(err, want) {
			t.Errorf("the error does not wrap %q", want)
		}
	}
	for _, want := range tc.text {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q", want)
		}
	}
	if elapsed < tc.minTime || elapsed > tc.maxTime {
		t.Errorf("the pull ended after %v, want %v to %v", elapsed, tc.minTime, tc.maxTime)
	}
	if inuse > tc.maxHeapM {
		t.Errorf("the heap grew by %.1f MiB, want at most %v", inuse, tc.maxHeapM)
	}

	originDone()
	closeHub()
	waitGoroutines(t, goroutines)
}

// msgConn writes messages for a gortmplib.Writer with its own
// message.Writer (and chunk size).
type msgConn struct{ w *message.Writer }

func (msgConn) BytesReceived() uint64           { return 0 }
func (msgConn) BytesSent() uint64               { return 0 }
func (msgConn) Read() (message.Message, error)  { return nil, io.EOF }
func (c msgConn) Write(m message.Message) error { return c.w.Write(m) }

// TestPullBigChunksRightAfterPlay: an origin that uses 10 MiB chunks and
// sends a 1 MiB keyframe in the same write as its play status plays: the
// guard sees the keyframe's header before the client has returned from
// play, and must not hold it to the budget before play (budgetConnect).
func TestPullBigChunksRightAfterPlay(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	originErr := make(chan error, 1)
	go func() {
		originErr <- func() error {
			nc, err := ln.Accept()
			if err != nil {
				return err
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			sc := &gortmplib.ServerConn{RW: nc}
			if err := sc.Initialize(); err != nil {
				return err
			}
			if err := sc.AcceptConn(); err != nil {
				return err
			}
			var buf bytes.Buffer
			bcw := bytecounter.NewWriter(&buf)
			mw := message.NewWriter(bcw, bcw, false)
			for _, code := range []string{"NetStream.Play.Reset", "NetStream.Play.Start"} {
				mw.Write(&message.CommandAMF0{ChunkStreamID: 5, MessageStreamID: 0x1000000, //nolint:errcheck
					Name: "onStatus", Arguments: []any{nil, amf0.Object{
						{Key: "level", Value: "status"}, {Key: "code", Value: code}}}})
			}
			mw.Write(&message.SetChunkSize{Value: maxMessage}) //nolint:errcheck
			track := &gortmplib.Track{Codec: &codecs.H264{SPS: clip.Video.SPS, PPS: clip.Video.PPS}}
			w := &gortmplib.Writer{Conn: msgConn{mw}, Tracks: []*gortmplib.Track{track}}
			if err := w.Initialize(); err != nil {
				return err
			}
			idr := make([]byte, 1<<20)
			idr[0] = 0x65
			for i := range 30 {
				nalus := [][]byte{{0x41, 0x9a, 0x00}}
				if i == 0 {
					nalus = [][]byte{clip.Video.SPS, clip.Video.PPS, idr}
				}
				dts := time.Duration(i) * 40 * time.Millisecond
				if err := w.WriteH264(track, dts, dts, nalus); err != nil {
					return err
				}
			}
			if _, err := nc.Write(buf.Bytes()); err != nil {
				return err
			}
			io.Copy(io.Discard, nc) //nolint:errcheck // until the pull closes
			return nil
		}()
	}()

	// Registered before pullInto's cleanup, so run after it: that ends
	// the pull, then the origin returns.
	t.Cleanup(func() {
		if err := <-originErr; err != nil {
			t.Errorf("origin: %v", err)
		}
		waitGoroutines(t, goroutines)
	})
	h, res, media := pullInto(t, "rtmp://"+ln.Addr().String()+"/live/src", PullOptions{StallTimeout: 3 * time.Second})
	select {
	case <-media:
	case err := <-res:
		t.Fatalf("pull ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no media within 5 s")
	}
	readUnits(t, h, 1)
}

// TestDialOriginGuardsAfterTLS: for rtmps the guard follows the decrypted
// stream (S0 S1 S2, then chunks), not the TLS records.
func TestDialOriginGuardsAfterTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "origin"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, handshakeIn)
		b[0] = 3
		nc.Write(append(b, rawHeader0(6, 0xffffff, 9)...)) //nolint:errcheck
		io.Copy(io.Discard, nc)                            //nolint:errcheck
	}()

	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// No server name in the configuration: the host of the address is
	// used, and the certificate is for 127.0.0.1.
	g, err := dialOrigin(ctx, &net.Dialer{}, "tcp", ln.Addr().String(), true, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Conn.(*tls.Conn); !ok {
		t.Fatalf("the guard reads from a %T, want the TLS connection", g.Conn)
	}
	g.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(g, make([]byte, handshakeIn)); err != nil {
		t.Fatalf("handshake bytes: %v", err)
	}
	_, err = io.ReadFull(g, make([]byte, 12))
	if !errors.Is(err, ErrChunkBudget) || !strings.Contains(err.Error(), "the origin sent an oversized message (16777215 bytes on chunk stream 6") {
		t.Fatalf("err = %v, want the origin's oversized message", err)
	}
	g.Close()
	<-served
}
