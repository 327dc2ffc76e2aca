package main

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	v := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{0, 1}, {1, 1}, {10, 1}, {11, 2}, {50, 5}, {51, 6}, {95, 10}, {99, 10}, {100, 10}} {
		if got := percentile(v, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile([]time.Duration{7 * time.Millisecond}, 95); got != float64(7*time.Millisecond) {
		t.Errorf("single value: %v", got)
	}
	if !math.IsNaN(percentile([]float64{}, 50)) {
		t.Error("empty: want NaN")
	}
	// 1000 values 1..1000: p99 is 990, p50 is 500.
	big := make([]int64, 1000)
	for i := range big {
		big[i] = int64(i + 1)
	}
	if percentile(big, 99) != 990 || percentile(big, 50) != 500 {
		t.Errorf("p99 %v p50 %v", percentile(big, 99), percentile(big, 50))
	}
}

func TestMedianSpread(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median %v", m)
	}
	if m := median([]float64{math.NaN(), 5}); m != 5 {
		t.Errorf("median with NaN %v", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("empty median")
	}
	lo, hi := spread([]float64{3, math.NaN(), -1, 8})
	if lo != -1 || hi != 8 {
		t.Errorf("spread %v %v", lo, hi)
	}
}

func TestParseRuns(t *testing.T) {
	r, err := parseRuns("100@2M, 300@2M,1000@500k,5@1.5M,2@64000")
	if err != nil {
		t.Fatal(err)
	}
	want := []runSpec{{100, 2e6}, {300, 2e6}, {1000, 500e3}, {5, 1.5e6}, {2, 64000}}
	if len(r) != len(want) {
		t.Fatalf("%v", r)
	}
	for i := range want {
		if r[i] != want[i] {
			t.Errorf("%d: %v, want %v", i, r[i], want[i])
		}
	}
	if s := r[3].String(); s != "5@1.5M" {
		t.Errorf("String %q", s)
	}
	if s := r[4].String(); s != "2@64k" {
		t.Errorf("String %q", s)
	}
	for _, bad := range []string{"", "100", "0@2M", "x@2M", "10@fast", "10@-1k"} {
		if _, err := parseRuns(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestProcParsers(t *testing.T) {
	stat := []byte("1234 (live edge) S 1 1234 1234 0 -1 4194560 3333 0 0 0 250 75 0 0 20 0 9 0 100 2000000 3000 18446744073709551615\n")
	if ticks, err := parseStatTicks(stat); err != nil || ticks != 325 {
		t.Errorf("ticks %d, %v", ticks, err)
	}
	status := []byte("Name:\tliveedge\nVmPeak:\t 1000 kB\nVmRSS:\t   20480 kB\nThreads:\t7\n")
	if rss, err := parseVmRSS(status); err != nil || rss != 20480 {
		t.Errorf("rss %d, %v", rss, err)
	}
	if _, err := parseVmRSS([]byte("Name: x\n")); err == nil {
		t.Error("no VmRSS: no error")
	}
}

func TestParseListening(t *testing.T) {
	log := []byte("time=x level=INFO msg=listening proto=rtmp addr=127.0.0.1:36289\n" +
		"time=x level=INFO msg=listening proto=http addr=127.0.0.1:8080\n")
	got := parseListening(log)
	if got["rtmp"] != "127.0.0.1:36289" || got["http"] != "127.0.0.1:8080" {
		t.Errorf("%v", got)
	}
}

func TestSummaryRows(t *testing.T) {
	rs := []*result{
		{Run: "1@1M", Viewers: 1, OK: 1, CPUPerViewer: 0.1, Stalls: 0, TTFFp95: num(math.NaN())},
		{Run: "1@1M", Viewers: 1, OK: 1, CPUPerViewer: 0.3, Stalls: 4, TTFFp95: 5},
		{Run: "1@1M", Viewers: 1, OK: 0, CPUPerViewer: 0.2, Stalls: 1, TTFFp95: 7},
	}
	s := summaryRows(rs)
	if len(s) != 3 || s[0].Stat != "median" || s[0].CPUPerViewer != 0.2 || s[0].Stalls != 1 || s[0].TTFFp95 != 6 || s[0].OK != 1 {
		t.Fatalf("median %+v", s[0])
	}
	if s[1].CPUPerViewer != 0.1 || s[2].CPUPerViewer != 0.3 || s[2].Stalls != 4 {
		t.Fatalf("min %+v max %+v", s[1], s[2])
	}
}

func TestParseMachineTicks(t *testing.T) {
	stat := []byte("cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\n")
	m, err := parseMachineTicks(stat)
	if err != nil || m.busy != 160 || m.steal != 7 {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := parseMachineTicks([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("no error")
	}
}
