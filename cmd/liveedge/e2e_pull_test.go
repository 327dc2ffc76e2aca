package main

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/liveedge/liveedge/internal/nginxtest"
)

// pullConfig is a liveedge configuration pulling live/* from origins.
func pullConfig(mode, match string, extra string, origins ...string) string {
	cfg := baseConfig + "streams:\n  - match: \"" + match + "\"\n    mode: " + mode + "\n    origins:\n"
	for _, o := range origins {
		cfg += "      - " + o + "\n"
	}
	return cfg + extra
}

// TestPullRelayOneUpstream: ffmpeg → nginx → liveedge (on demand) → three
// viewers at once; nginx sees exactly one player, and the pull closes
// after idle_close.
func TestPullRelayOneUpstream(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	o := nginxtest.Start(t)
	o.Publish(t, "x")
	s := startServer(t, pullConfig("on_demand", "live/*", "    idle_close: 1s\n", "rtmp://"+o.RTMP+"/live/$stream"))

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	results := make(chan probeResult, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := probe(t, s.url("live/x"), 200)
			if err != nil {
				errs <- err
				return
			}
			results <- r
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	maxPlayers, samples := 0, 0
	for watching := true; watching; {
		select {
		case <-done:
			watching = false
		case <-time.After(100 * time.Millisecond):
			if st, err := o.Stat(); err == nil {
				n := st.Players("x")
				maxPlayers = max(maxPlayers, n)
				if n > 0 {
					samples++
				}
			}
		}
	}
	close(errs)
	close(results)
	for err := range errs {
		t.Fatal(err)
	}
	for r := range results {
		checkPlayback(t, r, 50)
	}
	if maxPlayers != 1 || samples == 0 {
		t.Fatalf("origin saw at most %d players (%d samples), want exactly 1", maxPlayers, samples)
	}
	if n := countLines(s.logLines(), `msg="pull started" stream=live/x`); n != 1 {
		t.Fatalf("%d pulls started, want 1", n)
	}
	// No viewers: the pull closes after idle_close (1 s).
	deadline := time.Now().Add(4 * time.Second)
	for o.Players(t, "x") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("origin still has a player 4 s after the last viewer left")
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.waitLog(t, `msg="pull ended" stream=live/x reason="no viewers".*connects=1 failures=0`, 2*time.Second)
}

// viewer plays a stream with a Go RTMP client, continuously, recording
// the wall-clock gaps between video frames and checking that DTS never
// goes back.
type viewer struct {
	mu       sync.Mutex
	frames   int
	last     time.Time
	lastDTS  time.Duration
	maxGap   time.Duration
	backward int
	err      error
	done     chan struct{}
	c        *gortmplib.Client
}

func watch(t *testing.T, rawURL string) *viewer {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{done: make(chan struct{}), c: &gortmplib.Client{URL: u}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	r := &gortmplib.Reader{Conn: v.c}
	v.c.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := r.Initialize(); err != nil {
		v.c.Close()
		t.Fatal(err)
	}
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *codecs.H264:
			r.OnDataH264(tr, func(_, dts time.Duration, _ [][]byte) { v.frame(dts) })
		case *codecs.MPEG4Audio:
			r.OnDataMPEG4Audio(tr, func(time.Duration, []byte) {})
		}
	}
	go func() {
		defer close(v.done)
		for {
			v.c.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := r.Read(); err != nil {
				v.mu.Lock()
				v.err = err
				v.mu.Unlock()
				return
			}
		}
	}()
	t.Cleanup(func() {
		v.c.Close()
		<-v.done
	})
	return v
}

func (v *viewer) frame(dts time.Duration) {
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.frames > 0 {
		v.maxGap = max(v.maxGap, now.Sub(v.last))
		if dts < v.lastDTS {
			v.backward++
		}
	}
	v.frames++
	v.last, v.lastDTS = now, dts
}

// reset starts a new measurement of the gap.
func (v *viewer) reset() {
	v.mu.Lock()
	v.maxGap = 0
	v.mu.Unlock()
}

