package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/liveedge/liveedge/protocols/demo"
)

// The memory run (-memory): what a stream costs the server in memory,
// beyond its GOP cache, and what the GOP cache holds under a heavy
// source. Two parts, each on a fresh server:
//
//   - streams: -memory-streams streams published at 2 Mbit/s with no
//     viewer; RSS per stream against the stream's GOP cache (target:
//     per stream <= its GOP cache + 1 MiB);
//   - heavy: one stream at 20 Mbit/s with a 10-second GOP (the clip's
//     keyframes relabelled, 9 in 10); the GOP cache's bytes and the
//     server's RSS over time, against hub.gop_cache.max_bytes.
//
// Viewer memory per protocol is the rss/viewer column of the viewer runs.

type memoryOptions struct {
	run     bool
	streams int
	heavy   time.Duration
}

func memoryFlags(fs *flag.FlagSet) *memoryOptions {
	m := &memoryOptions{}
	fs.BoolVar(&m.run, "memory", false, "run the memory bench instead: RSS per stream, and the GOP cache under a 20 Mbit/s 10 s-GOP source")
	fs.IntVar(&m.streams, "memory-streams", 50, "memory bench: streams published at 2 Mbit/s")
	fs.DurationVar(&m.heavy, "memory-heavy", 30*time.Second, "memory bench: how long the 20 Mbit/s stream runs")
	return m
}

// memGOPCap is the server's default hub.gop_cache.max_bytes (16 MiB).
const memGOPCap = 16 << 20

func runMemory(ctx context.Context, m *memoryOptions, server string, stdout, stderr io.Writer) int {
	clip, err := demo.Default()
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "liveedge-memory-")
	if err != nil {
		fmt.Fprintln(stderr, "liveedge-bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	code := 0
	if err := memStreams(ctx, m, clip, server, dir, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "liveedge-bench: memory (streams):", err)
		code = 1
	}
	if err := memHeavy(ctx, m, clip, server, dir, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "liveedge-bench: memory (heavy):", err)
		code = 1
	}
	return code
}

// memServer starts a server with RTMP and the admin API in a new
// directory under dir.
func memServer(ctx context.Context, server, dir, name string) (*serverProc, error) {
	d, err := os.MkdirTemp(dir, name+"-")
	if err != nil {
		return nil, err
	}
	return startServer(ctx, server, d, []string{"rtmp", "admin"})
}

// gopBytes returns the GOP cache bytes of every stream, from the admin
// API.
func gopBytes(admin string) (map[string]int, error) {
	resp, err := http.Get("http://" + admin + "/api/v1/streams")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Streams []struct {
			Name string `json:"name"`
			GOP  struct {
				Bytes     int `json:"bytes"`
				UnitBytes int `json:"unit_bytes"`
			} `json:"gop"`
		} `json:"streams"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		// The list may be the bare array.
		if err2 := json.Unmarshal(raw, &body.Streams); err2 != nil {
			return nil, err
		}
	}
	out := map[string]int{}
	for _, s := range body.Streams {
		out[s.Name] = max(s.GOP.Bytes, s.GOP.UnitBytes)
	}
	return out, nil
}

func memStreams(ctx context.Context, m *memoryOptions, clip *demo.Clip, server, dir string, stdout, stderr io.Writer) error {
	srv, err := memServer(ctx, server, dir, "streams")
	if err != nil {
		return err
	}
	defer srv.stop()
	if !fbSleep(ctx, 2*time.Second) {
		return ctx.Err()
	}
	base, err := procRSSKiB(srv.pid())
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for i := range m.streams {
		p := newPublisher(clip, 2_000_000)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.run(pctx, fmt.Sprintf("rtmp://%s/live/mem%03d", srv.addrs["rtmp"], i))
		}()
	}
	// Two GOPs of the clip and a few seconds more: the caches are full
	// and the muxers settled.
	if !fbSleep(ctx, 8*time.Second) {
		return ctx.Err()
	}
	var rss int64
	var gop map[string]int
	for range 3 { // the median of three readings a second apart
		r, err := procRSSKiB(srv.pid())
		if err != nil {
			return err
		}
		rss = max(rss, r)
		if gop, err = gopBytes(srv.addrs["admin"]); err != nil {
			return err
		}
		fbSleep(ctx, time.Second)
	}
	if len(gop) != m.streams {
		return fmt.Errorf("%d streams live, want %d", len(gop), m.streams)
	}
	total := 0
	for _, b := range gop {
		total += b
	}
	perStream := float64(rss-base) / float64(m.streams) // KiB
	avgGOP := float64(total) / float64(m.streams) / 1024
	over := perStream - avgGOP
	verdict := "ok"
	if over > 1024 {
		verdict = "MISSED"
	}
	fmt.Fprintf(stdout, "\nmemory, streams: %d streams published at 2 Mbit/s (1 s GOP), no viewers\n", m.streams)
	fmt.Fprintf(stdout, "  rss %.1f MiB with 0 streams, %.1f MiB with %d: %.0f KiB per stream; its GOP cache %.0f KiB: %.0f KiB beyond it (target <= 1024 KiB)  %s\n",
		float64(base)/1024, float64(rss)/1024, m.streams, perStream, avgGOP, over, verdict)
	return nil
}

func memHeavy(ctx context.Context, m *memoryOptions, clip *demo.Clip, server, dir string, stdout, stderr io.Writer) error {
	srv, err := memServer(ctx, server, dir, "heavy")
	if err != nil {
		return err
	}
	defer srv.stop()
	if !fbSleep(ctx, 2*time.Second) {
		return ctx.Err()
	}
	base, err := procRSSKiB(srv.pid())
	if err != nil {
		return err
	}
	p := newPublisher(clip, 20_000_000)
	p.keyEvery = 10
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.run(pctx, "rtmp://"+srv.addrs["rtmp"]+"/live/heavy") }()
	defer func() {
		cancel()
		<-done
	}()
	var peakRSS int64
	peakGOP := 0
	start := time.Now()
	fmt.Fprintf(stdout, "\nmemory, heavy source: 1 stream at 20 Mbit/s, keyframe every 10 s, %v; gop_cache.max_bytes %d MiB (default)\n", m.heavy, memGOPCap>>20)
	fmt.Fprintf(stdout, "  %6s %12s %10s\n", "t", "gop cache", "rss")
	for time.Since(start) < m.heavy {
		if !fbSleep(ctx, 2*time.Second) {
			return ctx.Err()
		}
		rss, err := procRSSKiB(srv.pid())
		if err != nil {
			return err
		}
		gop, err := gopBytes(srv.addrs["admin"])
		if err != nil {
			return err
		}
		g := gop["live/heavy"]
		peakRSS, peakGOP = max(peakRSS, rss), max(peakGOP, g)
		fmt.Fprintf(stdout, "  %5.0fs %9.1f MiB %6.1f MiB\n", time.Since(start).Seconds(), float64(g)/(1<<20), float64(rss)/1024)
	}
	sent := float64(p.bytes.Load()) * 8 / time.Since(start).Seconds()
	verdict := "ok"
	if peakGOP > memGOPCap {
		verdict = "MISSED"
	}
	fmt.Fprintf(stdout, "  source %.1f Mbit/s; GOP cache peak %.1f MiB (cap %d MiB)  %s; rss peak %.1f MiB, %.1f MiB over the idle server\n",
		sent/1e6, float64(peakGOP)/(1<<20), memGOPCap>>20, verdict, float64(peakRSS)/1024, float64(peakRSS-base)/1024)
	return nil
}
