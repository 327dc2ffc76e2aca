package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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

	"github.com/gorilla/websocket"

	"github.com/liveedge/liveedge/internal/whepclient"
)

// Hostile clients of the two WebSocket endpoints, WS-FLV
// (/<app>/<stream>.flv) and WebRTC signalling (/<app>/<stream>/ws),
// against the real binary, in the manner of e2e_hostile_test.go: a
// baseline of the process (VmRSS, fds, goroutines), the hostile clients,
// the server's timeouts and limits closing them, memory bounded while they
// last, a normal viewer unaffected, and fds and goroutines back to the
// baseline afterwards.
//
// The limits and timeouts asserted here, as the server has them:
//   - WS-FLV: a viewer whose connection takes no data for
//     hub.slow_viewer_timeout is dropped (flv.Params.WriteTimeout; the
//     write deadline is refreshed every WriteTimeout/4, so the write that
//     blocks fails between 3/4 and all of it after it started); its socket
//     send buffer is capped at flv.DefaultSendBuffer (128 KiB, doubled by
//     the kernel); what it sends is read with a 4096-byte message limit;
//     at shutdown a write blocked on a full socket gets 1 s more, then
//     its connection is closed (before, Server.Close waited for the whole
//     write timeout: up to 10 s, past main's 5 s shutdown bound).
//   - signalling: messages up to signaling.DefaultMaxBody (64 KiB); a ping
//     every 25 s and a socket silent for 60 s closed (wsPingInterval,
//     wsPongWait: constants, no configuration shortens them, so the tests
//     check a silent socket is pinged and still open after 25 s, not that
//     it is closed at 60 s); one session a socket, ended (and the socket
//     closed) with the WebRTC peer.

const (
	hwsReadLimit    = 4096     // the WS-FLV read limit
	hwsMaxBody      = 64 << 10 // signaling.DefaultMaxBody
	hwsPingInterval = 25 * time.Second
	hwsPongWait     = 60 * time.Second
)

// hwsMsg is a signalling message.
type hwsMsg struct {
	Type    string `json:"type"`
	SDP     string `json:"sdp,omitempty"`
	ID      string `json:"id,omitempty"`
	Message string `json:"message,omitempty"`
}

// hwsDial upgrades to ws://addr+path, dialing with d (nil: a plain
// dialer); the connection is closed at the end of the test.
func hwsDial(t *testing.T, d *net.Dialer, addr, path string) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = &net.Dialer{Timeout: 5 * time.Second}
	}
	wd := &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 5 * time.Second}
	c, res, err := wd.Dial("ws://"+addr+path, nil)
	if err != nil {
		t.Fatalf("upgrade %s: %v", path, err)
	}
	res.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

// hwsFrame is a client frame of opcode op announcing n bytes of payload
// (the payload given may be shorter: the rest is the caller's to send, or
// a lie), masked unless unmasked is set.
func hwsFrame(op byte, fin, unmasked bool, n uint64, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	var m byte = 0x80
	if unmasked {
		m = 0
	}
	switch {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, n)
	}
	if unmasked {
		return append(b, payload...)
	}
	key := [4]byte{0x5a, 0x17, 0xc3, 0x81}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// hwsUntilClosed reads c until it fails, discarding messages, and returns
// how long that took from start and the close code the server sent
// (gorilla's 1006 for a connection closed without one), -1 for another
// error (a reset), 0 when still open at start+limit.
func hwsUntilClosed(c *websocket.Conn, start time.Time, limit time.Duration) (time.Duration, int) {
	c.SetReadDeadline(start.Add(limit))
	for {
		if _, _, err := c.NextReader(); err != nil {
			var ce *websocket.CloseError
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				return time.Since(start), ce.Code
			case errors.As(err, &ne) && ne.Timeout():
				return limit, 0
			}
			return time.Since(start), -1
		}
	}
}

// hwsWatchFLV is a normal WS-FLV viewer of live/demo, timing its frames
// like watchFLV.
func hwsWatchFLV(t *testing.T, addr string) *flvViewer {
	t.Helper()
	c := hwsDial(t, nil, addr, "/live/demo.flv")
	return readFLVViewer(t, &wsFLV{c: c}, c)
}

// hwsMetric returns the value of a /metrics series (0 when absent).
func (e *hostileEnv) hwsMetric(t *testing.T, series string) int {
	t.Helper()
	res, err := e.hc.Get(e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(f)
		}
	}
	return 0
}

func hwsViewers(protocol string) string {
	return `liveedge_viewers{protocol="` + protocol + `",stream="live/demo"}`
}

// hwsCount counts the log lines matching re.
func (e *hostileEnv) hwsCount(re string) int {
	rx := regexp.MustCompile(re)
	n := 0
	for _, l := range e.logLines() {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}

// hwsWaitMetric polls a series until ok(value) or the timeout.
func (e *hostileEnv) hwsWaitMetric(t *testing.T, series string, ok func(int) bool, timeout time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		v := e.hwsMetric(t, series)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d after %v", series, v, timeout)
		}
	}
}

// hwsTCPWatch follows the server's side of some connections in
// /proc/net/tcp: when its send queue (bytes written and not acknowledged)
// last changed, which for a client that never reads is when its socket
// filled up and the server's write blocked, and when the server closed it.
type hwsTCPWatch struct {
	mu    sync.Mutex
	conns map[string]*hwsTCPConn // by "local remote", as /proc/net/tcp has them
	stop  chan struct{}
	done  chan struct{}
}

type hwsTCPConn struct {
	client  string
	seen    bool
	txq     int
	maxTxq  int
	changed time.Time // the send queue last changed
	closed  time.Time // no longer ESTABLISHED on the server's side
}

// hwsProcAddr is an IPv4 address as /proc/net/tcp writes it (a
// little-endian host).
func hwsProcAddr(t *testing.T, a string) string {
	t.Helper()
	ap, err := netip.ParseAddrPort(a)
	if err != nil || !ap.Addr().Is4() {
		t.Fatalf("not an IPv4 address: %q", a)
	}
	ip := ap.Addr().As4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
}

