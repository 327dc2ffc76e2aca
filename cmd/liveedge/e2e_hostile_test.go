package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"

	"github.com/liveedge/liveedge/internal/whepclient"
)

// Hostile clients against the real binary (issue 8, item 2). Each test
// starts its own liveedge, takes a baseline of the process (VmRSS, open
// fds, goroutines from /metrics), lets one kind of hostile client loose,
// and requires that the server's timeouts close it, that its memory stays
// bounded while it lasts, that a well-behaved viewer is unaffected, and
// that fds and goroutines come back to the baseline afterwards.
//
// The timeouts that only exist as constants in the server (RTMP handshake
// 10 s, HTTP request header and body 10 s, RTSP request 10 s) make the
// tests that wait for them long; those run in parallel with each other.

const (
	// hostileServerTimeout is the server's fixed RTMP handshake, HTTP
	// header/body and RTSP idle timeout.
	hostileServerTimeout = 10 * time.Second
	// hostileSlowViewer is hub.slow_viewer_timeout in these tests.
	hostileSlowViewer = 2 * time.Second
	// hostilePeerTimeout is webrtc.peer_timeout in these tests.
	hostilePeerTimeout = 2 * time.Second
)

// hostileConfig: every listener on loopback, the built-in demo, short slow
// viewer and WebRTC peer timeouts.
func hostileConfig(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf(`
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: "127.0.0.1:0", udp_rtp_port: 0}
http: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
hub: {slow_viewer_timeout: %s}
webrtc:
  udp_port: %d
  tcp_port: 0
  udp_host: 127.0.0.1
  remote_candidates: {allow: [127.0.0.0/8]}
  peer_timeout: %s
streams:
  - {match: live/demo, mode: static, origins: [demo]}
`, hostileSlowViewer, freeUDPPort(t), hostilePeerTimeout)
}

// hostileEnv is a running liveedge with what the tests measure on it.
type hostileEnv struct {
	*server
	pid     int
	metrics string // the admin /metrics URL
	hc      *http.Client
}

var hostileAdminRe = regexp.MustCompile(`msg=listening proto=admin addr=(\S+)`)

func startHostile(t *testing.T) *hostileEnv {
	t.Helper()
	requireTools(t, "ffmpeg", "ffprobe")
	s := startServer(t, hostileConfig(t))
	line := s.waitLog(t, `msg=listening proto=admin addr=`, 10*time.Second)
	e := &hostileEnv{server: s, pid: s.cmd.Process.Pid,
		metrics: "http://" + hostileAdminRe.FindStringSubmatch(line)[1] + "/metrics",
		hc:      &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}}
	t.Cleanup(e.hc.CloseIdleConnections)
	s.httpAddr(t)
	s.rtspAddr(t)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	return e
}

// procSnap is what the tests compare before and after.
type procSnap struct {
	rssKiB     int
	fds        int
	goroutines int
}

func (p procSnap) String() string {
	return fmt.Sprintf("rss %.1f MiB, %d fds, %d goroutines", float64(p.rssKiB)/1024, p.fds, p.goroutines)
}

func (e *hostileEnv) rssKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(e.pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func (e *hostileEnv) goroutines(t *testing.T) int {
	t.Helper()
	res, err := e.hc.Get(e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	n := -1
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			n = int(f)
		}
	}
	io.Copy(io.Discard, res.Body)
	if n < 0 {
		t.Fatal("no go_goroutines in /metrics")
	}
	return n
}

func (e *hostileEnv) snap(t *testing.T) procSnap {
	t.Helper()
	g := e.goroutines(t) // first: its keep-alive connection is then counted in fds
	return procSnap{rssKiB: e.rssKiB(t), fds: fdCount(t, e.pid), goroutines: g}
}

// baseline waits for a steady state (two readings 300 ms apart agree on
// fds and goroutines) and returns it.
func (e *hostileEnv) baseline(t *testing.T) procSnap {
	t.Helper()
	prev := e.snap(t)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		cur := e.snap(t)
		if cur.fds == prev.fds && cur.goroutines == prev.goroutines {
			return cur
		}
		prev = cur
	}
	return prev
}

// settled polls until fds and goroutines are back to base (goroutines
// within slack: timers and the demo's own work come and go) and returns
// the last reading.
func (e *hostileEnv) settled(t *testing.T, base procSnap, timeout time.Duration) procSnap {
	t.Helper()
	const slack = 2
	var cur procSnap
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		cur = e.snap(t)
		if cur.fds <= base.fds && cur.goroutines <= base.goroutines+slack {
			return cur
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back to the baseline within %v: before %v, now %v", timeout, base, cur)
		}
	}
}

// rssPeak samples the server's VmRSS every 20 ms until the returned
// function is called, which returns the highest value (KiB).
func (e *hostileEnv) rssPeak(t *testing.T) func() int {
	t.Helper()
	var peak atomic.Int64
	peak.Store(int64(e.rssKiB(t)))
	stop, done := make(chan struct{}), make(chan struct{})
	path := "/proc/" + strconv.Itoa(e.pid) + "/status"
	go func() {
		defer close(done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return
			}
			if i := strings.Index(string(b), "VmRSS:"); i >= 0 {
				f := strings.Fields(string(b[i:]))
				if n, err := strconv.Atoi(f[1]); err == nil && int64(n) > peak.Load() {
					peak.Store(int64(n))
				}
			}
		}
	}()
	var once sync.Once
	get := func() int {
		once.Do(func() { close(stop); <-done })
		return int(peak.Load())
	}
	t.Cleanup(func() { get() })
	return get
}

