// Command liveedge-bench is the load generator behind `make bench`: it
// starts liveedge as its own process, publishes the demo clip to it over
// RTMP (padded to a target bitrate, every video frame stamped with the
// publisher's wall clock in an SEI), connects N viewers of each viewer
// kind and reports, per protocol: server CPU and RSS per viewer, time to
// first frame, whether the first frame is a keyframe, latency and stalls.
//
//	liveedge-bench -server ./bin/liveedge [-kinds rtmp,flv,whep,hls,hls-ts]
//	               [-runs 100@2M,300@2M,1000@500k | -runs 'rtmp=100@2M;hls=100@2M,500@2M']
//	               [-window 10s] [-repeat 1] [-json FILE] [-keep-logs]
//
// Per run, on a fresh server: publish, wait -warmup, measure the server
// with 0 viewers over -baseline, connect the viewers in parallel batches of
// -batch, wait until each has its first frame (-ttff-timeout), wait
// -settle, measure over -window while recording latency, close the viewers
// and stop the server. Everything runs on 127.0.0.1 and every wait has a
// bound.
//
// With -memory it runs the memory bench instead (memory.go): RSS per
// stream against its GOP cache, and the GOP cache under a 20 Mbit/s,
// 10-second-GOP source.
//
// With -soak DURATION it runs the soak instead (soak.go): 20 streams
// from two flapping origins, 500 viewers of mixed protocols joining and
// leaving; RSS, goroutines and open files over time.
//
// With -cluster N it runs the cluster bench instead (cluster.go): three
// nodes on one Redis and one origin, the node pulling from the origin
// killed N times.
//
// With -failover N it runs the failover bench instead (failover.go): two
// nginx-rtmp origins, the primary killed N times and frozen
// -failover-stalls times, the media gap one viewer sees each time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/liveedge/liveedge/protocols/demo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("liveedge-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fo := failoverFlags(fs)
	co := clusterFlags(fs)
	so := soakFlags(fs)
	mo := memoryFlags(fs)
	fs.StringVar(&o.server, "server", "./bin/liveedge", "liveedge binary to start")
	runsFlag := fs.String("runs", "100@2M,300@2M,1000@500k", "configurations: VIEWERS@BITRATE, comma-separated, for every kind; or per kind, KIND=RUNS;KIND=RUNS (unnamed kinds keep their defaults; hls and hls-ts default to 100@2M,500@2M, whep to 10@2M,50@2M, with shorter phases)")
	kindsFlag := fs.String("kinds", "rtmp", "viewer kinds, comma-separated (available: "+strings.Join(kindNames(), ", ")+")")
	fs.DurationVar(&o.window, "window", 10*time.Second, "measurement window with all viewers connected")
	repeat := fs.Int("repeat", 1, "repeat each configuration this many times (median and min–max are printed)")
	jsonPath := fs.String("json", "", "also write the rows as JSON lines to this file")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep each run's server config and log")
	fs.StringVar(&o.profileDir, "profile", "", "save the server's CPU profile of each window and its heap and goroutine profiles after it in this directory (go tool pprof)")
	fs.StringVar(&o.stream, "stream", "live/bench", "stream name (app/name)")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "publish this long before measuring")
	fs.DurationVar(&o.baseline, "baseline", 5*time.Second, "baseline window with 0 viewers")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "wait after the last first frame before the window")
	fs.DurationVar(&o.drain, "drain", 2*time.Second, "wait after closing the viewers before stopping the server")
	fs.IntVar(&o.batch, "batch", 50, "viewers connecting in parallel")
	fs.DurationVar(&o.ttffTimeout, "ttff-timeout", 15*time.Second, "a viewer without a first frame this long after its batch started has failed")
	fs.DurationVar(&o.connectCap, "connect-cap", 90*time.Second, "start no new batch after this long")
	fs.IntVar(&o.probes, "solo", 10, "after the window, this many viewers join one at a time (TTFF without the batch burst)")
	fs.BoolVar(&o.verbose, "v", false, "log each phase to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fo.kills > 0 {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runFailover(ctx, fo, o.server, o.keepLogs, stdout, stderr)
	}
	if mo.run {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runMemory(ctx, mo, o.server, stdout, stderr)
	}
	if so.duration > 0 {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runSoak(ctx, so, o.server, o.keepLogs, stdout, stderr)
	}
	if co.kills > 0 {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runCluster(ctx, co, o.server, o.keepLogs, stdout, stderr)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	allSpecs, perKind, err := parseKindRuns(*runsFlag)
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench:", err)
		return 2
	}
	var kinds []viewerKind
	kindOpts := map[viewerKind]*options{}
	kindSpecs := map[viewerKind][]runSpec{}
	var specs []runSpec // every kind's, for the open-file check
	for _, k := range strings.Split(*kindsFlag, ",") {
		key := strings.TrimSpace(strings.ToLower(k))
		kind, ok := viewerKinds[key]
		if !ok {
			fmt.Fprintf(stderr, "liveedge-bench: unknown viewer kind %q (available: %s)\n", k, strings.Join(kindNames(), ", "))
			return 2
		}
		ko, ks, err := kindPlan(o, key, kind, allSpecs, perKind, fs.Lookup("runs").DefValue, set)
		if err != nil {
			fmt.Fprintln(stderr, "liveedge-bench:", err)
			return 2
		}
		kinds = append(kinds, kind)
		kindOpts[kind], kindSpecs[kind] = ko, ks
		specs = append(specs, ks...)
	}
	if *repeat < 1 || o.batch < 1 || o.window <= 0 || o.baseline <= 0 {
		fmt.Fprintln(stderr, "liveedge-bench: -repeat, -batch, -window and -baseline must be positive")
		return 2
	}
	if _, err := os.Stat(o.server); err != nil {
		fmt.Fprintf(stderr, "liveedge-bench: -server: %v (build it with: go build -o bin/liveedge ./cmd/liveedge)\n", err)
		return 2
	}
	maxViewers := 0
	for _, s := range specs {
		maxViewers = max(maxViewers, s.Viewers)
	}
	if lim, err := raiseNoFile(); err != nil || lim < uint64(maxViewers)+256 {
		fmt.Fprintf(stderr, "liveedge-bench: warning: open-file limit %d (%v) may not fit %d viewers\n", lim, err, maxViewers)
	}
	clip, err := demo.Default()
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench:", err)
		return 1
	}
	if o.logDir, err = os.MkdirTemp("", "liveedge-bench-"); err != nil {
		fmt.Fprintln(stderr, "liveedge-bench:", err)
		return 1
	}
	if !o.keepLogs {
		defer os.RemoveAll(o.logDir)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	total := len(specs) * *repeat
	fmt.Fprintf(stderr, "liveedge-bench: %d runs; clip %dx%d %.0f fps, %.1fs loop; window %v; %d CPUs\n",
		total, clip.Video.Width, clip.Video.Height, clip.Video.FPS, clip.Duration.Seconds(), o.window, runtime.NumCPU())
	byProto := map[string][]*result{}
	var all []*result
	failed := 0
	i := 0
	for _, kind := range kinds {
		for _, spec := range kindSpecs[kind] {
			for rep := 1; rep <= *repeat; rep++ {
				i++
				t0 := time.Now()
				fmt.Fprintf(stderr, "[%d/%d] %s %s #%d ... ", i, total, kind.name(), spec, rep)
				r, err := runOne(ctx, kindOpts[kind], clip, kind, spec, rep)
				if err != nil {
					fmt.Fprintf(stderr, "failed: %v\n", err)
					failed++
					if errors.Is(err, context.Canceled) {
						return 1
					}
					continue
				}
				fmt.Fprintf(stderr, "%d/%d ok, cpu/viewer %.3f%%, ttff p95 %.1fms, lat p99 %.2fms (%v)\n",
					r.OK, r.Viewers, float64(r.CPUPerViewer), float64(r.TTFFp95), float64(r.LatP99), time.Since(t0).Round(time.Second))
				byProto[kind.name()] = append(byProto[kind.name()], r)
				all = append(all, r)
			}
		}
	}

	fmt.Fprintf(stdout, "liveedge-bench: loopback, %d CPUs (server and bench share them), window %v, repeat %d\n",
		runtime.NumCPU(), o.window, *repeat)
	fmt.Fprintln(stdout, targets)
	fmt.Fprintln(stdout, "cpu/viewer: server CPU (% of one core) over the window minus 0-viewer baseline, / viewers; rss/viewer likewise;")
	fmt.Fprintln(stdout, "ttff: dial start to first video frame; latency: publisher clock (SEI) to viewer, frames ≥3s after joining; stall: >500ms between frames")
	var jsonRows []*result
	for _, kind := range kinds {
		rs := byProto[kind.name()]
		if len(rs) == 0 {
			continue
		}
		printTable(stdout, kind.name(), rs, *repeat)
		printDetails(stdout, rs)
		for _, g := range groupRuns(rs) {
			jsonRows = append(jsonRows, g...)
			jsonRows = append(jsonRows, summaryRows(g)...)
		}
	}
	if o.keepLogs {
		fmt.Fprintf(stdout, "logs: %s\n", o.logDir)
	}
	if *jsonPath != "" {
		f, err := os.Create(*jsonPath)
		if err == nil {
			err = writeJSON(f, jsonRows)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "liveedge-bench: -json:", err)
			return 1
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func kindNames() []string {
	var names []string
	for k := range viewerKinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// raiseNoFile sets the soft open-file limit to the hard one; the server,
// started afterwards, inherits it.
func raiseNoFile() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}
