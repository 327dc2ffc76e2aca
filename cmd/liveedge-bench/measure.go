package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/liveedge/liveedge/protocols/demo"
)

// options are the bench's settings (flags).
type options struct {
	server      string
	stream      string
	window      time.Duration
	warmup      time.Duration
	baseline    time.Duration
	settle      time.Duration
	drain       time.Duration
	batch       int
	ttffTimeout time.Duration
	connectCap  time.Duration
	keepLogs    bool
	logDir      string // where per-run server logs go
	profileDir  string // where heap profiles taken after each window go ("": none)
	probes      int
	verbose     bool
}

// result is one measured run: one row of the table.
type result struct {
	Proto  string `json:"proto"`
	Run    string `json:"run"` // "100@2M"
	Repeat int    `json:"repeat"`
	Stat   string `json:"stat,omitempty"` // "median", "min", "max" on summary rows

	Viewers int `json:"viewers"` // asked for
	OK      int `json:"ok"`      // got a first frame and stayed until the end
	// Failed: no first frame within the timeout (or not started); Lost: had
	// one but were disconnected before the end.
	Failed int `json:"failed"`
	Lost   int `json:"lost"`

	TargetBps    int64 `json:"target_bps"`
	BitrateBps   num   `json:"bitrate_bps"`    // measured at the publisher over the window
	RecvBps      num   `json:"recv_bps"`       // mean per viewer over the window
	FillerBytes  int   `json:"filler_bytes"`   // filler NAL unit per video AU
	CPUBase      num   `json:"cpu_base_pct"`   // server, % of one core, 0 viewers
	CPUWindow    num   `json:"cpu_window_pct"` // server, % of one core, N viewers
	CPUPerViewer num   `json:"cpu_per_viewer_pct"`
	RSSBase      num   `json:"rss_base_kib"`
	RSSWindow    num   `json:"rss_window_kib"`
	RSSPerViewer num   `json:"rss_per_viewer_kib"`
	BenchCPU     num   `json:"bench_cpu_pct"`          // this process, % of one core, over the window
	OtherBase    num   `json:"other_cpu_base_pct"`     // every other process during the baseline
	OtherCPU     num   `json:"other_cpu_pct"`          // every other process, % of one core, over the window
	ReqPerSec    num   `json:"requests_per_s"`         // HTTP requests of all viewers over the window
	PubMaxLate   num   `json:"publisher_max_late_ms"`  // over the window: a write's lateness vs the clip's schedule
	PubMaxWrite  num   `json:"publisher_max_write_ms"` // over the window: the longest publisher write
	StealCPU     num   `json:"steal_cpu_pct"`          // stolen by the hypervisor, % of one core

	TTFFp50       num            `json:"ttff_p50_ms"`
	TTFFp95       num            `json:"ttff_p95_ms"`
	TTFFMax       num            `json:"ttff_max_ms"`
	SoloJoins     int            `json:"solo_joins"` // single viewers joining after the window
	SoloTTFFp50   num            `json:"solo_ttff_p50_ms"`
	SoloTTFFp95   num            `json:"solo_ttff_p95_ms"`
	SoloKeyFirst  int            `json:"solo_key_first"`
	TTFFSteps     []step         `json:"ttff_steps,omitempty"` // where the time to first frame goes
	KeyFirstPct   num            `json:"key_first_pct"`
	LatP50        num            `json:"latency_p50_ms"`
	LatP95        num            `json:"latency_p95_ms"`
	LatP99        num            `json:"latency_p99_ms"`
	LatMax        num            `json:"latency_max_ms"`
	LatSamples    int            `json:"latency_samples"`
	Stalls        int            `json:"stalls"`
	MaxGap        num            `json:"max_gap_ms"`
	NoSEI         int            `json:"frames_without_sei"`
	PreKey        int            `json:"frames_before_key"` // received before the first keyframe (kinds that wait for one)
	ServerWarn    int            `json:"server_warnings"`
	ServerError   int            `json:"server_errors"`
	ServerDropped int            `json:"server_dropped_units"` // units the server skipped for lagging players
	ServerLeft    map[string]int `json:"server_player_left,omitempty"`
	ViewerErrors  map[string]int `json:"viewer_errors,omitempty"`
	Notes         []string       `json:"notes,omitempty"`
	LogPath       string         `json:"log,omitempty"`
}