// checkRSS fails when the peak RSS grew more than limit MiB over base.
func checkRSS(t *testing.T, what string, baseKiB, peakKiB int, limitMiB float64) {
	t.Helper()
	grew := float64(peakKiB-baseKiB) / 1024
	t.Logf("%s: RSS %.1f MiB before, peak %.1f MiB (+%.1f MiB, limit +%.0f MiB)", what,
		float64(baseKiB)/1024, float64(peakKiB)/1024, grew, limitMiB)
	if grew > limitMiB {
		t.Errorf("%s: RSS grew %.1f MiB, more than %.0f MiB", what, grew, limitMiB)
	}
}

// raiseNoFile makes sure the test process may open n more files, raising
// the soft limit (restored at the end) when it must.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	need := n + 512
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		t.Skipf("RLIMIT_NOFILE hard limit %d < %d", lim.Max, need)
	}
	old := lim
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// closedAfter reads c until the server closes it (anything it sends is
// discarded) and returns how long that took from start; it gives up after
// limit, returning limit.
func closedAfter(c net.Conn, start time.Time, limit time.Duration) time.Duration {
	c.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return limit
			}
			return time.Since(start)
		}
	}
}

// durations summarises a set of closing times.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("n=%d min %v median %v max %v", len(s), s[0].Round(time.Millisecond),
		s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// flvViewer reads HTTP-FLV and records, for every video frame, when it
// arrived and its DTS.
type flvViewer struct {
	mu       sync.Mutex
	arrivals []time.Time
	dts      []time.Duration
	err      error
	body     io.Closer
	done     chan struct{}
}

func watchFLV(t *testing.T, u string) *flvViewer {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		t.Fatalf("GET %s: %s", u, res.Status)
	}
	return readFLVViewer(t, res.Body, res.Body)
}

// readFLVViewer times the frames of the FLV stream r (closed by body)
// until it ends.
func readFLVViewer(t *testing.T, r io.Reader, body io.Closer) *flvViewer {
	v := &flvViewer{body: body, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		err := readFLV(r, func(dts time.Duration) {
			now := time.Now()
			v.mu.Lock()
			v.arrivals = append(v.arrivals, now)
			v.dts = append(v.dts, dts)
			v.mu.Unlock()
		})
		v.mu.Lock()
		v.err = err
		v.mu.Unlock()
	}()
	t.Cleanup(v.close)
	return v
}

func (v *flvViewer) close() {
	v.body.Close()
	<-v.done
}

func (v *flvViewer) frames() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.arrivals)
}

func (v *flvViewer) waitFrames(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); v.frames() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			v.mu.Lock()
			err := v.err
			v.mu.Unlock()
			t.Fatalf("FLV viewer: %d frames within %v, want %d (err %v)", v.frames(), timeout, n, err)
		}
	}
}

// window returns the frames that arrived in [from, to).
func (v *flvViewer) window(from, to time.Time) (arr []time.Time, dts []time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, a := range v.arrivals {
		if !a.Before(from) && a.Before(to) {
			arr = append(arr, a)
			dts = append(dts, v.dts[i])
		}
	}
	return arr, dts
}

// maxGap is the longest time between two frames arriving in [from, to).
func (v *flvViewer) maxGap(from, to time.Time) time.Duration {
	arr, _ := v.window(from, to)
	var g time.Duration
	for i := 1; i < len(arr); i++ {
		g = max(g, arr[i].Sub(arr[i-1]))
	}
	return g
}

// lateness returns, for the frames that arrived in [from, to), how much
// later than its DTS each one arrived compared with the most punctual
// frame of the window: 0 for a viewer that gets every frame exactly on the
// source's clock, growing with jitter and with any delay a stuck neighbour
// adds.
func (v *flvViewer) lateness(from, to time.Time) []time.Duration {
	arr, dts := v.window(from, to)
	if len(arr) == 0 {
		return nil
	}
	lag := make([]time.Duration, len(arr))
	for i := range arr {
		lag[i] = arr[i].Sub(arr[0]) - (dts[i] - dts[0])
	}
	m := slices.Min(lag)
	for i := range lag {
		lag[i] -= m
	}
	slices.Sort(lag)
	return lag
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// readFLV parses an FLV stream and calls onVideo with the DTS of each
// video frame (not the sequence headers).
func readFLV(r io.Reader, onVideo func(time.Duration)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	hdr := make([]byte, 13)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return err
	}
	if string(hdr[:3]) != "FLV" {
		return fmt.Errorf("not FLV: %q", hdr[:3])
	}
	var body []byte
	for {
		th := make([]byte, 11)
		if _, err := io.ReadFull(br, th); err != nil {
			return err
		}
		size := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
		ts := uint32(th[7])<<24 | uint32(th[4])<<16 | uint32(th[5])<<8 | uint32(th[6])
		body = slices.Grow(body[:0], size+4)[:size+4]
		if _, err := io.ReadFull(br, body); err != nil {
			return err
		}
		// AVC NALU packets (or any enhanced-RTMP coded frame) only.
		if th[0] == 9 && size >= 2 && (body[0]&0x80 == 0 && body[1] == 1 || body[0]&0x80 != 0 && body[0]&0x0f != 0) {
			onVideo(time.Duration(ts) * time.Millisecond)
		}
	}
}