func hwsWatchTCP(t *testing.T, server string, clients []string, every time.Duration) *hwsTCPWatch {
	t.Helper()
	w := &hwsTCPWatch{conns: map[string]*hwsTCPConn{}, stop: make(chan struct{}), done: make(chan struct{})}
	now := time.Now()
	for _, c := range clients {
		w.conns[hwsProcAddr(t, server)+" "+hwsProcAddr(t, c)] = &hwsTCPConn{client: c, changed: now}
	}
	go func() {
		defer close(w.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			w.sample()
			select {
			case <-w.stop:
				return
			case <-tk.C:
			}
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *hwsTCPWatch) sample() {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[*hwsTCPConn]bool, len(w.conns))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		c := w.conns[f[1]+" "+f[2]]
		if c == nil || !c.closed.IsZero() {
			continue
		}
		seen[c], c.seen = true, true
		if f[3] != "01" { // ESTABLISHED
			c.closed = now
			continue
		}
		tx, _, _ := strings.Cut(f[4], ":")
		if q, err := strconv.ParseInt(tx, 16, 64); err == nil && int(q) != c.txq {
			c.txq, c.changed = int(q), now
			c.maxTxq = max(c.maxTxq, c.txq)
		}
	}
	for _, c := range w.conns {
		if c.seen && !seen[c] && c.closed.IsZero() {
			c.closed = now
		}
	}
}

func (w *hwsTCPWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// results returns, for every connection, how long after its send queue
// last changed the server closed it (-1 for one still open), and the
// largest send queue seen.
func (w *hwsTCPWatch) results() (stallToClose []time.Duration, maxTxq []int, open int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.conns {
		if c.closed.IsZero() {
			open++
			continue
		}
		stallToClose = append(stallToClose, c.closed.Sub(c.changed))
		maxTxq = append(maxTxq, c.maxTxq)
	}
	return stallToClose, maxTxq, open
}

func (w *hwsTCPWatch) allClosed() bool {
	_, _, open := w.results()
	return open == 0
}

// hwsLeft waits for each client's "player left" line (WS-FLV) and returns
// them by client address.
func (e *hostileEnv) hwsLeft(t *testing.T, clients []string, timeout time.Duration) map[string]string {
	t.Helper()
	left := make(map[string]string, len(clients))
	want := make(map[string]bool, len(clients))
	for _, c := range clients {
		want[c] = true
	}
	rx := regexp.MustCompile(` remote=(\S+) `)
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		for _, l := range e.logLines() {
			if !strings.Contains(l, `msg="player left"`) || !strings.Contains(l, "via=ws-flv") {
				continue
			}
			if m := rx.FindStringSubmatch(l); m != nil && want[m[1]] {
				left[m[1]] = l
			}
		}
		if len(left) == len(clients) {
			return left
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d WS-FLV clients left within %v", len(left), len(clients), timeout)
		}
	}
}

// TestHostileWSFLVStuckViewer: WS-FLV viewers that never read (4 KiB
// receive buffers) are dropped with a slow-viewer reason at most
// slow_viewer_timeout + 4 s after they connected (their sockets fill
// within about 3 s; how long after the server's send queue stopped
// moving, seen in /proc/net/tcp, is logged), and not before 3/4 of it (a
// write fails 3/4 to all of it after it started); their send queues stay
// within the capped send buffer; a normal WS-FLV viewer's frame lateness
// is the same with them as without them (p99 within 100 ms).
func TestHostileWSFLVStuckViewer(t *testing.T) {
	e := startHostile(t)
	addr := e.httpAddr(t)
	base := e.baseline(t)
	peak := e.rssPeak(t)

	good := hwsWatchFLV(t, addr)
	good.waitFrames(t, 10, 5*time.Second)
	// Past the cached GOP's burst, measure 4 s alone.
	time.Sleep(time.Second)
	b0 := time.Now()
	time.Sleep(4 * time.Second)
	b1 := time.Now()

	const n = 5
	var stuck []*websocket.Conn
	var locals []string
	for range n {
		c := hwsDial(t, smallRcvBufDialer(), addr, "/live/demo.flv")
		stuck = append(stuck, c)
		locals = append(locals, c.LocalAddr().String())
	}
	s0 := time.Now()
	w := hwsWatchTCP(t, addr, locals, 20*time.Millisecond)
	left := e.hwsLeft(t, locals, hostileSlowViewer+15*time.Second)
	leftAt := time.Since(s0)
	for deadline := time.Now().Add(2 * time.Second); !w.allClosed() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	w.close()
	time.Sleep(500 * time.Millisecond) // keep measuring a little after the last one left
	s1 := time.Now()
	without, with := good.lateness(b0, b1), good.lateness(s0, s1)
	gap := good.maxGap(s0, s1)
	good.close()
	for _, c := range stuck {
		c.Close()
	}
	after := e.settled(t, base, 10*time.Second)

	stall, txq, open := w.results()
	t.Logf("stuck WS-FLV viewers all left %v after they connected", leftAt.Round(time.Millisecond))
	t.Logf("server closed them %s after their sockets stopped taking data (slow_viewer_timeout %v); largest send queue %d KiB",
		durations(stall), hostileSlowViewer, slices.Max(append(txq, 0))>>10)
	for _, l := range locals {
		t.Logf("%s: %s", l, left[l])
	}
	t.Logf("normal viewer lateness without stuck viewers: p50 %v p99 %v max %v (%d frames)",
		percentile(without, .5), percentile(without, .99), percentile(without, 1), len(without))
	t.Logf("normal viewer lateness with stuck viewers:    p50 %v p99 %v max %v (%d frames, longest gap %v)",
		percentile(with, .5), percentile(with, .99), percentile(with, 1), len(with), gap.Round(time.Millisecond))
	t.Logf("before %v; after %v", base, after)
	checkRSS(t, "stuck WS-FLV viewers", base.rssKiB, peak(), 32)

	if open > 0 {
		t.Errorf("%d stuck viewers' sockets not seen closed", open)
	}
	for _, l := range locals {
		if !strings.Contains(left[l], "slow viewer") {
			t.Errorf("stuck viewer %s left without a slow-viewer reason: %s", l, left[l])
		}
	}
	// Bounded from the connect: the sockets take at most about 3 s of the
	// demo stream before they are full (the GOP burst, then live), and
	// then a write fails 3/4 to all of slow_viewer_timeout after it
	// started; no viewer can be dropped sooner than 3/4 of the timeout
	// after it connected. (How long after the send queue's last move is
	// logged above; sampled from /proc/net/tcp under load, it is too
	// coarse to assert on.)
	if leftAt < hostileSlowViewer*3/4 || leftAt > hostileSlowViewer+4*time.Second {
		t.Errorf("stuck viewers all left %v after they connected, want [%v, %v]",
			leftAt, hostileSlowViewer*3/4, hostileSlowViewer+4*time.Second)
	}
	// And no server-side buffering past the capped socket: 2 x 128 KiB
	// of send buffer, with room for the kernel's rounding.
	for _, q := range txq {
		if q > 320<<10 {
			t.Errorf("a stuck viewer's send queue reached %d KiB", q>>10)
		}
	}
	if len(without) < 50 || len(with) < 25 {
		t.Fatalf("too few frames measured: %d without, %d with", len(without), len(with))
	}
	if diff := percentile(with, .99) - percentile(without, .99); diff > 100*time.Millisecond {
		t.Errorf("normal viewer's p99 lateness grew %v with stuck viewers", diff)
	}
}

