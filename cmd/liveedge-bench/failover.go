package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/protocols/demo"
)

// The failover bench (-failover N): two nginx-rtmp origins, each fed the
// demo clip by ffmpeg; liveedge pulls live/bench on demand from both
// (primary first, failback on); one RTMP viewer watches through liveedge.
// N times the primary is killed (SIGKILL), restarted and failed back to;
// then M times it is frozen (SIGSTOP) for stall_timeout + 2 s. Each time
// the gap in media the viewer sees is measured: the longest time between
// two consecutive video frames around the event.

// failoverOptions are the flags of the failover bench.
type failoverOptions struct {
	kills        int
	stalls       int
	stallTimeout time.Duration
	limit        time.Duration
}

// failoverFlags registers the failover bench's flags on fs.
func failoverFlags(fs *flag.FlagSet) *failoverOptions {
	f := &failoverOptions{}
	fs.IntVar(&f.kills, "failover", 0, "run the failover bench instead: kill the primary origin this many times (needs nginx with the RTMP module and ffmpeg)")
	fs.IntVar(&f.stalls, "failover-stalls", 3, "failover bench: then freeze the primary (SIGSTOP) this many times")
	fs.DurationVar(&f.stallTimeout, "failover-stall-timeout", time.Second, "failover bench: the stream entry's stall_timeout")
	fs.DurationVar(&f.limit, "failover-limit", 4*time.Minute, "failover bench: stop after this long, whatever is left")
	return f
}

const (
	fbStream     = "bench"
	fbSteady     = 1500 * time.Millisecond // frames flowing before an event
	fbResumed    = 25                      // frames after the gap that end a measurement
	fbEventWait  = 10 * time.Second        // media must come back within this
	fbFailback   = 20 * time.Second        // the pull must return to the primary within this
	fbPublishing = 10 * time.Second
)

// fbEvent is one measured event.
type fbEvent struct {
	kind string // kill, stall, failback
	gap  time.Duration
}

// runFailover runs the failover bench and prints its report.
func runFailover(ctx context.Context, f *failoverOptions, server string, keepLogs bool, stdout, stderr io.Writer) int {
	for _, tool := range []string{"nginx", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(stderr, "liveedge-bench: -failover needs %s (make tools installs it)\n", tool)
			return 2
		}
	}
	if _, err := os.Stat(nginxtest.ModulePath); err != nil {
		fmt.Fprintf(stderr, "liveedge-bench: -failover needs the nginx RTMP module: %v\n", err)
		return 2
	}
	if _, err := os.Stat(server); err != nil {
		fmt.Fprintf(stderr, "liveedge-bench: -server: %v\n", err)
		return 2
	}
	dir, done, err := runDir("liveedge-failover-", keepLogs, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench:", err)
		return 1
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, f.limit)
	defer cancel()
	b := &failoverBench{opts: f, dir: dir, log: stderr}
	defer b.close()
	start := time.Now()
	err = b.run(ctx, server)
	b.report(stdout, time.Since(start))
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench: failover:", err)
		return 1
	}
	return 0
}

type failoverBench struct {
	opts *failoverOptions
	dir  string
	log  io.Writer

	clip       string
	origins    [2]*nginxtest.Origin
	publishers [2]*exec.Cmd
	pubCancel  [2]context.CancelFunc
	srv        *serverProc
	tap        *frameTap
	viewerStop context.CancelFunc
	viewerDone chan struct{}

	events []fbEvent
	missed []string // events after which media did not come back
}