// rtmpPublisher connects to the server as an RTMP publisher of name and
// returns the client once publish is accepted; the test then writes raw
// chunks on its connection (chunk size 65536, as the client announced).
func rtmpPublisher(t *testing.T, s *server, name string) *gortmplib.Client {
	t.Helper()
	u, err := url.Parse(s.url(name))
	if err != nil {
		t.Fatal(err)
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// chunkHeader0 is a type 0 chunk header: absolute timestamp, announced
// message length, type, message stream ID.
func chunkHeader0(csid byte, length uint32, typ byte, streamID uint32) []byte {
	b := []byte{csid & 0x3f, 0, 0, 0, byte(length >> 16), byte(length >> 8), byte(length), typ}
	return binary.LittleEndian.AppendUint32(b, streamID)
}

// writeUntilClosed writes total bytes of pseudo-random data in chunks of
// 64 KiB (no chunk headers: they are meant to be the body of a message,
// or garbage) until a write fails; it returns the bytes written.
func writeUntilClosed(c net.Conn, total int, seed int64) int {
	rnd := rand.New(rand.NewSource(seed))
	buf := make([]byte, 64<<10)
	n := 0
	for n < total {
		rnd.Read(buf)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		w, err := c.Write(buf[:min(len(buf), total-n)])
		n += w
		if err != nil {
			break
		}
	}
	return n
}

// TestHostileSlowlorisHTTP: 200 connections that send a request head one
// byte every 100 ms, and 20 that send complete headers and then a body one
// byte every 100 ms, are all closed by the server's request timeouts,
// while an HTTP-FLV viewer keeps getting frames without a stall and HLS
// answers at once. Memory stays bounded and fds and goroutines come back.
func TestHostileSlowlorisHTTP(t *testing.T) {
	t.Parallel()
	e := startHostile(t)
	addr := e.httpAddr(t)
	// The HLS muxer is started first, so that its memory is in the
	// baseline.
	hc := &http.Client{Timeout: 5 * time.Second}
	if res, err := hc.Get("http://" + addr + "/live/demo/index.m3u8"); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	hc.CloseIdleConnections()
	base := e.baseline(t)
	peak := e.rssPeak(t)

	good := watchFLV(t, "http://"+addr+"/live/demo.flv")
	good.waitFrames(t, 10, 5*time.Second)

	const heads, bodies = 200, 20
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var headClosed, bodyClosed []time.Duration
	// trickle sends head at once, then the rest of prefix and fill bytes
	// for ever, one every 100 ms.
	trickle := func(c net.Conn, head, prefix string, fill byte) {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		for i := 0; ; i++ {
			b := fill
			if i < len(prefix) {
				b = prefix[i]
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := range heads + bodies {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		body := i >= heads
		wg.Add(2)
		go func() {
			defer wg.Done()
			if body {
				trickle(c, "POST /live/demo/whep HTTP/1.1\r\nHost: "+addr+
					"\r\nContent-Type: application/sdp\r\nContent-Length: 100000\r\n\r\n", "v=0\r\n", 'v')
			} else {
				trickle(c, "", "GET /live/demo.flv HTTP/1.1\r\nHost: "+addr+"\r\nX-Slow: ", 'a')
			}
		}()
		go func() {
			defer wg.Done()
			d := closedAfter(c, start, hostileServerTimeout+10*time.Second)
			c.Close() // stops the trickle
			mu.Lock()
			if body {
				bodyClosed = append(bodyClosed, d)
			} else {
				headClosed = append(headClosed, d)
			}
			mu.Unlock()
		}()
	}
	opened := time.Since(start)

	// Once the server holds them all, HLS answers on a new connection.
	var mid procSnap
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if mid = e.snap(t); mid.fds >= base.fds+heads+bodies {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d fds (baseline %d): the slow connections were not accepted",
				mid.fds, base.fds)
		}
	}
	hlsStart := time.Now()
	res, err := hc.Get("http://" + addr + "/live/demo/index.m3u8")
	if err != nil {
		t.Fatalf("HLS during the attack: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	hlsTook := time.Since(hlsStart)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HLS during the attack: %s", res.Status)
	}
	hc.CloseIdleConnections()

	wg.Wait()
	attackEnd := time.Now()
	gap := good.maxGap(start, attackEnd)
	framesDuring := len(first(good.window(start, attackEnd)))
	good.close()
	after := e.settled(t, base, 10*time.Second)

	t.Logf("opened %d slow-header and %d slow-body connections in %v; during the attack: %v", heads, bodies,
		opened.Round(time.Millisecond), mid)
	t.Logf("slow headers closed after %s", durations(headClosed))
	t.Logf("slow bodies closed after %s", durations(bodyClosed))
	t.Logf("HLS playlist during the attack in %v; FLV viewer: %d frames, longest gap %v",
		hlsTook.Round(time.Millisecond), framesDuring, gap.Round(time.Millisecond))
	t.Logf("before %v; after %v", base, after)
	// A loose bound: 256 KiB a connection in this -race build (about 5
	// times the memory of a normal one), and 16 MiB for the churn of the
	// HLS muxer and the FLV viewer, which most of the growth measured is.
	checkRSS(t, "slowloris", base.rssKiB, peak(), 16+(heads+bodies)/4)

	limit := hostileServerTimeout + 5*time.Second
	for what, ds := range map[string][]time.Duration{"slow header": headClosed, "slow body": bodyClosed} {
		for _, d := range ds {
			if d >= limit {
				t.Errorf("a %s connection was still open %v after it started", what, d)
				break
			}
		}
	}
	if hlsTook > 2*time.Second {
		t.Errorf("HLS playlist took %v during the attack", hlsTook)
	}
	if gap > time.Second {
		t.Errorf("the FLV viewer stalled for %v during the attack", gap)
	}
}

func first[A, B any](a A, _ B) A { return a }

// TestHostileSlowlorisRTSP: 50 RTSP connections that send a request one
// byte every 300 ms are closed by the listener's request timeout, while a
// client that sends a whole OPTIONS every 3 s without playing stays, and
// an RTSP viewer plays meanwhile.
func TestHostileSlowlorisRTSP(t *testing.T) {
	t.Parallel()
	e := startHostile(t)
	addr := e.rtspAddr(t)
	base := e.baseline(t)
	peak := e.rssPeak(t)

	const n = 50
	start := time.Now()
	var wg sync.WaitGroup
	closed := make([]time.Duration, n)
	prefix := "OPTIONS rtsp://" + addr + "/live/demo RTSP/1.0\r\nCSeq: 1\r\nX-Slow: "
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(2)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				b := byte('a')
				if k < len(prefix) {
					b = prefix[k]
				}
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		}()
		go func() {
			defer wg.Done()
			closed[i] = closedAfter(c, start, hostileServerTimeout+10*time.Second)
			c.Close()
		}()
	}

	// A client that is not playing but sends whole requests in time.
	keep, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	keepErr := make(chan error, 1)
	go func() {
		br := bufio.NewReader(keep)
		for k := 1; time.Since(start) < hostileServerTimeout+2*time.Second; k++ {
			keep.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprintf(keep, "OPTIONS rtsp://%s/live/demo RTSP/1.0\r\nCSeq: %d\r\n\r\n", addr, k); err != nil {
				keepErr <- err
				return
			}
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					keepErr <- fmt.Errorf("OPTIONS %d: %w", k, err)
					return
				}
				if l == "\r\n" {
					break
				}
			}
			time.Sleep(3 * time.Second)
		}
		keepErr <- nil
	}()

	r, err := rtspProbe(t, "rtsp://"+addr+"/live/demo", "tcp", 30)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 10)
	mid := e.snap(t)
	wg.Wait()
	if err := <-keepErr; err != nil {
		t.Errorf("the client sending whole requests was closed: %v", err)
	}
	keep.Close()
	after := e.settled(t, base, 10*time.Second)

	t.Logf("%d slow RTSP requests closed after %s; during: %v", n, durations(closed), mid)
	t.Logf("before %v; after %v", base, after)
	checkRSS(t, "RTSP slowloris", base.rssKiB, peak(), 32)
	for i, d := range closed {
		if d >= hostileServerTimeout+5*time.Second {
			t.Errorf("slow RTSP connection %d still open after %v", i, d)
			break
		}
	}
}

