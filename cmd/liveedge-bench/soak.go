package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/protocols/demo"
)

// The soak (-soak DURATION, make soak): two nginx-rtmp origins, each fed
// every stream by the bench publisher; liveedge pulls the -soak-streams
// streams on demand from both (failover, failback); -soak-viewers viewers
// of mixed protocols each watch a random stream for a random time, leave
// and come back; meanwhile one origin at a time is killed or frozen at
// random. Every -soak-sample it records the server's RSS, goroutines and
// open files. It reports those over time (a flat line is the pass), the
// failovers, the viewer disconnects nobody asked for (target 0) and the
// worst time to first frame.

type soakOptions struct {
	duration time.Duration
	streams  int
	viewers  int
	flap     time.Duration
	sample   time.Duration
}

func soakFlags(fs *flag.FlagSet) *soakOptions {
	s := &soakOptions{}
	fs.DurationVar(&s.duration, "soak", 0, "run the soak instead, this long (needs nginx with the RTMP module)")
	fs.IntVar(&s.streams, "soak-streams", 20, "soak: streams")
	fs.IntVar(&s.viewers, "soak-viewers", 500, "soak: viewers at once (RTMP 40 %, HTTP-FLV 30 %, RTSP 15 %, LL-HLS 12 %, WHEP 3 %)")
	fs.DurationVar(&s.flap, "soak-flap", 20*time.Second, "soak: mean time between origin faults (kill or freeze of one origin)")
	fs.DurationVar(&s.sample, "soak-sample", 10*time.Second, "soak: sampling interval of RSS, goroutines and open files")
	return s
}

// soakMix is the share of each viewer kind, in per cent.
var soakMix = []struct {
	kind  string
	share int
}{{"rtmp", 40}, {"flv", 30}, {"rtsp", 15}, {"hls", 12}, {"whep", 3}}

type soakSample struct {
	at         time.Duration
	viewers    int64
	rssKiB     int64
	goroutines int
	fds        int
	failovers  int
	disc       int64
}

type soakBench struct {
	opts    *soakOptions
	dir     string
	log     io.Writer
	origins [2]*nginxtest.Origin
	srv     *serverProc

	active   atomic.Int64
	joined   atomic.Int64
	faults   atomic.Int64
	mu       sync.Mutex
	ttff     map[string][]time.Duration // by kind
	noFrame  map[string]int             // viewers that ended without a first frame, by kind
	discs    []string                   // unrequested disconnects: kind, stream, error
	samples  []soakSample
	faultLog []string
}

// runSoak runs the soak and prints its report.
func runSoak(ctx context.Context, o *soakOptions, server string, keepLogs bool, stdout, stderr io.Writer) int {
	if _, err := exec.LookPath("nginx"); err != nil {
		fmt.Fprintln(stderr, "liveedge-bench: -soak needs nginx with the RTMP module (make tools installs it)")
		return 2
	}
	if o.streams < 1 || o.viewers < 1 || o.flap <= 0 || o.sample <= 0 {
		fmt.Fprintln(stderr, "liveedge-bench: -soak-streams, -soak-viewers, -soak-flap and -soak-sample must be positive")
		return 2
	}
	if lim, err := raiseNoFile(); err != nil || lim < uint64(o.viewers)*2+512 {
		fmt.Fprintf(stderr, "liveedge-bench: warning: open-file limit %d (%v) may not fit %d viewers\n", lim, err, o.viewers)
	}
	dir, done, err := runDir("liveedge-soak-", keepLogs, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench:", err)
		return 1
	}
	defer done()
	b := &soakBench{opts: o, dir: dir, log: stderr, ttff: map[string][]time.Duration{}, noFrame: map[string]int{}}
	defer b.close()
	start := time.Now()
	err = b.run(ctx, server)
	b.report(stdout, time.Since(start))
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench: soak:", err)
		return 1
	}
	return 0
}

func (b *soakBench) streamName(i int) string { return fmt.Sprintf("soak%02d", i) }