func (b *failoverBench) run(ctx context.Context, server string) error {
	b.clip = filepath.Join(b.dir, "clip.flv")
	if err := os.WriteFile(b.clip, demo.FLV(), 0o644); err != nil {
		return err
	}
	for i := range b.origins {
		d := filepath.Join(b.dir, fmt.Sprintf("origin-%c", 'a'+i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		o, err := nginxtest.Launch(d)
		b.origins[i] = o
		if err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		if err := b.publish(ctx, i); err != nil {
			return err
		}
	}
	a, bk := b.origins[0], b.origins[1]
	cfg := fmt.Sprintf(`log: {level: info}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: ""}
admin: {listen: ""}
streams:
  - match: live/%[1]s
    mode: on_demand
    origins: [%[2]s, %[3]s]
    stall_timeout: %[4]s
    failback: true
    probe_interval: 1s
`, fbStream, a.URL(fbStream), bk.URL(fbStream), b.opts.stallTimeout)
	srv, err := startServerConfig(ctx, server, b.dir, cfg, []string{"rtmp"})
	if err != nil {
		return err
	}
	b.srv = srv
	b.tap = &frameTap{}
	vctx, vcancel := context.WithCancel(context.Background())
	b.viewerStop, b.viewerDone = vcancel, make(chan struct{})
	go func() {
		defer close(b.viewerDone)
		b.tap.watch(vctx, srv.addrs["rtmp"], "live", fbStream)
	}()
	if err := b.tap.waitFrames(ctx, time.Now(), fbResumed, 15*time.Second); err != nil {
		return fmt.Errorf("first frames: %w", err)
	}
	fmt.Fprintf(b.log, "failover bench: origins %s (primary) and %s, liveedge %s, viewer up\n", a.RTMP, bk.RTMP, srv.addrs["rtmp"])

	for i := 1; i <= b.opts.kills; i++ {
		if err := b.event(ctx, "kill", i); err != nil {
			return err
		}
	}
	for i := 1; i <= b.opts.stalls; i++ {
		if err := b.event(ctx, "stall", i); err != nil {
			return err
		}
	}
	return nil
}

// event kills or freezes the primary, measures the gap, brings the
// primary back and waits for the failback (measuring its gap too).
func (b *failoverBench) event(ctx context.Context, kind string, n int) error {
	a := b.origins[0]
	if err := b.waitOn(ctx, a); err != nil {
		return fmt.Errorf("%s %d: %w", kind, n, err)
	}
	// A random delay on top, so that events do not fall at the same
	// point of the origins' GOPs every time (the gap includes the wait for
	// the backup's next keyframe).
	if !fbSleep(ctx, fbSteady+rand.N(time.Second)) {
		return ctx.Err()
	}
	failbacks := b.count(`msg=failback `)
	at := time.Now()
	switch kind {
	case "kill":
		a.Kill()
		b.pubCancel[0]()
		b.publishers[0].Wait()
	case "stall":
		a.Freeze()
	}
	gap, err := b.measure(ctx, at)
	if err != nil {
		b.missed = append(b.missed, fmt.Sprintf("%s %d: %v", kind, n, err))
	} else {
		b.events = append(b.events, fbEvent{kind, gap})
	}
	// Bring the primary back.
	back := time.Now()
	switch kind {
	case "kill":
		if err := a.Relaunch(); err != nil {
			return fmt.Errorf("restarting nginx: %w", err)
		}
		if err := b.publish(ctx, 0); err != nil {
			return err
		}
	case "stall":
		if !fbSleep(ctx, b.opts.stallTimeout+2*time.Second-time.Since(at)) {
			a.Thaw()
			return ctx.Err()
		}
		a.Thaw()
	}
	if kind == "stall" && a.WaitPublishing(fbStream, 3*time.Second) != nil {
		// ffmpeg gave up on the frozen origin: feed it again.
		b.pubCancel[0]()
		b.publishers[0].Wait()
		if err := b.publish(ctx, 0); err != nil {
			return err
		}
	}
	if err := b.waitCount(ctx, `msg=failback `, failbacks+1, fbFailback); err != nil {
		return fmt.Errorf("%s %d: no failback: %w", kind, n, err)
	}
	// The switch follows the log line; let it happen before measuring.
	if !fbSleep(ctx, time.Second) {
		return ctx.Err()
	}
	fgap, err := b.measure(ctx, back)
	if err == nil {
		b.events = append(b.events, fbEvent{"failback", fgap})
	}
	fmt.Fprintf(b.log, "  %s %2d: gap %v, failback gap %v\n", kind, n, gap.Round(time.Millisecond), fgap.Round(time.Millisecond))
	return nil
}

// measure waits until the viewer has fbResumed frames after at, after a
// gap, and returns the longest time between two frames from at on.
func (b *failoverBench) measure(ctx context.Context, at time.Time) (time.Duration, error) {
	deadline := time.Now().Add(fbEventWait)
	for {
		gap, resumed := b.tap.gapSince(at, fbResumed)
		if resumed && time.Since(at) > gap {
			return gap, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("media did not come back within %v", fbEventWait)
		}
		if !fbSleep(ctx, 50*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// waitOn waits until the pull's newest origin is o.
func (b *failoverBench) waitOn(ctx context.Context, o *nginxtest.Origin) error {
	re := regexp.MustCompile(`msg="origin up" stream=live/` + fbStream + ` origin=(\S+)`)
	deadline := time.Now().Add(fbFailback)
	for {
		ms := re.FindAllStringSubmatch(b.logText(), -1)
		if len(ms) > 0 && ms[len(ms)-1][1] == o.URL(fbStream) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the pull is not on %s after %v", o.RTMP, fbFailback)
		}
		if !fbSleep(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func (b *failoverBench) logText() string {
	data, _ := os.ReadFile(b.srv.logPath)
	return string(data)
}

func (b *failoverBench) count(re string) int {
	return len(regexp.MustCompile(re).FindAllStringIndex(b.logText(), -1))
}

func (b *failoverBench) waitCount(ctx context.Context, re string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for b.count(re) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q in the server log within %v", re, timeout)
		}
		if !fbSleep(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// publish (re)starts ffmpeg feeding origin i and waits until nginx has
// the stream.
func (b *failoverBench) publish(ctx context.Context, i int) error {
	pctx, cancel := context.WithCancel(context.Background())
	cmd := b.origins[i].PublishCmd(pctx, b.clip, fbStream)
	if err := cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("ffmpeg: %w", err)
	}
	b.publishers[i], b.pubCancel[i] = cmd, cancel
	if err := b.origins[i].WaitPublishing(fbStream, fbPublishing); err != nil {
		return err
	}
	return ctx.Err()
}

func (b *failoverBench) close() {
	if b.viewerStop != nil {
		b.viewerStop()
		<-b.viewerDone
	}
	if b.srv != nil {
		b.srv.stop()
	}
	for i, o := range b.origins {
		if b.pubCancel[i] != nil {
			b.pubCancel[i]()
			b.publishers[i].Wait()
		}
		if o != nil {
			o.Kill()
		}
	}
}

func (b *failoverBench) report(w io.Writer, took time.Duration) {
	st := time.Duration(0)
	if b.opts != nil {
		st = b.opts.stallTimeout
	}
	fmt.Fprintf(w, "\nfailover: 2 nginx-rtmp origins fed by ffmpeg, liveedge on_demand pull (stall_timeout %v, failback on), 1 RTMP viewer; %v\n", st, took.Round(time.Second))
	fmt.Fprintln(w, "gap: longest time between two video frames the viewer received around the event")
	fmt.Fprintf(w, "%-30s %5s %10s %10s %10s  %s\n", "event", "n", "gap p50", "gap max", "target", "")
	rows := []struct {
		kind, label string
		target      time.Duration
	}{
		{"kill", "primary killed (SIGKILL)", time.Second},
		{"stall", fmt.Sprintf("primary frozen (SIGSTOP %v)", st+2*time.Second), st + time.Second},
		{"failback", "failback to the primary", 0},
	}
	for _, r := range rows {
		var gaps []time.Duration
		for _, e := range b.events {
			if e.kind == r.kind {
				gaps = append(gaps, e.gap)
			}
		}
		if len(gaps) == 0 {
			continue
		}
		slices.Sort(gaps)
		p50 := time.Duration(percentile(gaps, 50))
		mx := gaps[len(gaps)-1]
		target, verdict := "-", ""
		if r.target > 0 {
			target = "< " + r.target.String()
			verdict = "ok"
			if mx >= r.target {
				verdict = "MISSED"
			}
		}
		fmt.Fprintf(w, "%-30s %5d %10s %10s %10s  %s\n", r.label, len(gaps),
			p50.Round(time.Millisecond), mx.Round(time.Millisecond), target, verdict)
	}
	if b.tap != nil {
		disc, back := b.tap.counters()
		mono := "yes"
		if back > 0 {
			mono = fmt.Sprintf("no (%d steps back)", back)
		}
		fmt.Fprintf(w, "viewer disconnects: %d (target 0); DTS monotonic: %s; video frames: %d\n", disc, mono, b.tap.total())
	}
	for _, m := range b.missed {
		fmt.Fprintf(w, "MISSED: %s\n", m)
	}
}

// frameTap is the bench's RTMP viewer with a tap on its connection: a
// second chunk parser reads a copy of the bytes and records when each
// video frame arrived and its DTS. A viewer that is disconnected is
// counted and reconnects.
type frameTap struct {
	mu          sync.Mutex
	times       []time.Time
	lastDTS     uint32
	haveDTS     bool
	backward    int
	disconnects int
	frames      atomic.Int64
}

func (t *frameTap) watch(ctx context.Context, addr, app, key string) {
	for ctx.Err() == nil {
		err := t.play(ctx, addr, app, key)
		if ctx.Err() != nil {
			return
		}
		t.mu.Lock()
		t.disconnects++
		t.haveDTS = false // a new connection starts a new timeline
		t.mu.Unlock()
		fmt.Fprintf(os.Stderr, "  viewer disconnected: %v\n", err)
		fbSleep(ctx, 200*time.Millisecond)
	}
}

func (t *frameTap) play(ctx context.Context, addr, app, key string) error {
	d := net.Dialer{Timeout: rtmpSetupTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	pr, pw := io.Pipe()
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		t.parse(pr)
		io.Copy(io.Discard, pr)
	}()
	v := newViewer(&atomic.Bool{}, 0)
	v.start = time.Now()
	err = rtmpPlayConn(ctx, &tapConn{Conn: nc, w: pw}, addr, app, key, v)
	pw.Close()
	<-parsed
	return err
}

// parse reads the server's side of the connection: S0, S1, S2, then
// chunks.
func (t *frameTap) parse(r io.Reader) {
	if _, err := io.ReadFull(r, make([]byte, 1+2*handshakeSize)); err != nil {
		return
	}
	cr := newChunkReader(r, rtmpReadBuf)
	for {
		m, err := cr.ReadMessage()
		if err != nil {
			return
		}
		// Coded video frames only (AVC NALU packets), not headers.
		if m.Type != msgVideo || len(m.Body) < 2 || m.Body[0]&0x80 != 0 || m.Body[1] != 1 {
			continue
		}
		now := time.Now()
		t.mu.Lock()
		if t.haveDTS && m.Timestamp < t.lastDTS {
			t.backward++
		}
		t.haveDTS, t.lastDTS = true, m.Timestamp
		t.times = append(t.times, now)
		t.mu.Unlock()
		t.frames.Add(1)
	}
}

// gapSince returns the longest time between consecutive frames from at
// on (the first of them is the last frame before at), and whether n
// frames arrived after that gap.
func (t *frameTap) gapSince(at time.Time, n int) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, _ := slices.BinarySearchFunc(t.times, at, func(x, y time.Time) int { return x.Compare(y) })
	if i == 0 {
		i = 1
	}
	var gap time.Duration
	gapAt := len(t.times)
	for j := i; j < len(t.times); j++ {
		if g := t.times[j].Sub(t.times[j-1]); g > gap {
			gap, gapAt = g, j
		}
	}
	// Frames after at, but none yet: the gap runs until now.
	if last := len(t.times) - 1; last >= 0 && time.Since(t.times[last]) > gap {
		return time.Since(t.times[last]), false
	}
	return gap, len(t.times)-gapAt >= n
}

// waitFrames waits for n frames after since.
func (t *frameTap) waitFrames(ctx context.Context, since time.Time, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		i, _ := slices.BinarySearchFunc(t.times, since, func(x, y time.Time) int { return x.Compare(y) })
		got := len(t.times) - i
		t.mu.Unlock()
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d video frames in %v, want %d", got, timeout, n)
		}
		if !fbSleep(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func (t *frameTap) counters() (disconnects, backward int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.disconnects, t.backward
}

func (t *frameTap) total() int64 { return t.frames.Load() }

// tapConn copies what is read from the connection to w.
type tapConn struct {
	net.Conn
	w *io.PipeWriter
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if _, werr := c.w.Write(p[:n]); werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
			return n, werr
		}
	}
	return n, err
}

// fbSleep waits d unless ctx ends first; it reports whether it waited.
func fbSleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