// TestHostileRTMPSilentAfterHandshake: RTMP clients that complete the
// handshake and then send nothing, or send connect and publish and then no
// media, are closed by the handshake timeout; a player still plays.
func TestHostileRTMPSilentAfterHandshake(t *testing.T) {
	t.Parallel()
	e := startHostile(t)
	base := e.baseline(t)
	peak := e.rssPeak(t)

	const n = 50
	start := time.Now()
	var wg sync.WaitGroup
	closed := make([]time.Duration, n+1)
	for i := range n {
		c, err := net.Dial("tcp", e.rtmp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := handshake.DoClient(c, false, false); err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		c.SetDeadline(time.Time{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			closed[i] = closedAfter(c, start, hostileServerTimeout+10*time.Second)
		}()
	}
	// One more goes as far as publish, then sends no media.
	pub := rtmpPublisher(t, e.server, "live/silent")
	wg.Add(1)
	go func() {
		defer wg.Done()
		closed[n] = closedAfter(pub.NetConn(), start, hostileServerTimeout+10*time.Second)
	}()
	mid := e.snap(t)
	wg.Wait()

	r, err := probe(t, e.url("live/demo"), 30)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 10)
	after := e.settled(t, base, 10*time.Second)

	t.Logf("%d silent clients closed after %s; during: %v", n+1, durations(closed), mid)
	t.Logf("before %v; after %v", base, after)
	checkRSS(t, "silent RTMP", base.rssKiB, peak(), 32)
	for i, d := range closed {
		if d >= hostileServerTimeout+5*time.Second {
			t.Errorf("silent client %d still open after %v", i, d)
		}
	}
	e.waitLog(t, `msg="publish failed: no usable tracks" .*stream=live/silent`, time.Second)
}

// TestHostileRTMPChunkSize16MiB: a publisher announces a 16 MiB chunk size
// and then starts a 16 MiB message in one chunk. The server refuses the
// chunk size and closes the connection long before the message is in:
// memory stays bounded and the server keeps serving.
func TestHostileRTMPChunkSize16MiB(t *testing.T) {
	e := startHostile(t)
	base := e.baseline(t)
	peak := e.rssPeak(t)

	c := rtmpPublisher(t, e.server, "live/chunky")
	nc := c.NetConn()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() { closed <- closedAfter(nc, start, 20*time.Second) }()

	const size = 16 << 20
	msg := chunkHeader0(2, 4, 1, 0) // Set Chunk Size
	msg = binary.BigEndian.AppendUint32(msg, size)
	msg = append(msg, chunkHeader0(6, size-1, 9, 1)...) // a video message, 16 MiB - 1 (the most 24 bits hold)
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(msg); err != nil {
		t.Fatalf("writing Set Chunk Size: %v", err)
	}
	sent := writeUntilClosed(nc, size-1, 1)
	d := <-closed

	r, err := probe(t, e.url("live/demo"), 30)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 10)
	nc.Close()
	after := e.settled(t, base, 10*time.Second)

	t.Logf("closed after %v, having taken %.1f of 16 MiB", d.Round(time.Millisecond), float64(sent)/(1<<20))
	t.Logf("before %v; after %v", base, after)
	checkRSS(t, "16 MiB chunk size", base.rssKiB, peak(), 32)
	if d >= 5*time.Second {
		t.Errorf("the connection stayed open %v", d)
	}
	e.waitLog(t, `stream=live/chunky.*chunk size \(16777216\) exceeds maximum`, time.Second)
}