// TestHostileWSFLVGarbage: WS-FLV clients that send what the server reads
// with a 4096-byte limit: oversized messages (one frame, fragments, a
// 2^63-byte length, an invalid 2^64-1 one), protocol errors (an unmasked
// frame, a reserved opcode, a 126-byte ping) and random bytes. Each is
// closed at once with the close code the server can send (1009 too big,
// 1002 protocol error), memory stays flat, and a client that floods valid
// small messages and pings is read and keeps playing. (The limit is per
// call of NextReader, which the server makes at a message's first frame
// and again at once: a 5000-byte message in two fragments passes, and is
// discarded without being held; three do not.)
func TestHostileWSFLVGarbage(t *testing.T) {
	e := startHostile(t)
	addr := e.httpAddr(t)
	base := e.baseline(t)
	peak := e.rssPeak(t)
	good := hwsWatchFLV(t, addr)
	good.waitFrames(t, 10, 5*time.Second)
	start := time.Now()

	frags := hwsFrame(2, false, false, 1000, make([]byte, 1000))
	for range 5 {
		frags = append(frags, hwsFrame(0, false, false, 1000, make([]byte, 1000))...)
	}
	cases := []struct {
		name  string
		send  []byte
		more  int   // random bytes written after send, until closed
		codes []int // close codes accepted: 1006 closed without one, -1 reset, 0 still open
	}{
		{"binary message of 16 MiB", hwsFrame(2, true, false, 16<<20, nil), 16 << 20, []int{1009, 1006, -1}},
		{"binary message of 4097 bytes", hwsFrame(2, true, false, hwsReadLimit+1, nil), 0, []int{1009}},
		// The server abandons a message at its first frame (NextReader
		// again), which restarts the count: 2 x 2500 bytes pass (and are
		// discarded), 3 do not.
		{"text message in 2 fragments of 2500", append(hwsFrame(1, false, false, 2500, make([]byte, 2500)),
			hwsFrame(0, true, false, 2500, make([]byte, 2500))...), 0, []int{0}},
		{"text message in 3 fragments of 2500", append(append(hwsFrame(1, false, false, 2500, make([]byte, 2500)),
			hwsFrame(0, false, false, 2500, make([]byte, 2500))...), hwsFrame(0, true, false, 2500, make([]byte, 2500))...),
			0, []int{1009}},
		{"fragments of 1000 without end", frags, 0, []int{1009}},
		{"length 2^63-1", hwsFrame(2, true, false, 1<<63-1, nil), 0, []int{1009}},
		{"length 2^64-1", hwsFrame(2, true, false, 1<<64-1, nil), 0, []int{1009, 1006}},
		{"unmasked frame", hwsFrame(2, true, true, 10, make([]byte, 10)), 0, []int{1002}},
		{"reserved opcode", hwsFrame(3, true, false, 10, make([]byte, 10)), 0, []int{1002}},
		{"ping of 126 bytes", hwsFrame(9, true, false, 126, make([]byte, 126)), 0, []int{1002}},
		{"1 MiB of random bytes", nil, 1 << 20, []int{1002, 1009, 1006, -1}},
	}
	var locals []string
	for i, tc := range cases {
		before := e.rssKiB(t)
		c := hwsDial(t, nil, addr, "/live/demo.flv")
		nc := c.NetConn()
		locals = append(locals, c.LocalAddr().String())
		t0 := time.Now()
		type res struct {
			d    time.Duration
			code int
		}
		closed := make(chan res, 1)
		limit := 10 * time.Second
		if slices.Contains(tc.codes, 0) {
			limit = 2 * time.Second // long enough to be sure it stays
		}
		go func() {
			d, code := hwsUntilClosed(c, t0, limit)
			closed <- res{d, code}
		}()
		sent := 0
		if len(tc.send) > 0 {
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			w, _ := nc.Write(tc.send)
			sent += w
		}
		if tc.more > 0 {
			sent += writeUntilClosed(nc, tc.more, int64(i))
		}
		r := <-closed
		c.Close()
		t.Logf("%s: closed after %v with code %d, having taken %d bytes; RSS %+d KiB", tc.name,
			r.d.Round(time.Millisecond), r.code, sent, e.rssKiB(t)-before)
		if !slices.Contains(tc.codes, 0) && (r.code == 0 || r.d > 2*time.Second) {
			t.Errorf("%s: still open %v after it started", tc.name, r.d)
		}
		if !slices.Contains(tc.codes, r.code) {
			t.Errorf("%s: close code %d, want one of %v", tc.name, r.code, tc.codes)
		}
	}
	left := e.hwsLeft(t, locals, 5*time.Second)
	for i, l := range locals {
		t.Logf("%s: %s", cases[i].name, left[l])
		// The server says why it closed a client that broke the rules.
		switch cases[i].name {
		case "binary message of 4097 bytes", "reserved opcode", "unmasked frame":
			if !strings.Contains(left[l], `reason="player sent a bad WebSocket message`) {
				t.Errorf("%s: the log line does not say the player sent a bad message: %s", cases[i].name, left[l])
			}
		}
	}

	// A client that floods messages within the limit (16 MiB as 4096-byte
	// binary messages, and 2000 pings) while it plays: read and discarded,
	// it keeps playing.
	flood := hwsWatchFLV(t, addr)
	flood.waitFrames(t, 10, 5*time.Second)
	nc := flood.body.(*websocket.Conn).NetConn()
	msg := hwsFrame(2, true, false, hwsReadLimit, make([]byte, hwsReadLimit))
	ping := hwsFrame(9, true, false, 125, make([]byte, 125))
	f0 := time.Now()
	before := e.rssKiB(t)
	var sent int
	var werr error
	for i := 0; i < (16<<20)/hwsReadLimit && werr == nil; i++ {
		b := msg
		if i%4 == 0 {
			b = append(slices.Clip(msg), ping...)
		}
		nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		var w int
		w, werr = nc.Write(b)
		sent += w
	}
	f1 := time.Now()
	framesBefore := flood.frames()
	flood.waitFrames(t, framesBefore+10, 5*time.Second) // still playing after the flood
	floodGap := flood.maxGap(f0, f1)
	t.Logf("flood of %.1f MiB in %d-byte messages and pings: taken in %v (%v), RSS %+d KiB, its longest frame gap %v",
		float64(sent)/(1<<20), hwsReadLimit, f1.Sub(f0).Round(time.Millisecond), werr, e.rssKiB(t)-before,
		floodGap.Round(time.Millisecond))
	if werr != nil {
		t.Errorf("the flood of valid messages was cut: %v", werr)
	}
	flood.close()

	end := time.Now()
	gap := good.maxGap(start, end)
	good.close()
	after := e.settled(t, base, 10*time.Second)
	t.Logf("normal viewer: longest gap %v over %v", gap.Round(time.Millisecond), end.Sub(start).Round(time.Millisecond))
	t.Logf("before %v; after %v", base, after)
	checkRSS(t, "WS-FLV garbage", base.rssKiB, peak(), 32)
	if gap > time.Second {
		t.Errorf("the normal viewer stalled for %v", gap)
	}
	if floodGap > time.Second {
		t.Errorf("the flooding viewer stalled for %v", floodGap)
	}
}