// step is one setup step of the viewers: the time from the previous step's
// end to its end, over viewers that got a first frame.
type step struct {
	Name string `json:"name"`
	P50  num    `json:"p50_ms"`
	P95  num    `json:"p95_ms"`
}

// ttffSteps splits the time to first frame into the viewers' setup steps.
func ttffSteps(viewers []*viewer) []step {
	var names []string
	by := map[string][]time.Duration{}
	for _, v := range viewers {
		if v.frames == 0 {
			continue
		}
		prev := time.Duration(0)
		for _, p := range append(v.phases, phase{"first frame", v.ttff}) {
			if _, ok := by[p.name]; !ok {
				names = append(names, p.name)
			}
			by[p.name] = append(by[p.name], p.at-prev)
			prev = p.at
		}
	}
	out := make([]step, 0, len(names))
	for _, n := range names {
		d := by[n]
		slices.Sort(d)
		out = append(out, step{n, num(percentile(d, 50) / 1e6), num(percentile(d, 95) / 1e6)})
	}
	return out
}

// stallMoments groups the viewers' stalls by when they ended (within
// 200 ms of each other): a stall every viewer sees at once comes from the
// publisher, the server or the machine; a lone one from its connection.
func stallMoments(viewers []*viewer, ref time.Time) string {
	var at []time.Time
	for _, v := range viewers {
		at = append(at, v.stallAt...)
	}
	if len(at) == 0 {
		return ""
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	var parts []string
	for i := 0; i < len(at) && len(parts) < 8; {
		j := i + 1
		for j < len(at) && at[j].Sub(at[i]) < 200*time.Millisecond {
			j++
		}
		parts = append(parts, fmt.Sprintf("%+.1fs: %d", at[i].Sub(ref).Seconds(), j-i))
		i = j
	}
	return strings.Join(parts, ", ")
}

// window is CPU and RSS of a process over a time window.
type window struct {
	cpuPct   float64 // % of one core
	rssMean  float64 // KiB
	rssMax   int64
	selfCPU  float64 // this process, % of one core
	machine  float64 // every CPU's busy time, % of one core
	steal    float64 // time stolen by the hypervisor, % of one core
	duration time.Duration
}

// measure samples pid's CPU (utime+stime) over d and its RSS every 250 ms.
func measure(ctx context.Context, pid int, d time.Duration) (window, error) {
	t0 := time.Now()
	c0, err := procCPUTicks(pid)
	if err != nil {
		return window{}, err
	}
	s0 := selfCPU()
	m0, merr := readMachineTicks()
	var sum float64
	var n int
	var rmax int64
	sample := func() error {
		r, err := procRSSKiB(pid)
		if err != nil {
			return err
		}
		sum += float64(r)
		n++
		rmax = max(rmax, r)
		return nil
	}
	if err := sample(); err != nil {
		return window{}, err
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
loop:
	for {
		select {
		case <-tick.C:
			if err := sample(); err != nil {
				return window{}, err
			}
		case <-end.C:
			break loop
		case <-ctx.Done():
			return window{}, ctx.Err()
		}
	}
	c1, err := procCPUTicks(pid)
	if err != nil {
		return window{}, err
	}
	if err := sample(); err != nil {
		return window{}, err
	}
	el := time.Since(t0)
	m1, merr1 := readMachineTicks()
	machine, steal := math.NaN(), math.NaN()
	if merr == nil && merr1 == nil {
		machine = float64(m1.busy-m0.busy) / clockTicks / el.Seconds() * 100
		steal = float64(m1.steal-m0.steal) / clockTicks / el.Seconds() * 100
	}
	return window{
		machine:  machine,
		steal:    steal,
		cpuPct:   float64(c1-c0) / clockTicks / el.Seconds() * 100,
		rssMean:  sum / float64(n),
		rssMax:   rmax,
		selfCPU:  (selfCPU() - s0).Seconds() / el.Seconds() * 100,
		duration: el,
	}, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runOne measures one configuration on a fresh server.
func runOne(ctx context.Context, o *options, clip *demo.Clip, kind viewerKind, spec runSpec, rep int) (*result, error) {
	res := &result{Proto: kind.name(), Run: spec.String(), Repeat: rep, Viewers: spec.Viewers, TargetBps: spec.Bitrate}
	logf := func(format string, args ...any) {
		if o.verbose {
			fmt.Fprintf(os.Stderr, "  "+format+"\n", args...)
		}
	}

	dir, err := os.MkdirTemp(o.logDir, fmt.Sprintf("%s-%s-%d-", kind.listener(), spec, rep))
	if err != nil {
		return nil, err
	}
	if !o.keepLogs {
		defer os.RemoveAll(dir)
	}
	listeners := []string{"rtmp"} // the publisher
	if l := kind.listener(); l != "rtmp" {
		listeners = append(listeners, l)
	}
	if o.profileDir != "" {
		listeners = append(listeners, "admin") // serves /debug/pprof/
	}
	var extra []string
	if kc, ok := kind.(kindConfigurer); ok {
		extra = append(extra, kc.configExtra())
	}
	srv, err := startServer(ctx, o.server, dir, listeners, extra...)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	if o.keepLogs {
		res.LogPath = srv.logPath
	}
	logf("server pid %d, %v", srv.pid(), srv.addrs)

	// Publisher.
	pub := newPublisher(clip, spec.Bitrate)
	res.FillerBytes = pub.fillerLen
	pubCtx, pubCancel := context.WithCancel(ctx)
	defer pubCancel()
	var pubErr error
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		pubErr = pub.run(pubCtx, "rtmp://"+srv.addrs["rtmp"]+"/"+o.stream)
	}()
	select {
	case <-pub.started:
	case <-pubDone:
		return nil, fmt.Errorf("publisher: %v", pubErr)
	case <-time.After(publishTimeout + time.Second):
		return nil, errors.New("publisher did not start")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	pubFailed := func() error {
		select {
		case <-pubDone:
			if pubErr == nil {
				return errors.New("publisher stopped")
			}
			return pubErr
		default:
			return nil
		}
	}
	if err := sleepCtx(ctx, o.warmup); err != nil {
		return nil, err
	}
	if kw, ok := kind.(kindWarmer); ok {
		if err := kw.warm(ctx, srv.addrs[kind.listener()], o.stream); err != nil {
			return nil, err
		}
	}

	// Baseline: publisher only.
	base, err := measure(ctx, srv.pid(), o.baseline)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	res.CPUBase, res.RSSBase = num(base.cpuPct), num(base.rssMean)
	res.OtherBase = num(max(base.machine-base.cpuPct-base.selfCPU, 0))
	if other := float64(res.OtherBase); other > 20 {
		res.Notes = append(res.Notes, fmt.Sprintf("other processes used %.0f%% of a core during the 0-viewer baseline: the baseline is disturbed", other))
	}
	logf("baseline: cpu %.1f%% rss %.0f KiB", base.cpuPct, base.rssMean)
	if err := pubFailed(); err != nil {
		return nil, err
	}

	// Viewers, in parallel batches; a batch starts when the previous one
	// has its first frames (or its timeout passed).
	var rec atomic.Bool
	latCap := int((o.window+5*time.Second).Seconds()*30) + 16
	viewers := make([]*viewer, 0, spec.Viewers)
	cancels := make([]context.CancelFunc, 0, spec.Viewers)
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	var wg sync.WaitGroup
	addr := srv.addrs[kind.listener()]
	connectStart := time.Now()
	notStarted := 0
	timedOut := 0
	for started := 0; started < spec.Viewers; {
		if time.Since(connectStart) > o.connectCap || ctx.Err() != nil {
			notStarted = spec.Viewers - started
			res.Notes = append(res.Notes, fmt.Sprintf("%d viewers not started: connect phase over %v", notStarted, o.connectCap))
			break
		}
		n := min(o.batch, spec.Viewers-started)
		batch := make([]*viewer, n)
		for i := range batch {
			v := newViewer(&rec, latCap)
			c, cancel := context.WithCancel(vctx)
			batch[i] = v
			viewers = append(viewers, v)
			cancels = append(cancels, cancel)
			wg.Add(1)
			go func() {
				defer wg.Done()
				v.run(c, kind, addr, o.stream)
			}()
		}
		deadline := time.NewTimer(o.ttffTimeout)
	wait:
		for i, v := range batch {
			select {
			case <-v.ready:
			case <-deadline.C:
				// Everyone in the batch not ready now has timed out.
				for j, w := range batch[i:] {
					select {
					case <-w.ready:
					default:
						timedOut++
						cancels[started+i+j]()
					}
				}
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		deadline.Stop()
		started += n
	}
	connected := 0
	for _, v := range viewers {
		if v.gotFirst.Load() {
			connected++
		}
	}
	logf("connect: %d/%d viewers got a first frame in %v", connected, spec.Viewers, time.Since(connectStart).Round(time.Millisecond))
	if timedOut > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d viewers without a first frame within %v", timedOut, o.ttffTimeout))
	}

	// Settle, then the measurement window, recording latency.
	if err := sleepCtx(ctx, o.settle); err != nil {
		return nil, err
	}
	recvBytes := func() (sum uint64) {
		for _, v := range viewers {
			sum += v.bytes.Load()
		}
		return sum
	}
	recvReqs := func() (sum uint64) {
		for _, v := range viewers {
			sum += v.requests.Load()
		}
		return sum
	}
	pb0, vb0, rq0 := pub.bytes.Load(), recvBytes(), recvReqs()
	pub.maxLate.Store(0)
	pub.maxWrite.Store(0)
	winStart := time.Now()
	rec.Store(true)
	var cpuProf chan error
	if o.profileDir != "" {
		// A CPU profile of the window (its cost, a few percent, is in
		// the window's figures).
		cpuProf = make(chan error, 1)
		secs := max(int(o.window/time.Second)-1, 1)
		go func() {
			cpuProf <- saveURL(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.addrs["admin"], secs),
				filepath.Join(o.profileDir, fmt.Sprintf("%s-%d-%d.cpu", kind.listener(), spec.Viewers, rep)))
		}()
	}
	win, err := measure(ctx, srv.pid(), o.window)
	rec.Store(false)
	if cpuProf != nil {
		if perr := <-cpuProf; perr != nil {
			res.Notes = append(res.Notes, "cpu profile: "+perr.Error())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("window: %w", err)
	}
	if o.profileDir != "" {
		prefix := filepath.Join(o.profileDir, fmt.Sprintf("%s-%d-%d", kind.listener(), spec.Viewers, rep))
		if err := saveProfiles(ctx, srv.addrs["admin"], prefix); err != nil {
			res.Notes = append(res.Notes, "profiles: "+err.Error())
		} else {
			logf("profiles: %s.{cpu,heap,goroutine,metrics}", prefix)
		}
	}
	pb1, vb1, rq1 := pub.bytes.Load(), recvBytes(), recvReqs()
	res.ReqPerSec = num(float64(rq1-rq0) / win.duration.Seconds())
	res.PubMaxLate = num(ms(time.Duration(pub.maxLate.Load())))
	res.PubMaxWrite = num(ms(time.Duration(pub.maxWrite.Load())))
	if connected > 0 {
		res.RecvBps = num(float64(vb1-vb0) * 8 / win.duration.Seconds() / float64(connected))
	}
	res.CPUWindow, res.RSSWindow, res.BenchCPU = num(win.cpuPct), num(win.rssMean), num(win.selfCPU)
	res.OtherCPU = num(max(win.machine-win.cpuPct-win.selfCPU, 0))
	res.StealCPU = num(win.steal)
	if other := float64(res.OtherCPU); other > 20 {
		res.Notes = append(res.Notes, fmt.Sprintf("other processes used %.0f%% of a core during the window: figures are disturbed", other))
	}
	res.BitrateBps = num(float64(pb1-pb0) * 8 / win.duration.Seconds())
	if err := pubFailed(); err != nil {
		res.Notes = append(res.Notes, err.Error())
	}
	// Solo joins: viewers joining one at a time while the N others play,
	// for the time to first frame without the bench's own connect burst.
	var solo []time.Duration
	soloKey := 0
	for range o.probes {
		v := newViewer(new(atomic.Bool), 0)
		c, cancel := context.WithTimeout(ctx, o.ttffTimeout)
		go v.run(c, kind, addr, o.stream)
		<-v.ready
		cancel()
		<-v.done
		if v.frames > 0 {
			solo = append(solo, v.ttff)
			if v.keyFirst() {
				soloKey++
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	slices.Sort(solo)
	res.SoloJoins = len(solo)
	res.SoloTTFFp50 = num(percentile(solo, 50) / 1e6)
	res.SoloTTFFp95 = num(percentile(solo, 95) / 1e6)
	res.SoloKeyFirst = soloKey
	if len(solo) < o.probes {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d solo joins got no first frame", o.probes-len(solo), o.probes))
	}

	lostBeforeClose := 0
	for _, v := range viewers {
		if v.gotFirst.Load() && v.exited.Load() {
			lostBeforeClose++
		}
	}
	logf("window: cpu %.1f%% rss %.0f KiB bench cpu %.1f%%", win.cpuPct, win.rssMean, win.selfCPU)

	// Close the viewers and wait for their goroutines (closing a socket
	// ends a blocked read at once; the wait is bounded anyway).
	vcancel()
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		return nil, errors.New("viewers did not stop within 10s of closing")
	}
	pubCancel()
	<-pubDone
	_ = sleepCtx(ctx, o.drain)

	// Aggregate.
	var ttff []time.Duration
	var lat []int32
	key := 0
	errs := map[string]int{}
	for _, v := range viewers {
		if v.err != nil {
			errs[shortErr(v.err)]++
		}
		if v.frames == 0 {
			continue
		}
		ttff = append(ttff, v.ttff)
		if v.keyFirst() {
			key++
		}
		lat = append(lat, v.latency...)
		res.Stalls += v.stalls
		res.MaxGap = max(res.MaxGap, num(ms(v.maxGap)))
		res.NoSEI += v.noSEI
		res.PreKey += v.preKey
	}
	if len(errs) > 0 {
		res.ViewerErrors = errs
	}
	res.Lost = lostBeforeClose
	res.OK = len(ttff) - lostBeforeClose
	res.Failed = spec.Viewers - len(ttff)
	slices.Sort(ttff)
	slices.Sort(lat)
	res.TTFFp50 = num(percentile(ttff, 50) / 1e6)
	res.TTFFp95 = num(percentile(ttff, 95) / 1e6)
	res.TTFFMax = num(percentile(ttff, 100) / 1e6)
	res.TTFFSteps = ttffSteps(viewers)
	if s := stallMoments(viewers, winStart); s != "" {
		res.Notes = append(res.Notes, "stalls (end of gap, since window start: viewers): "+s)
	}
	res.KeyFirstPct = num(math.NaN())
	if len(ttff) > 0 {
		res.KeyFirstPct = num(float64(key) / float64(len(ttff)) * 100)
	}
	res.LatP50 = num(percentile(lat, 50) / 1e3)
	res.LatP95 = num(percentile(lat, 95) / 1e3)
	res.LatP99 = num(percentile(lat, 99) / 1e3)
	res.LatMax = num(percentile(lat, 100) / 1e3)
	res.LatSamples = len(lat)
	res.CPUPerViewer, res.RSSPerViewer = num(math.NaN()), num(math.NaN())
	if n := float64(connected - lostBeforeClose); n > 0 {
		res.CPUPerViewer = (res.CPUWindow - res.CPUBase) / num(n)
		res.RSSPerViewer = (res.RSSWindow - res.RSSBase) / num(n)
	}

	if !srv.alive() {
		res.Notes = append(res.Notes, "server exited during the run: "+fmt.Sprint(srv.exitErr()))
	}
	stopErr := srv.stop()
	if stopErr != nil {
		res.Notes = append(res.Notes, "server stop: "+stopErr.Error())
	}
	if b, err := os.ReadFile(srv.logPath); err == nil {
		ls := summarizeLog(b)
		res.ServerWarn, res.ServerError = ls.Warn, ls.Error
		res.ServerDropped = ls.Dropped
		if len(ls.LeftReasons) > 0 {
			res.ServerLeft = ls.LeftReasons
		}
		for _, s := range ls.Samples {
			res.Notes = append(res.Notes, "server: "+s)
		}
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

var addrRE = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

// shortErr groups viewer errors: the message without addresses.
func shortErr(err error) string {
	s := addrRE.ReplaceAllString(err.Error(), "ADDR")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// saveProfiles writes the server's heap and goroutine profiles and its
// metrics (the Go runtime's memory figures among them), from its admin
// listener, to prefix.heap, prefix.goroutine and prefix.metrics.
func saveProfiles(ctx context.Context, admin, prefix string) error {
	for _, p := range []struct{ path, ext string }{
		{"/debug/pprof/heap", "heap"}, {"/debug/pprof/goroutine", "goroutine"}, {"/metrics", "metrics"},
	} {
		if err := saveURL(ctx, "http://"+admin+p.path, prefix+"."+p.ext); err != nil {
			return err
		}
	}
	return nil
}

// saveURL writes the body of a GET of u to path.
func saveURL(ctx context.Context, u, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