// TestHostileRTMPOversizedMessage: a publisher sends a message announced
// at 16 MiB, one whose body runs past the length its header announced
// (the rest is garbage parsed as chunk headers), and one that opens a
// 10 MiB message on every chunk stream at once. Each is closed, memory
// stays bounded and the server keeps serving.
func TestHostileRTMPOversizedMessage(t *testing.T) {
	e := startHostile(t)
	base := e.baseline(t)

	cases := []struct {
		name   string
		stream string
		send   func(nc net.Conn) int
		logRe  string
		rssMiB float64
	}{
		{"announced 16 MiB", "live/huge", func(nc net.Conn) int {
			nc.Write(chunkHeader0(6, 1<<24-1, 9, 1))
			return writeUntilClosed(nc, 1<<24-1, 2)
		}, `stream=live/huge.*16777215`, 32},
		{"longer than announced", "live/long", func(nc net.Conn) int {
			msg := chunkHeader0(6, 1000, 9, 1)
			msg = append(msg, 0x17, 1, 0, 0, 0) // AVC NALU, then 995 bytes of it
			msg = append(msg, make([]byte, 995)...)
			nc.Write(msg)
			return 1000 + writeUntilClosed(nc, 16<<20, 3)
		}, `msg="publish failed: no usable tracks" .*stream=live/long`, 48},
		{"10 MiB on every chunk stream", "live/wide", func(nc net.Conn) int {
			// Chunk streams 3..63 each open a 10 MiB message and send
			// 1 MiB of it (16 chunks of 64 KiB).
			sent := 0
			body := make([]byte, 64<<10)
			for k := range 16 {
				for csid := byte(3); csid <= 63; csid++ {
					var b []byte
					if k == 0 {
						b = chunkHeader0(csid, 10<<20, 9, 1)
					} else {
						b = []byte{0xc0 | csid}
					}
					b = append(b, body...)
					nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
					w, err := nc.Write(b)
					sent += w
					if err != nil {
						return sent
					}
				}
			}
			return sent
		}, `stream=live/wide.*chunk stream over its memory budget`, 48},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snap(t)
			peak := e.rssPeak(t)
			c := rtmpPublisher(t, e.server, tc.stream)
			nc := c.NetConn()
			start := time.Now()
			closed := make(chan time.Duration, 1)
			go func() { closed <- closedAfter(nc, start, 20*time.Second) }()
			sent := tc.send(nc)
			d := <-closed
			nc.Close()
			t.Logf("closed after %v, having taken %.1f MiB", d.Round(time.Millisecond), float64(sent)/(1<<20))
			checkRSS(t, tc.name, before.rssKiB, peak(), tc.rssMiB)
			if d >= hostileServerTimeout+5*time.Second {
				t.Errorf("the connection stayed open %v", d)
			}
			e.waitLog(t, tc.logRe, 2*time.Second)
		})
	}
	// Before connect: 20 clients raise the chunk size to 10 MiB and open
	// a 10 MiB command message, sending 1 KiB of it. Unguarded, gortmplib
	// allocates each chunk's 10 MiB up front and holds it until the
	// handshake timeout.
	t.Run("10 MiB chunk before connect", func(t *testing.T) {
		before := e.snap(t)
		peak := e.rssPeak(t)
		const conns = 20
		var cs []net.Conn
		for range conns {
			c, err := net.Dial("tcp", e.rtmp)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := handshake.DoClient(c, false, false); err != nil {
				t.Fatal(err)
			}
			msg := chunkHeader0(2, 4, 1, 0)
			msg = binary.BigEndian.AppendUint32(msg, 10<<20)
			msg = append(msg, chunkHeader0(3, 10<<20, 20, 0)...)
			msg = append(msg, make([]byte, 1024)...)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Time{})
			cs = append(cs, c)
		}
		start := time.Now()
		var ds []time.Duration
		for _, c := range cs {
			ds = append(ds, closedAfter(c, start, hostileServerTimeout+5*time.Second))
		}
		t.Logf("closed after %s", durations(ds))
		checkRSS(t, "10 MiB chunks before connect", before.rssKiB, peak(), 32)
		if slices.Max(ds) >= 5*time.Second {
			t.Errorf("a client stayed connected %v", slices.Max(ds))
		}
		e.waitLog(t, `msg="handshake failed".*chunk stream over its memory budget`, 2*time.Second)
	})

	r, err := probe(t, e.url("live/demo"), 30)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 10)
	after := e.settled(t, base, 10*time.Second)
	t.Logf("before %v; after %v", base, after)
}

// TestHostileIdleConnectFlood: 2000 TCP connections spread over the RTMP,
// RTSP and HTTP listeners that never send a byte are all accepted, then
// closed by the listeners' timeouts; a player plays meanwhile, and the
// server ends with the fds and goroutines it started with.
func TestHostileIdleConnectFlood(t *testing.T) {
	t.Parallel()
	const n = 2000
	raiseNoFile(t, n)
	e := startHostile(t)
	base := e.baseline(t)
	peak := e.rssPeak(t)
	addrs := map[string]string{"rtmp": e.rtmp, "rtsp": e.rtspAddr(t), "http": e.httpAddr(t)}
	protos := []string{"rtmp", "rtsp", "http"}

	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	start := time.Now()
	for i := range n {
		c, err := net.DialTimeout("tcp", addrs[protos[i%3]], 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d (%s): %v", i, protos[i%3], err)
		}
		conns = append(conns, c)
	}
	opened := time.Since(start)

	// All accepted: the server holds an fd for each.
	var mid procSnap
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mid = e.snap(t)
		if mid.fds >= base.fds+n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d fds, want at least %d: not every connection was accepted",
				mid.fds, base.fds+n)
		}
	}
	// A player is served meanwhile.
	playStart := time.Now()
	r, err := probe(t, e.url("live/demo"), 30)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 10)
	playTook := time.Since(playStart)

	closed := make(map[string][]time.Duration)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := closedAfter(c, start, hostileServerTimeout+10*time.Second)
			mu.Lock()
			closed[protos[i%3]] = append(closed[protos[i%3]], d)
			mu.Unlock()
		}()
	}
	wg.Wait()
	after := e.settled(t, base, 10*time.Second)

	t.Logf("opened %d connections in %v; while they were open: %v; ffprobe took %v", n,
		opened.Round(time.Millisecond), mid, playTook.Round(time.Millisecond))
	for _, p := range protos {
		t.Logf("%s: closed after %s", p, durations(closed[p]))
	}
	t.Logf("before %v; after %v", base, after)
	peakKiB := peak()
	t.Logf("RSS per idle connection: %.1f KiB", float64(peakKiB-base.rssKiB)/n)
	// 96 KiB an idle connection at most, in this -race build (about 5
	// times the memory of a normal one).
	checkRSS(t, "idle connections", base.rssKiB, peakKiB, n*96/1024)
	for _, p := range protos {
		for _, d := range closed[p] {
			if d >= hostileServerTimeout+5*time.Second {
				t.Errorf("an idle %s connection was still open %v after the flood started", p, d)
				break
			}
		}
	}
}