// hwsReply reads one signalling message.
func hwsReply(t *testing.T, c *websocket.Conn) hwsMsg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m hwsMsg
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("reading a signalling reply: %v", err)
	}
	return m
}

func hwsSend(t *testing.T, c *websocket.Conn, typ int, b []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(typ, b); err != nil {
		t.Fatalf("writing a signalling message: %v", err)
	}
}

func hwsOffer(sdp string) []byte {
	b, _ := json.Marshal(hwsMsg{Type: "offer", SDP: sdp})
	return b
}

// TestHostileWSSignaling: WebRTC signalling over WebSocket. A message past
// the 64 KiB limit closes the socket with 1009 (without the server
// waiting for its body); malformed messages (bad JSON, binary frames,
// unknown types, candidates before an offer, empty or broken offers)
// each get an error reply and leave the socket open for another try, as
// ws.go intends; 200 offers in a row on one socket make one peer (199
// "already has a session" errors); 200 failing offers make none; sockets
// whose peer never connects are closed with "session ended" after
// peer_timeout. Memory stays bounded, a WS-FLV viewer plays throughout,
// and fds and goroutines come back.
func TestHostileWSSignaling(t *testing.T) {
	e := startHostile(t)
	addr := e.httpAddr(t)
	e.waitLog(t, `msg=listening proto=webrtc addr=127\.0\.0\.1:`, 10*time.Second)
	base := e.baseline(t)
	peak := e.rssPeak(t)
	good := hwsWatchFLV(t, addr)
	good.waitFrames(t, 10, 5*time.Second)
	start := time.Now()
	const path = "/live/demo/ws"
	created := func() int { return e.hwsCount(`msg="webrtc peer created"`) }
	removed := func() int { return e.hwsCount(`msg="webrtc peer removed"`) }
	// waitCount polls count until it is at least n0+want (log lines reach
	// the test a little after the replies) and returns the difference.
	waitCount := func(count func() int, n0, want int) int {
		for deadline := time.Now().Add(2 * time.Second); count()-n0 < want && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		return count() - n0
	}
	run := func(name string, f func(t *testing.T)) {
		r0, s0 := e.rssKiB(t), e.hwsMetric(t, "go_memstats_sys_bytes")
		t.Run(name, f)
		t.Logf("%s: RSS %+.1f MiB, Go runtime memory %+.1f MiB", name, float64(e.rssKiB(t)-r0)/1024,
			float64(e.hwsMetric(t, "go_memstats_sys_bytes")-s0)/(1<<20))
	}

	run("oversized", func(t *testing.T) {
		// Only the header of a message of MaxBody+1: closed on it.
		c := hwsDial(t, nil, addr, path)
		t0 := time.Now()
		c.NetConn().Write(hwsFrame(1, true, false, hwsMaxBody+1, nil))
		d, code := hwsUntilClosed(c, t0, 10*time.Second)
		t.Logf("header of a %d-byte message: closed after %v, code %d", hwsMaxBody+1, d.Round(time.Millisecond), code)
		if code != websocket.CloseMessageTooBig {
			t.Errorf("header of a %d-byte message: close code %d after %v, want 1009", hwsMaxBody+1, code, d)
		}
		// 16 MiB announced and sent: closed at once, not read.
		before := e.rssKiB(t)
		c = hwsDial(t, nil, addr, path)
		t0 = time.Now()
		closed := make(chan [2]int64, 1)
		go func() {
			d, code := hwsUntilClosed(c, t0, 10*time.Second)
			closed <- [2]int64{int64(d), int64(code)}
		}()
		c.NetConn().Write(hwsFrame(1, true, false, 16<<20, nil))
		sent := writeUntilClosed(c.NetConn(), 16<<20, 7)
		r := <-closed
		t.Logf("16 MiB message: closed after %v, code %d, having taken %.1f MiB; RSS %+d KiB",
			time.Duration(r[0]).Round(time.Millisecond), r[1], float64(sent)/(1<<20), e.rssKiB(t)-before)
		if r[1] != websocket.CloseMessageTooBig && r[1] != -1 || time.Duration(r[0]) > 2*time.Second {
			t.Errorf("16 MiB message: code %d after %v", r[1], time.Duration(r[0]))
		}
		// A whole message of MaxBody+1 bytes, written at once.
		c = hwsDial(t, nil, addr, path)
		t0 = time.Now()
		c.SetWriteDeadline(t0.Add(5 * time.Second))
		c.WriteMessage(websocket.TextMessage, make([]byte, hwsMaxBody+1))
		d, code = hwsUntilClosed(c, t0, 10*time.Second)
		t.Logf("whole %d-byte message: closed after %v, code %d", hwsMaxBody+1, d.Round(time.Millisecond), code)
		if code != websocket.CloseMessageTooBig && code != -1 || d > 2*time.Second {
			t.Errorf("whole %d-byte message: code %d after %v", hwsMaxBody+1, code, d)
		}
		// MaxBody exactly is read: a JSON error, the socket stays.
		c = hwsDial(t, nil, addr, path)
		hwsSend(t, c, websocket.TextMessage, []byte(strings.Repeat("x", hwsMaxBody)))
		if m := hwsReply(t, c); m.Type != "error" || m.Message != "malformed JSON message" {
			t.Errorf("a %d-byte message: %+v", hwsMaxBody, m)
		}
		hwsSend(t, c, websocket.TextMessage, []byte(`{"type":"nope"}`))
		if m := hwsReply(t, c); m.Type != "error" {
			t.Errorf("after a %d-byte message: %+v", hwsMaxBody, m)
		}
	})

	run("malformed messages", func(t *testing.T) {
		c := hwsDial(t, nil, addr, path)
		msgs := []struct {
			typ  int
			body string
			want string
		}{
			{websocket.TextMessage, `{"type":"offer","sdp":`, "malformed JSON message"},
			{websocket.TextMessage, "\xff\xfe not JSON at all", "malformed JSON message"},
			{websocket.TextMessage, `[1,2,3]`, "malformed JSON message"},
			{websocket.TextMessage, `{"type":{"nested":true}}`, "malformed JSON message"},
			{websocket.BinaryMessage, `{"type":"offer","sdp":"v=0"}`, "messages are JSON text frames"},
			{websocket.TextMessage, `{"type":"nope"}`, `unknown message type "nope"`},
			{websocket.TextMessage, `{}`, `unknown message type ""`},
			{websocket.TextMessage, `{"type":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}`,
				"candidate before a successful offer"},
			{websocket.TextMessage, `{"type":"offer","sdp":"  "}`, ""},
			{websocket.TextMessage, `{"type":"offer","sdp":"v=0\r\nnot an offer\r\n"}`, ""},
		}
		for _, m := range msgs {
			hwsSend(t, c, m.typ, []byte(m.body))
			r := hwsReply(t, c)
			t.Logf("%.40q -> %+v", m.body, r)
			if r.Type != "error" || m.want != "" && r.Message != m.want {
				t.Errorf("%q: reply %+v, want an error %q", m.body, r, m.want)
			}
		}
		// 200 malformed messages in a row: 200 replies, still open.
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		for range 200 {
			if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":`)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 200 {
			if r := hwsReply(t, c); r.Type != "error" {
				t.Fatalf("reply %d to malformed JSON: %+v", i, r)
			}
		}
		// The socket still takes an offer.
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		n0, r0 := created(), removed()
		hwsSend(t, c, websocket.TextMessage, hwsOffer(handMadeOffer(1, u.LocalAddr().(*net.UDPAddr).Port)))
		if r := hwsReply(t, c); r.Type != "answer" || r.ID == "" {
			t.Fatalf("offer after 210 malformed messages: %+v", r)
		}
		if d := waitCount(created, n0, 1); d != 1 {
			t.Errorf("%d peers created for one offer", d)
		}
		c.Close() // the session ends with it
		if d := waitCount(removed, r0, 1); d != 1 {
			t.Errorf("%d peers removed after the socket closed", d)
		}
	})

	run("offer flood", func(t *testing.T) {
		wc, err := whepclient.New(whepclient.Options{Audio: true})
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close()
		wc.Start()
		offer, err := wc.Offer()
		if err != nil {
			t.Fatal(err)
		}
		n0, r0 := created(), removed()
		c := hwsDial(t, nil, addr, path)
		const n = 200
		t0 := time.Now()
		c.SetWriteDeadline(t0.Add(10 * time.Second))
		for range n {
			if err := c.WriteMessage(websocket.TextMessage, hwsOffer(offer)); err != nil {
				t.Fatal(err)
			}
		}
		replies := map[string]int{}
		var answer hwsMsg
		for i := range n {
			r := hwsReply(t, c)
			if r.Type == "answer" {
				answer = r
				if i != 0 {
					t.Errorf("the answer is reply %d", i)
				}
			}
			replies[r.Type+": "+r.Message]++
		}
		took := time.Since(t0)
		if err := wc.Answer(answer.SDP); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := wc.WaitFrames(ctx, 10); err != nil {
			t.Fatalf("the flooding socket's peer: %v", err)
		}
		peers := e.hwsMetric(t, hwsViewers("webrtc"))
		waitCount(created, n0, 1)
		t.Logf("%d offers on one socket answered in %v: %v; peers created %d, webrtc viewers %d",
			n, took.Round(time.Millisecond), replies, created()-n0, peers)
		if replies["answer: "] != 1 || replies["error: this socket already has a session"] != n-1 {
			t.Errorf("replies %v, want 1 answer and %d errors", replies, n-1)
		}
		if d := created() - n0; d != 1 || peers != 1 {
			t.Errorf("%d peers created, %d webrtc viewers, want 1", d, peers)
		}
		c.Close()
		for deadline := time.Now().Add(5 * time.Second); removed()-r0 < 1; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the peer was not removed after its socket closed")
			}
		}
		e.hwsWaitMetric(t, hwsViewers("webrtc"), func(v int) bool { return v == 0 }, 5*time.Second)
	})

	run("failing offer flood", func(t *testing.T) {
		n0 := created()
		c := hwsDial(t, nil, addr, path)
		const n = 200
		before := e.snap(t)
		t0 := time.Now()
		c.SetWriteDeadline(t0.Add(10 * time.Second))
		for i := range n {
			sdp := fmt.Sprintf("v=0\r\no=- %d 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", i)
			if err := c.WriteMessage(websocket.TextMessage, hwsOffer(sdp)); err != nil {
				t.Fatal(err)
			}
		}
		replies := map[string]int{}
		for range n {
			r := hwsReply(t, c)
			replies[r.Type+": "+r.Message]++
		}
		took := time.Since(t0)
		mid := e.snap(t)
		t.Logf("%d failing offers answered in %v: %v; peers created %d; before %v, after %v", n,
			took.Round(time.Millisecond), replies, created()-n0, before, mid)
		for k := range replies {
			if !strings.HasPrefix(k, "error: ") {
				t.Errorf("a failing offer got %q", k)
			}
		}
		if d := created() - n0; d != 0 {
			t.Errorf("%d peers created by failing offers", d)
		}
		hwsSend(t, c, websocket.TextMessage, []byte(`{"type":"nope"}`))
		if r := hwsReply(t, c); r.Type != "error" {
			t.Errorf("after the failing offers: %+v", r)
		}
	})

	run("silent after offer", func(t *testing.T) {
		// Offers whose one candidate never answers, then silence: the peer
		// times out and the server closes the socket.
		const n = 20
		n0, r0 := created(), removed()
		var cs []*websocket.Conn
		t0 := time.Now()
		for i := range n {
			u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			c := hwsDial(t, nil, addr, path)
			hwsSend(t, c, websocket.TextMessage, hwsOffer(handMadeOffer(200+i, u.LocalAddr().(*net.UDPAddr).Port)))
			if r := hwsReply(t, c); r.Type != "answer" {
				t.Fatalf("offer %d: %+v", i, r)
			}
			cs = append(cs, c)
		}
		waitCount(created, n0, n)
		var ds []time.Duration
		var codes []int
		for _, c := range cs {
			d, code := hwsUntilClosed(c, t0, hostilePeerTimeout+10*time.Second)
			ds, codes = append(ds, d), append(codes, code)
		}
		t.Logf("%d silent sessions closed after %s (peer_timeout %v), codes %v; peers created %d, removed %d",
			n, durations(ds), hostilePeerTimeout, slices.Compact(slices.Sorted(slices.Values(codes))),
			created()-n0, removed()-r0)
		for i, d := range ds {
			if codes[i] != websocket.CloseNormalClosure || d > hostilePeerTimeout+5*time.Second {
				t.Errorf("silent session %d: code %d after %v, want 1000 within %v", i, codes[i], d, hostilePeerTimeout+5*time.Second)
				break
			}
		}
		waitCount(removed, r0, n)
		if created()-n0 != n || removed()-r0 < n {
			t.Errorf("peers created %d, removed %d, want %d", created()-n0, removed()-r0, n)
		}
	})

	end := time.Now()
	gap := good.maxGap(start, end)
	good.close()
	http.DefaultClient.CloseIdleConnections()
	e.hwsWaitMetric(t, hwsViewers("webrtc"), func(v int) bool { return v == 0 }, 5*time.Second)
	after := e.settled(t, base, 10*time.Second)
	t.Logf("WS-FLV viewer meanwhile: longest gap %v over %v", gap.Round(time.Millisecond), end.Sub(start).Round(time.Millisecond))
	t.Logf("before %v; after %v", base, after)
	checkRSS(t, "WS signalling", base.rssKiB, peak(), 64)
	if gap > time.Second {
		t.Errorf("the WS-FLV viewer stalled for %v", gap)
	}
}