func (b *soakBench) run(ctx context.Context, server string) error {
	clip, err := demo.Default()
	if err != nil {
		return err
	}
	for i := range b.origins {
		d := filepath.Join(b.dir, fmt.Sprintf("origin-%c", 'a'+i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if b.origins[i], err = nginxtest.Launch(d); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
	}
	// One publisher per stream and origin, reconnecting while its origin
	// is down, until the soak ends.
	pctx, pcancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	defer func() {
		pcancel()
		pwg.Wait()
	}()
	for _, o := range b.origins {
		for s := range b.opts.streams {
			url := "rtmp://" + o.RTMP + "/live#" + b.streamName(s)
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				for pctx.Err() == nil {
					_ = newPublisher(clip, 0).run(pctx, url)
					fbSleep(pctx, 300*time.Millisecond)
				}
			}()
		}
	}
	for _, o := range b.origins {
		if err := o.WaitPublishing(b.streamName(b.opts.streams-1), fbPublishing); err != nil {
			return err
		}
	}

	a, bk := b.origins[0], b.origins[1]
	extra := "hls: {variant: lowlatency}\n" + loopbackWebRTC() + fmt.Sprintf(`streams:
  - match: "live/*"
    mode: on_demand
    origins: [ "rtmp://%s/live/$stream", "rtmp://%s/live/$stream" ]
    stall_timeout: 1s
    idle_close: 5s
    failback: true
`, a.RTMP, bk.RTMP)
	listeners := []string{"rtmp", "http", "rtsp", "admin"}
	cfg := strings.Replace(serverConfig(listeners), "streams: []\n", "", 1) + extra
	if b.srv, err = startServerConfig(ctx, server, b.dir, cfg, listeners); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "soak: %v, %d streams, %d viewers, origins %s and %s, liveedge pid %d\n",
		b.opts.duration, b.opts.streams, b.opts.viewers, a.RTMP, bk.RTMP, b.srv.pid())

	sctx, scancel := context.WithTimeout(ctx, b.opts.duration)
	defer scancel()
	var wg sync.WaitGroup
	slot := 0
	for _, m := range soakMix {
		n := b.opts.viewers * m.share / 100
		if m.kind == "rtmp" {
			n = b.opts.viewers - b.opts.viewers*(100-m.share)/100 // the rounding remainder
		}
		for range n {
			kind := viewerKinds[m.kind]
			delay := time.Duration(slot) * 20 * time.Millisecond // ramp up over a few seconds
			slot++
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.viewerLoop(sctx, m.kind, kind, delay)
			}()
		}
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		b.flapper(sctx)
	}()
	go func() {
		defer wg.Done()
		b.sampler(sctx, time.Now())
	}()
	wg.Wait()
	if !b.srv.alive() {
		return fmt.Errorf("liveedge exited during the soak: %v", b.srv.exitErr())
	}
	return ctx.Err()
}

// viewerLoop keeps one viewer slot busy: watch a random stream for 20–90
// s, pause up to 2 s, again, until ctx ends.
func (b *soakBench) viewerLoop(ctx context.Context, name string, kind viewerKind, delay time.Duration) {
	if !fbSleep(ctx, delay) {
		return
	}
	addr := b.srv.addrs[kind.listener()]
	for ctx.Err() == nil {
		stream := "live/" + b.streamName(rand.N(b.opts.streams))
		life := 20*time.Second + rand.N(70*time.Second)
		vctx, cancel := context.WithTimeout(ctx, life)
		v := newViewer(&atomic.Bool{}, 0)
		b.active.Add(1)
		b.joined.Add(1)
		v.run(vctx, kind, addr, stream)
		b.active.Add(-1)
		asked := vctx.Err() != nil // the viewer's time was up, or the soak's
		cancel()
		b.mu.Lock()
		if v.gotFirst.Load() {
			b.ttff[name] = append(b.ttff[name], v.ttff)
		} else if asked {
			b.noFrame[name]++
		}
		if !asked {
			b.discs = append(b.discs, fmt.Sprintf("%s %s after %v: %v", name, stream,
				v.failedAt.Round(time.Millisecond), v.err))
		}
		b.mu.Unlock()
		fbSleep(ctx, rand.N(2*time.Second))
	}
}

// flapper kills or freezes one origin at a time, at random.
func (b *soakBench) flapper(ctx context.Context) {
	start := time.Now()
	for {
		if !fbSleep(ctx, b.opts.flap/2+rand.N(b.opts.flap)) {
			return
		}
		i := rand.N(2)
		o := b.origins[i]
		kill := rand.N(2) == 0
		down := 2*time.Second + rand.N(4*time.Second)
		what := "frozen"
		if kill {
			what = "killed"
			o.Kill()
		} else {
			o.Freeze()
		}
		b.faults.Add(1)
		b.mu.Lock()
		b.faultLog = append(b.faultLog, fmt.Sprintf("%6.1fs origin %c %s for %v", time.Since(start).Seconds(), 'a'+i, what, down.Round(100*time.Millisecond)))
		b.mu.Unlock()
		fbSleep(context.Background(), down) // always bring it back
		if kill {
			if err := o.Relaunch(); err != nil {
				fmt.Fprintf(b.log, "  soak: restarting origin %c: %v\n", 'a'+i, err)
			}
		} else {
			o.Thaw()
		}
		// Let its publishers come back before the next fault.
		_ = o.WaitPublishing(b.streamName(0), fbPublishing)
	}
}

var goroutinesRE = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