// stuckViewer is a viewer that plays and then never reads, on a socket
// with a small receive buffer.
type stuckViewer struct {
	proto string
	local string // its address, as the server logs it
	c     net.Conn
}

func smallRcvBufDialer() *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

func stuckRTMP(t *testing.T, s *server) *stuckViewer {
	t.Helper()
	u, err := url.Parse(s.url("live/demo"))
	if err != nil {
		t.Fatal(err)
	}
	c := &gortmplib.Client{URL: u, DialContext: smallRcvBufDialer().DialContext}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &stuckViewer{proto: "rtmp", local: c.NetConn().LocalAddr().String(), c: c.NetConn()}
}

func stuckFLV(t *testing.T, addr string) *stuckViewer {
	t.Helper()
	c, err := smallRcvBufDialer().Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "GET /live/demo.flv HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
		t.Fatal(err)
	}
	return &stuckViewer{proto: "flv", local: c.LocalAddr().String(), c: c}
}

// stuckRTSP plays over RTSP, interleaved on its TCP connection, by hand
// (DESCRIBE, SETUP of every media, PLAY), then never reads.
func stuckRTSP(t *testing.T, addr string) *stuckViewer {
	t.Helper()
	c, err := smallRcvBufDialer().Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	base := "rtsp://" + addr + "/live/demo"
	cseq := 0
	do := func(method, u, hdr string) (map[string]string, string) {
		t.Helper()
		cseq++
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "%s %s RTSP/1.0\r\nCSeq: %d\r\n%s\r\n", method, u, cseq, hdr); err != nil {
			t.Fatal(err)
		}
		status, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "RTSP/1.0 200") {
			t.Fatalf("%s: %q %v", method, status, err)
		}
		h := map[string]string{}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", method, err)
			}
			l = strings.TrimSpace(l)
			if l == "" {
				break
			}
			if k, v, ok := strings.Cut(l, ":"); ok {
				h[strings.ToLower(k)] = strings.TrimSpace(v)
			}
		}
		n, _ := strconv.Atoi(h["content-length"])
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return h, string(body)
	}
	h, sdp := do("DESCRIBE", base, "Accept: application/sdp\r\n")
	contentBase := cmp.Or(h["content-base"], base+"/")
	session, ch, media := "", 0, false
	for _, l := range strings.Split(sdp, "\n") {
		l = strings.TrimSpace(l)
		media = media || strings.HasPrefix(l, "m=")
		ctl, ok := strings.CutPrefix(l, "a=control:")
		if !ok || !media {
			continue
		}
		if !strings.HasPrefix(ctl, "rtsp://") {
			ctl = strings.TrimSuffix(contentBase, "/") + "/" + ctl
		}
		hdr := fmt.Sprintf("Transport: RTP/AVP/TCP;unicast;interleaved=%d-%d\r\n", ch, ch+1)
		if session != "" {
			hdr += "Session: " + session + "\r\n"
		}
		sh, _ := do("SETUP", ctl, hdr)
		session, _, _ = strings.Cut(sh["session"], ";")
		ch += 2
	}
	if ch == 0 {
		t.Fatalf("no media to set up in:\n%s", sdp)
	}
	do("PLAY", contentBase, "Session: "+session+"\r\nRange: npt=0.000-\r\n")
	c.SetDeadline(time.Time{})
	return &stuckViewer{proto: "rtsp", local: c.LocalAddr().String(), c: c}
}