// TestHostileWSSilentFlood: 500 WS-FLV and 500 signalling sockets upgrade
// and then go silent: they send nothing, the WS-FLV ones read nothing (4
// KiB receive buffers) and the signalling ones never answer a ping. The
// WS-FLV ones are all dropped as slow viewers at most slow_viewer_timeout
// after their sockets filled up; the signalling ones are held (their
// cost bounded), pinged after 25 s and not closed before (the 60 s pong
// wait is a constant, too long for this test), and when they leave, fds
// and goroutines come back to the baseline. A normal WS-FLV viewer plays
// throughout and a signalling offer is answered at once.
func TestHostileWSSilentFlood(t *testing.T) {
	t.Parallel()
	const n = 500
	raiseNoFile(t, 2*n+100)
	e := startHostile(t)
	addr := e.httpAddr(t)
	e.waitLog(t, `msg=listening proto=webrtc addr=127\.0\.0\.1:`, 10*time.Second)
	base := e.baseline(t)
	sys0 := e.hwsMetric(t, "go_memstats_sys_bytes")
	peak := e.rssPeak(t)
	good := hwsWatchFLV(t, addr)
	good.waitFrames(t, 10, 5*time.Second)

	// The signalling sockets first: they are the ones that stay.
	type sigClient struct {
		c      *websocket.Conn
		opened time.Time
		pinged atomic.Int64 // unix nanos of the first ping
		closed atomic.Int64 // unix nanos of the end, -1 if the client closed it
	}
	start := time.Now()
	sigs := make([]*sigClient, n)
	var wg sync.WaitGroup
	for i := range sigs {
		s := &sigClient{c: hwsDial(t, nil, addr, "/live/demo/ws"), opened: time.Now()}
		s.c.SetPingHandler(func(string) error { // no pong
			s.pinged.CompareAndSwap(0, time.Now().UnixNano())
			return nil
		})
		sigs[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := s.c.NextReader(); err != nil {
					s.closed.CompareAndSwap(0, time.Now().UnixNano())
					return
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, s := range sigs {
			s.c.Close()
		}
		wg.Wait()
	})
	sigOpened := time.Since(start)
	sigSnap := e.snap(t)

	flvStart := time.Now()
	var locals []string
	for range n {
		c := hwsDial(t, smallRcvBufDialer(), addr, "/live/demo.flv")
		locals = append(locals, c.LocalAddr().String())
	}
	flvOpened := time.Since(flvStart)
	w := hwsWatchTCP(t, addr, locals, 50*time.Millisecond)
	// Every upgrade succeeded (hwsDial); the first WS-FLV ones may be gone
	// already, the signalling ones must all be held.
	mid := e.snap(t)
	viewersMid := e.hwsMetric(t, hwsViewers("ws-flv"))
	if mid.fds < base.fds+n {
		t.Fatalf("the server holds %d fds (baseline %d): the signalling sockets are not all held", mid.fds, base.fds)
	}

	// A signalling offer during the flood.
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	oc := hwsDial(t, nil, addr, "/live/demo/ws")
	o0 := time.Now()
	hwsSend(t, oc, websocket.TextMessage, hwsOffer(handMadeOffer(7, u.LocalAddr().(*net.UDPAddr).Port)))
	ans := hwsReply(t, oc)
	offerTook := time.Since(o0)
	oc.Close()
	if ans.Type != "answer" {
		t.Errorf("offer during the flood: %+v", ans)
	}

	left := e.hwsLeft(t, locals, hostileSlowViewer+20*time.Second)
	flvDone := time.Since(flvStart)
	for deadline := time.Now().Add(3 * time.Second); !w.allClosed() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	w.close()
	stall, txq, open := w.results()
	afterFLV := e.snap(t)
	viewersAfter := e.hwsMetric(t, hwsViewers("ws-flv"))

	// Every signalling socket pinged and still open.
	lastOpened := sigs[n-1].opened
	for deadline := lastOpened.Add(hwsPingInterval + 10*time.Second); ; time.Sleep(100 * time.Millisecond) {
		pinged := 0
		for _, s := range sigs {
			if s.pinged.Load() != 0 {
				pinged++
			}
		}
		if pinged == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d silent signalling sockets pinged within %v", pinged, n, hwsPingInterval+10*time.Second)
		}
	}
	var pingAfter []time.Duration
	early := 0
	for _, s := range sigs {
		pingAfter = append(pingAfter, time.Unix(0, s.pinged.Load()).Sub(s.opened))
		if s.closed.Load() != 0 {
			early++
		}
	}
	heldFor := time.Since(lastOpened)
	beforeClose := e.snap(t)
	sys1 := e.hwsMetric(t, "go_memstats_sys_bytes") // never shrinks: the peak
	end := time.Now()
	gap := good.maxGap(flvStart, end)
	frames := len(first(good.window(flvStart, end)))
	for _, s := range sigs {
		s.closed.CompareAndSwap(0, -1)
		s.c.Close()
	}
	wg.Wait()
	good.close()
	after := e.settled(t, base, 10*time.Second)

	peakKiB := peak()
	t.Logf("opened %d signalling sockets in %v and %d WS-FLV ones in %v; server then: %v; ws-flv viewers %d",
		n, sigOpened.Round(time.Millisecond), n, flvOpened.Round(time.Millisecond), mid, viewersMid)
	t.Logf("with the %d signalling sockets only: %v (%+.1f KiB a socket)", n, sigSnap,
		float64(sigSnap.rssKiB-base.rssKiB)/n)
	t.Logf("signalling offer during the flood answered in %v", offerTook.Round(time.Millisecond))
	t.Logf("WS-FLV: all left %v after the first connected; closed %s after their sockets stopped taking data (slow_viewer_timeout %v); largest send queue %d KiB",
		flvDone.Round(time.Millisecond), durations(stall), hostileSlowViewer, slices.Max(append(txq, 0))>>10)
	t.Logf("e.g. %s", left[locals[0]])
	t.Logf("after the WS-FLV ones left: %v, ws-flv viewers %d", afterFLV, viewersAfter)
	t.Logf("signalling: first ping %s after the upgrade; %d closed before the test closed them, %v after the last opened; server then %v",
		durations(pingAfter), early, heldFor.Round(time.Millisecond), beforeClose)
	t.Logf("normal WS-FLV viewer: %d frames, longest gap %v", frames, gap.Round(time.Millisecond))
	t.Logf("before %v; after %v; RSS per socket at the peak %.1f KiB", base, after,
		float64(peakKiB-base.rssKiB)/(2*n))
	sysPer := float64(sys1-sys0) / 1024 / (2 * n)
	t.Logf("memory the Go runtime took from the OS: %.1f MiB before, %.1f MiB at the peak (%.1f KiB a socket)",
		float64(sys0)/(1<<20), float64(sys1)/(1<<20), sysPer)
	// Most of the RSS of this -race build is the race detector's state
	// for the goroutines (two or three a socket), which it keeps after
	// they end: about 400 KiB a socket here, against about 40 KiB in a
	// normal build. The RSS bound is for that build; the Go runtime's own
	// memory (go_memstats_sys_bytes), which holds the sockets' buffers
	// (a blocked WS-FLV write holds its 32 KiB write buffer) and stacks,
	// gets the tighter one: 128 KiB a socket.
	checkRSS(t, "silent WebSockets (-race)", base.rssKiB, peakKiB, 32+2*n*512/1024)
	if sysPer > 128 {
		t.Errorf("the Go runtime took %.1f KiB a socket from the OS, more than 128", sysPer)
	}

	if open > 0 {
		t.Errorf("%d WS-FLV sockets not seen closed", open)
	}
	for l, line := range left {
		if !strings.Contains(line, "slow viewer") {
			t.Errorf("silent WS-FLV client %s left without a slow-viewer reason: %s", l, line)
			break
		}
	}
	for _, d := range stall {
		if d > hostileSlowViewer+2*time.Second {
			t.Errorf("a silent WS-FLV socket was closed %v after it filled up", d)
			break
		}
	}
	if viewersAfter != 1 {
		t.Errorf("ws-flv viewers %d after the silent ones left, want 1", viewersAfter)
	}
	if early > 0 {
		t.Errorf("%d silent signalling sockets closed before %v (pong wait %v)", early, heldFor, hwsPongWait)
	}
	if slices.Min(pingAfter) < hwsPingInterval-time.Second || slices.Max(pingAfter) > hwsPingInterval+5*time.Second {
		t.Errorf("first pings %s after the upgrade, want about %v", durations(pingAfter), hwsPingInterval)
	}
	if offerTook > 2*time.Second {
		t.Errorf("the offer during the flood took %v", offerTook)
	}
	if gap > 2*time.Second {
		t.Errorf("the normal WS-FLV viewer stalled for %v", gap)
	}
}