type viewerState struct {
	frames, backward int
	maxGap           time.Duration
	err              error
}

func (v *viewer) state() viewerState {
	v.mu.Lock()
	defer v.mu.Unlock()
	return viewerState{v.frames, v.backward, v.maxGap, v.err}
}

// waitFrames waits until the viewer got n more frames.
func (v *viewer) waitFrames(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	start := v.state().frames
	deadline := time.Now().Add(timeout)
	for v.state().frames < start+n {
		if st := v.state(); st.err != nil {
			t.Fatalf("viewer disconnected: %v", st.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("viewer got %d frames in %v, want %d", v.state().frames-start, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkSwitch waits for the viewer to receive media after an origin
// switch and returns the largest gap between frames it saw.
func (v *viewer) checkSwitch(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	v.waitFrames(t, 50, 10*time.Second) // two seconds of video after the switch
	st := v.state()
	if st.err != nil {
		t.Fatalf("viewer disconnected: %v", st.err)
	}
	if st.backward > 0 {
		t.Fatalf("DTS went back %d times", st.backward)
	}
	if st.maxGap > limit {
		t.Fatalf("media gap %v, want < %v", st.maxGap, limit)
	}
	return st.maxGap
}

// logPullStates logs the server's pull state changes.
func logPullStates(t *testing.T, s *server) {
	t.Helper()
	rx := regexp.MustCompile(`msg=(failover|failback|"origin up"|"origin down"|"pull started"|"pull ended"|"primary healthy again"|"all origins failed")`)
	for _, l := range s.logLines() {
		if rx.MatchString(l) {
			t.Log(l)
		}
	}
}

// TestPullFailoverOnKill: the primary nginx is killed while a viewer
// watches; the viewer stays connected and media resumes from the backup;
// with failback on, the edge returns to the restarted primary.
func TestPullFailoverOnKill(t *testing.T) {
	requireTools(t, "ffmpeg")
	a, b := nginxtest.Start(t), nginxtest.Start(t)
	a.Publish(t, "x")
	b.Publish(t, "x")
	s := startServer(t, pullConfig("on_demand", "live/*", "    stall_timeout: 1s\n    failback: true\n",
		"rtmp://"+a.RTMP+"/live/$stream", "rtmp://"+b.RTMP+"/live/$stream"))
	t.Cleanup(func() { logPullStates(t, s) })
	v := watch(t, s.url("live/x"))
	v.waitFrames(t, 25, 10*time.Second)
	if a.Players(t, "x") != 1 || b.Players(t, "x") != 0 {
		t.Fatal("the pull is not on the primary")
	}

	v.reset()
	a.Kill()
	gap := v.checkSwitch(t, 3*time.Second)
	t.Logf("failover after SIGKILL: media gap %v", gap)
	s.waitLog(t, `msg=failover stream=live/x from=rtmp://`+a.RTMP+`/live/x to=rtmp://`+b.RTMP+`/live/x reason=closed`, time.Second)
	if n := b.Players(t, "x"); n != 1 {
		t.Fatalf("backup has %d players, want 1", n)
	}

	// Failback: the primary comes back; the probe finds it and the pull
	// returns to it.
	a.Restart(t)
	a.Publish(t, "x")
	v.reset()
	s.waitLog(t, `msg=failback stream=live/x`, 10*time.Second)
	// The switch back happens on the primary's first keyframe, read
	// while the backup still played: no gap beyond the frame interval
	// and scheduling noise.
	gap = v.checkSwitch(t, 500*time.Millisecond)
	t.Logf("failback: media gap %v", gap)
	deadline := time.Now().Add(3 * time.Second)
	for b.Players(t, "x") != 0 || a.Players(t, "x") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after failback: primary %d players, backup %d, want 1 and 0", a.Players(t, "x"), b.Players(t, "x"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPullFailoverOnStall: the primary freezes (SIGSTOP); the edge moves
// to the backup within stall_timeout + 1 s.
func TestPullFailoverOnStall(t *testing.T) {
	requireTools(t, "ffmpeg")
	a, b := nginxtest.Start(t), nginxtest.Start(t)
	a.Publish(t, "x")
	b.Publish(t, "x")
	t.Cleanup(a.Thaw) // before Kill, in case the test fails while frozen
	s := startServer(t, pullConfig("on_demand", "live/*", "    stall_timeout: 1s\n    failback: false\n",
		"rtmp://"+a.RTMP+"/live/$stream", "rtmp://"+b.RTMP+"/live/$stream"))
	v := watch(t, s.url("live/x"))
	v.waitFrames(t, 25, 10*time.Second)

	v.reset()
	a.Freeze()
	gap := v.checkSwitch(t, 2*time.Second+time.Second) // stall_timeout + 1 s + one GOP of the origin at most
	t.Logf("failover after SIGSTOP (stall_timeout 1s): media gap %v", gap)
	s.waitLog(t, `msg=failover stream=live/x from=rtmp://`+a.RTMP+`/live/x to=rtmp://`+b.RTMP+`/live/x reason=stall`, time.Second)
}

// TestPullDeadOriginsBackOff: a static pull whose origins all refuse
// connections retries with backoff instead of spinning.
func TestPullDeadOriginsBackOff(t *testing.T) {
	requireTools(t)
	p1, p2 := nginxtest.FreePort(t), nginxtest.FreePort(t)
	s := startServer(t, pullConfig("static", "live/dead", "",
		fmt.Sprintf("rtmp://127.0.0.1:%d/live/dead", p1), fmt.Sprintf("rtmp://127.0.0.1:%d/live/dead", p2)))
	s.waitLog(t, `msg="origin down" stream=live/dead`, 2*time.Second)
	time.Sleep(3 * time.Second)
	lines := s.logLines()
	attempts := countLines(lines, `msg="origin down" stream=live/dead .*reason=refused`)
	rounds := countLines(lines, `msg="all origins failed" stream=live/dead`)
	t.Logf("%d connect attempts and %d backoffs in about 3 s", attempts, rounds)
	// 0.5 s doubling with ±25 % jitter: at most 5 rounds of 2 attempts fit in 3.x s.
	if attempts < 4 || attempts > 12 {
		t.Fatalf("%d connect attempts in about 3 s, want 4..12", attempts)
	}
	if rounds < 2 {
		t.Fatalf("%d backoff waits, want at least 2", rounds)
	}
}

// TestPullSigned: the origin is a liveedge that requires play tokens; the
// edge signs its pull with the app's secret (sha1 here, custom parameter
// names) and relays; without sign the origin refuses the pull.
func TestPullSigned(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	authCfg := `
auth:
  algorithm: sha1
  secrets: {live: "pull-secret"}
  play: true
  expires_param: e
  token_param: t
`
	origin := startServer(t, baseConfig+authCfg+"streams: []\n")
	publish(t, origin.url("live/cam"))
	origin.waitLog(t, `msg=publishing .*stream=live/cam`, 15*time.Second)

	edgeAuth := strings.Replace(authCfg, "play: true", "play: false", 1)
	edge := startServer(t, pullConfig("on_demand", "live/*", "    sign: true\n", "rtmp://"+origin.rtmp+"/live/$stream")+edgeAuth)
	r, err := probe(t, edge.url("live/cam"), 100)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 30)
	origin.waitLog(t, `msg=playing .*stream=live/cam`, time.Second)
	for _, l := range append(edge.logLines(), origin.logLines()...) {
		if strings.Contains(l, "pull-secret") || strings.Contains(l, "t=") && strings.Contains(l, "e=") && strings.Contains(l, "origin=") {
			t.Fatalf("a log line carries a token or secret: %s", l)
		}
	}

	unsigned := startServer(t, pullConfig("on_demand", "live/*", "", "rtmp://"+origin.rtmp+"/live/$stream"))
	if _, err := probe(t, unsigned.url("live/cam"), 20); err == nil {
		t.Fatal("an unsigned pull was accepted by the origin")
	}
	origin.waitLog(t, `msg="access refused" stream=live/cam action=play`, time.Second)
}