// TestHostileStuckViewer: RTMP, HTTP-FLV and RTSP (interleaved) viewers
// that play and never read (4 KiB receive buffers) are disconnected with a logged slow-viewer
// reason within slow_viewer_timeout of their sockets filling up, and a
// normal HTTP-FLV viewer's frame lateness (arrival against DTS, relative
// to its most punctual frame) is the same with them as without them: p99
// within 100 ms of the baseline's.
func TestHostileStuckViewer(t *testing.T) {
	e := startHostile(t)
	addr := e.httpAddr(t)
	base := e.baseline(t)
	peak := e.rssPeak(t)

	good := watchFLV(t, "http://"+addr+"/live/demo.flv")
	good.waitFrames(t, 10, 5*time.Second)
	// Past the cached GOP's burst, measure 4 s alone.
	time.Sleep(time.Second)
	b0 := time.Now()
	time.Sleep(4 * time.Second)
	b1 := time.Now()

	var stuck []*stuckViewer
	for range 3 {
		stuck = append(stuck, stuckRTMP(t, e.server), stuckFLV(t, addr), stuckRTSP(t, e.rtspAddr(t)))
	}
	s0 := time.Now()
	// Each stuck viewer's "player left" line, with the reason.
	left := make(map[string]string)
	var leftAt time.Time
	for deadline := s0.Add(hostileSlowViewer + 10*time.Second); len(left) < len(stuck); time.Sleep(50 * time.Millisecond) {
		for _, l := range e.logLines() {
			if !strings.Contains(l, `msg="player left"`) && !strings.Contains(l, `msg="rtsp viewer left"`) {
				continue
			}
			for _, sv := range stuck {
				if _, ok := left[sv.local]; !ok && strings.Contains(l, "remote="+sv.local+" ") {
					left[sv.local] = l
					leftAt = time.Now()
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d stuck viewers disconnected within %v", len(left), len(stuck), deadline.Sub(s0))
		}
	}
	// Keep measuring a little after the last one left.
	time.Sleep(500 * time.Millisecond)
	s1 := time.Now()
	without, with := good.lateness(b0, b1), good.lateness(s0, s1)
	framesWith := len(with)
	gap := good.maxGap(s0, s1)
	good.close()
	for _, sv := range stuck {
		sv.c.Close()
	}
	after := e.settled(t, base, 10*time.Second)

	t.Logf("stuck viewers disconnected %v after they connected (slow_viewer_timeout %v)",
		leftAt.Sub(s0).Round(time.Millisecond), hostileSlowViewer)
	for _, sv := range stuck {
		t.Logf("%s %s: %s", sv.proto, sv.local, left[sv.local])
	}
	t.Logf("normal viewer lateness without stuck viewers: p50 %v p99 %v max %v (%d frames)",
		percentile(without, .5), percentile(without, .99), percentile(without, 1), len(without))
	t.Logf("normal viewer lateness with stuck viewers:    p50 %v p99 %v max %v (%d frames, longest gap %v)",
		percentile(with, .5), percentile(with, .99), percentile(with, 1), framesWith, gap.Round(time.Millisecond))
	t.Logf("before %v; after %v", base, after)
	checkRSS(t, "stuck viewers", base.rssKiB, peak(), 32)

	for _, sv := range stuck {
		if l := left[sv.local]; !strings.Contains(l, "slow viewer") {
			t.Errorf("%s stuck viewer left without a slow-viewer reason: %s", sv.proto, l)
		}
	}
	if d := leftAt.Sub(s0); d > hostileSlowViewer+8*time.Second {
		t.Errorf("the last stuck viewer left %v after it connected", d)
	}
	if len(without) < 50 || framesWith < 25 {
		t.Fatalf("too few frames measured: %d without, %d with", len(without), framesWith)
	}
	if diff := percentile(with, .99) - percentile(without, .99); diff > 100*time.Millisecond {
		t.Errorf("normal viewer's p99 lateness grew %v with stuck viewers", diff)
	}
}

// TestHostileWHEPNoDTLS: WHEP clients that POST an offer and never finish
// connecting: pion peers closed right after the POST (no ICE), hand-made
// offers whose one candidate is a UDP socket that never answers, and
// hand-made offers whose socket completes ICE (answers the server's checks
// and nominates the pair) but drops every DTLS packet. The server removes
// each peer after peer_timeout, logging why, without having packetized
// media for it, and its goroutines and fds come back.
func TestHostileWHEPNoDTLS(t *testing.T) {
	e := startHostile(t)
	base := "http://" + e.httpAddr(t)
	e.waitLog(t, `msg=listening proto=webrtc addr=127\.0\.0\.1:`, 10*time.Second)
	before := e.baseline(t)
	peak := e.rssPeak(t)

	start := time.Now()
	const pionPeers, rawPeers, iceOnly = 5, 5, 3
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	for range pionPeers {
		c, err := whepclient.New(whepclient.Options{Audio: true})
		if err != nil {
			t.Fatal(err)
		}
		c.Start()
		offer, err := c.Offer()
		if err != nil {
			t.Fatal(err)
		}
		res, err := whepclient.Post(ctx, base+"/live/demo/whep", "", offer)
		c.Close() // gone before ICE: the answer is never applied
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("POST: %v %d %s", err, res.Status, res.Body)
		}
		ids = append(ids, res.Location)
	}
	for i := range rawPeers {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		res, err := whepclient.Post(ctx, base+"/live/demo/whep", "", handMadeOffer(i, u.LocalAddr().(*net.UDPAddr).Port))
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("POST of a hand-made offer: %v %d %s", err, res.Status, res.Body)
		}
		ids = append(ids, res.Location)
	}
	var ice []*iceOnlyPeer
	for i := range iceOnly {
		p := newICEOnlyPeer(t, 100+i)
		res, err := whepclient.Post(ctx, base+"/live/demo/whep", "", p.offer())
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("POST of a hand-made offer: %v %d %s", err, res.Status, res.Body)
		}
		ids = append(ids, res.Location)
		p.start(t, res.Body)
		ice = append(ice, p)
	}
	mid := e.snap(t)

	// Every peer removed, with its reason, within peer_timeout + margin.
	n := pionPeers + rawPeers + iceOnly
	var removed []string
	for deadline := start.Add(hostilePeerTimeout + 5*time.Second); ; time.Sleep(50 * time.Millisecond) {
		removed = removed[:0]
		for _, l := range e.logLines() {
			if strings.Contains(l, `msg="webrtc peer removed"`) {
				removed = append(removed, l)
			}
		}
		if len(removed) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d peers removed within %v", len(removed), n, deadline.Sub(start))
		}
	}
	took := time.Since(start)
	for _, p := range ice {
		p.close()
		t.Logf("ICE-only peer %s: ICE nominated %v, %d DTLS packets dropped", p.ufrag, p.nominated.Load(), p.dtls.Load())
		if !p.nominated.Load() || p.dtls.Load() == 0 {
			t.Errorf("ICE-only peer %s: the server did not complete ICE and start DTLS", p.ufrag)
		}
	}
	for _, loc := range ids {
		if r, _ := whepclient.Do(context.Background(), http.MethodDelete, base+loc, "", nil); r.Status != http.StatusNotFound {
			t.Errorf("DELETE %s after the timeout: %d, want 404", loc, r.Status)
		}
	}
	http.DefaultClient.CloseIdleConnections() // whepclient's keep-alive connection
	after := e.settled(t, before, 10*time.Second)
	t.Logf("%d peers removed %v after the first POST (peer_timeout %v); during: %v", n,
		took.Round(time.Millisecond), hostilePeerTimeout, mid)
	t.Logf("e.g. %s", removed[0])
	t.Logf("before %v; after %v", before, after)
	checkRSS(t, "WHEP without DTLS", before.rssKiB, peak(), 64)
	reasons := map[string]int{}
	for _, l := range removed {
		m := regexp.MustCompile(`reason="([^"]*)"`).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("no reason: %s", l)
		}
		reasons[m[1]]++
		// A peer that never connected costs no media work.
		if !strings.Contains(l, " sent_bytes=0 ") {
			t.Errorf("a peer that never connected was sent media: %s", l)
		}
	}
	t.Logf("removal reasons: %v", reasons)
	if reasons["ICE did not connect in time"] != pionPeers+rawPeers || reasons["DTLS did not complete in time"] != iceOnly {
		t.Errorf("removal reasons %v, want %d ICE and %d DTLS timeouts", reasons, pionPeers+rawPeers, iceOnly)
	}
}