// sampler records the server's figures every sample interval.
func (b *soakBench) sampler(ctx context.Context, start time.Time) {
	t := time.NewTicker(b.opts.sample)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := soakSample{at: time.Since(start), viewers: b.active.Load()}
		s.rssKiB, _ = procRSSKiB(b.srv.pid())
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", b.srv.pid())); err == nil {
			s.fds = len(ents)
		}
		if resp, err := http.Get("http://" + b.srv.addrs["admin"] + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := goroutinesRE.FindSubmatch(body); m != nil {
				s.goroutines, _ = strconv.Atoi(string(m[1]))
			}
		}
		s.failovers = b.countLog(`msg=failover `)
		b.mu.Lock()
		s.disc = int64(len(b.discs))
		b.samples = append(b.samples, s)
		b.mu.Unlock()
		fmt.Fprintf(b.log, "  %5.0fs viewers %4d  rss %6.1f MiB  goroutines %5d  fds %5d  failovers %4d  disconnects %d\n",
			s.at.Seconds(), s.viewers, float64(s.rssKiB)/1024, s.goroutines, s.fds, s.failovers, s.disc)
	}
}

func (b *soakBench) countLog(re string) int {
	f, err := os.Open(b.srv.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	rx := regexp.MustCompile(re)
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rx.Match(sc.Bytes()) {
			n++
		}
	}
	return n
}

func (b *soakBench) close() {
	if b.srv != nil {
		b.srv.stop()
	}
	for _, o := range b.origins {
		if o != nil {
			o.Thaw()
			o.Kill()
		}
	}
}

// flat compares the median of the last third of the samples with that of
// the middle third (the first third is the ramp-up): growth in per cent.
func flat(samples []soakSample, f func(soakSample) float64) (mid, last, growth float64, ok bool) {
	n := len(samples)
	if n < 6 {
		return 0, 0, 0, false
	}
	med := func(s []soakSample) float64 {
		v := make([]float64, len(s))
		for i := range s {
			v[i] = f(s[i])
		}
		return median(v)
	}
	mid, last = med(samples[n/3:2*n/3]), med(samples[2*n/3:])
	if mid > 0 {
		growth = 100 * (last - mid) / mid
	}
	return mid, last, growth, true
}

func (b *soakBench) report(w io.Writer, took time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(w, "\nsoak: %v; %d streams on demand from 2 nginx-rtmp origins (stall_timeout 1s, failback on), one origin at a time killed or frozen every ~%v; %d viewers at once (RTMP, HTTP-FLV, RTSP, LL-HLS, WHEP), each watching 20–90 s\n",
		took.Round(time.Second), b.opts.streams, b.opts.flap, b.opts.viewers)
	fmt.Fprintf(w, "%8s %8s %10s %11s %6s %10s %12s\n", "t", "viewers", "rss MiB", "goroutines", "fds", "failovers", "disconnects")
	for _, s := range b.samples {
		fmt.Fprintf(w, "%7.0fs %8d %10.1f %11d %6d %10d %12d\n", s.at.Seconds(), s.viewers, float64(s.rssKiB)/1024, s.goroutines, s.fds, s.failovers, s.disc)
	}
	for _, m := range []struct {
		name  string
		f     func(soakSample) float64
		limit float64
	}{
		{"rss", func(s soakSample) float64 { return float64(s.rssKiB) / 1024 }, 15},
		{"goroutines", func(s soakSample) float64 { return float64(s.goroutines) }, 15},
		{"fds", func(s soakSample) float64 { return float64(s.fds) }, 15},
	} {
		mid, last, growth, ok := flat(b.samples, m.f)
		if !ok {
			fmt.Fprintf(w, "%-11s too few samples for a trend\n", m.name)
			continue
		}
		verdict := "flat"
		if growth > m.limit {
			verdict = "GROWING"
		}
		fmt.Fprintf(w, "%-11s median of the middle third %.1f, of the last third %.1f: %+.1f %% (limit +%.0f %%)  %s\n",
			m.name, mid, last, growth, m.limit, verdict)
	}
	failovers := 0
	if len(b.samples) > 0 {
		failovers = b.samples[len(b.samples)-1].failovers
	}
	fmt.Fprintf(w, "origin faults: %d; failovers logged: %d; viewer sessions: %d\n", b.faults.Load(), failovers, b.joined.Load())
	verdict := "ok"
	if len(b.discs) > 0 {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "viewer disconnects nobody asked for: %d (target 0)  %s\n", len(b.discs), verdict)
	shown := 0
	for _, d := range b.discs {
		if shown == 10 {
			fmt.Fprintf(w, "  … and %d more\n", len(b.discs)-shown)
			break
		}
		fmt.Fprintf(w, "  %s\n", d)
		shown++
	}
	kinds := make([]string, 0, len(b.ttff))
	for k := range b.ttff {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var worst time.Duration
	for _, k := range kinds {
		t := slices.Clone(b.ttff[k])
		slices.Sort(t)
		worst = max(worst, t[len(t)-1])
		fmt.Fprintf(w, "TTFF %-5s n %5d  p50 %6.0f ms  p99 %6.0f ms  max %6.0f ms  (no first frame: %d)\n", k, len(t),
			percentile(t, 50)/1e6, percentile(t, 99)/1e6, float64(t[len(t)-1])/1e6, b.noFrame[k])
	}
	fmt.Fprintf(w, "worst TTFF: %v\n", worst.Round(time.Millisecond))
	for _, f := range b.faultLog {
		fmt.Fprintf(w, "  fault %s\n", f)
	}
}