// full reports whether every connection's send queue is non-empty and has
// not changed for d: the clients' sockets are full and the server's
// writes to them blocked.
func (w *hwsTCPWatch) full(d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.conns {
		if !c.closed.IsZero() || c.txq == 0 || time.Since(c.changed) < d {
			return false
		}
	}
	return true
}

// TestHostileWSFLVStuckShutdown: with the default slow_viewer_timeout
// (10 s), WS-FLV and HTTP-FLV viewers that never read, their sockets
// full, do not hold up the server's shutdown: it exits cleanly (status 0)
// within 4 s of SIGTERM (about 2: a stuck write gets 1 s more), inside
// its own 5 s bound, where before they held it for up to 10 s. A normal
// WS-FLV viewer leaves with the shutdown, and 50 silent signalling
// sockets do not hold the shutdown either.
func TestHostileWSFLVStuckShutdown(t *testing.T) {
	t.Parallel()
	const writeTimeout = 10 * time.Second
	requireTools(t, "ffmpeg", "ffprobe")
	cfg := hostileConfig(t)
	if !strings.Contains(cfg, "slow_viewer_timeout: "+hostileSlowViewer.String()) {
		t.Fatalf("no slow_viewer_timeout in the hostile configuration:\n%s", cfg)
	}
	s := startServer(t, strings.Replace(cfg, "slow_viewer_timeout: "+hostileSlowViewer.String(),
		"slow_viewer_timeout: "+writeTimeout.String(), 1))
	addr := s.httpAddr(t)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)

	good := hwsWatchFLV(t, addr)
	good.waitFrames(t, 10, 5*time.Second)
	var locals []string
	for range 3 {
		locals = append(locals, hwsDial(t, smallRcvBufDialer(), addr, "/live/demo.flv").LocalAddr().String())
	}
	locals = append(locals, stuckFLV(t, addr).local)
	// And silent signalling sockets, which Close must end too.
	for range 50 {
		hwsDial(t, nil, addr, "/live/demo/ws")
	}
	w := hwsWatchTCP(t, addr, locals, 20*time.Millisecond)
	f0 := time.Now()
	for deadline := f0.Add(writeTimeout / 2); !w.full(500 * time.Millisecond); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stuck viewers' sockets did not fill up within %v", writeTimeout/2)
		}
	}
	t.Logf("stuck viewers' sockets full after %v", time.Since(f0).Round(time.Millisecond))

	t0 := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	var took time.Duration
	select {
	case <-s.done:
		took = time.Since(t0)
	case <-time.After(writeTimeout + 5*time.Second):
		t.Fatalf("liveedge still running %v after SIGTERM", writeTimeout+5*time.Second)
	}
	<-good.done
	goodLocal := good.body.(*websocket.Conn).LocalAddr().String()
	var goodLeft string
	for _, l := range s.logLines() {
		if strings.Contains(l, `msg="player left"`) {
			t.Logf("%s", l)
			if strings.Contains(l, "remote="+goodLocal+" ") {
				goodLeft = l
			}
		}
	}
	if !strings.Contains(goodLeft, `reason="stream ended"`) && !strings.Contains(goodLeft, `reason="server closing"`) {
		t.Errorf("the normal viewer did not leave with the shutdown: %q", goodLeft)
	}
	t.Logf("liveedge exited %v after SIGTERM (%v), with %d stuck viewers (slow_viewer_timeout %v)",
		took.Round(time.Millisecond), s.err, len(locals), writeTimeout)
	if took > 4*time.Second || s.err != nil {
		t.Errorf("liveedge exited %v after SIGTERM with %v: stuck viewers held up its shutdown", took, s.err)
	}
	for _, l := range s.logLines() {
		if strings.Contains(l, "shutdown took longer") {
			t.Errorf("%s", l)
		}
	}
}