// iceOnlyPeer is a hand-made WHEP client that does ICE (it answers the
// server's connectivity checks and sends its own, nominating the pair, as
// the controlling agent) and drops every DTLS packet.
type iceOnlyPeer struct {
	u          *net.UDPConn
	ufrag, pwd string
	nominated  atomic.Bool  // the server answered a check with USE-CANDIDATE
	dtls       atomic.Int64 // DTLS records from the server, dropped
	done       chan struct{}
}

func newICEOnlyPeer(t *testing.T, i int) *iceOnlyPeer {
	t.Helper()
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &iceOnlyPeer{u: u, ufrag: "hostile" + strconv.Itoa(i), pwd: "hostilehostilehostilehostile" + strconv.Itoa(i),
		done: make(chan struct{})}
	t.Cleanup(p.close)
	return p
}

func (p *iceOnlyPeer) offer() string {
	return strings.Replace(strings.Replace(handMadeOffer(0, p.u.LocalAddr().(*net.UDPAddr).Port),
		"a=ice-ufrag:hostile0", "a=ice-ufrag:"+p.ufrag, 1),
		"a=ice-pwd:hostilehostilehostilehostile0", "a=ice-pwd:"+p.pwd, 1)
}

// start reads the server's ICE credentials and candidate from its answer
// and runs the client until close.
func (p *iceOnlyPeer) start(t *testing.T, answer string) {
	t.Helper()
	var ufrag, pwd string
	var server *net.UDPAddr
	for _, l := range strings.Split(answer, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok {
			pwd = v
		}
		if f := strings.Fields(l); len(f) >= 8 && strings.HasPrefix(f[0], "a=candidate:") && f[2] == "udp" && f[7] == "host" {
			port, _ := strconv.Atoi(f[5])
			server = &net.UDPAddr{IP: net.ParseIP(f[4]), Port: port}
		}
	}
	if ufrag == "" || pwd == "" || server == nil {
		t.Fatalf("answer without ICE credentials or a UDP candidate:\n%s", answer)
	}
	go func() { // checks, with USE-CANDIDATE, every 50 ms
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			m, err := stun.Build(stun.TransactionID, stun.BindingRequest,
				stun.NewUsername(ufrag+":"+p.ufrag), ice.PriorityAttr(2130706431), ice.AttrControlling(1),
				ice.UseCandidate(), stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
			if err == nil {
				p.u.WriteToUDP(m.Raw, server)
			}
			select {
			case <-p.done:
				return
			case <-tk.C:
			}
		}
	}()
	go func() { // answers the server's checks; drops DTLS
		buf := make([]byte, 1500)
		for {
			n, from, err := p.u.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if n > 0 && buf[0] >= 20 && buf[0] <= 63 {
				p.dtls.Add(1)
				continue
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil {
				continue
			}
			switch m.Type {
			case stun.BindingSuccess:
				p.nominated.Store(true)
			case stun.BindingRequest:
				r, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
					&stun.XORMappedAddress{IP: from.IP, Port: from.Port},
					stun.NewShortTermIntegrity(p.pwd), stun.Fingerprint)
				if err == nil {
					p.u.WriteToUDP(r.Raw, from)
				}
			}
		}
	}()
}

func (p *iceOnlyPeer) close() {
	select {
	case <-p.done:
	default:
		close(p.done)
		p.u.Close()
	}
}

// handMadeOffer is a recvonly H.264 WHEP offer written by hand: made-up
// ICE credentials and DTLS fingerprint, one host candidate on port.
func handMadeOffer(i, port int) string {
	fp := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	lines := []string{
		"v=0",
		"o=- " + strconv.Itoa(4000+i) + " 2 IN IP4 127.0.0.1",
		"s=-",
		"t=0 0",
		"a=group:BUNDLE 0",
		"a=fingerprint:sha-256 " + fp,
		"m=video 9 UDP/TLS/RTP/SAVPF 96",
		"c=IN IP4 0.0.0.0",
		"a=mid:0",
		"a=ice-ufrag:hostile" + strconv.Itoa(i),
		"a=ice-pwd:hostilehostilehostilehostile" + strconv.Itoa(i),
		"a=setup:actpass",
		"a=recvonly",
		"a=rtcp-mux",
		"a=rtpmap:96 H264/90000",
		"a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		"a=candidate:1 1 udp 2130706431 127.0.0.1 " + strconv.Itoa(port) + " typ host",
		"a=end-of-candidates",
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}
