package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// percentile returns the p-th percentile (0..100) of sorted values by the
// nearest-rank method: the smallest value such that at least p% of the
// values are <= it. NaN for no values.
func percentile[T int32 | int64 | float64 | time.Duration](sorted []T, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return float64(sorted[rank-1])
}

// median of values, ignoring NaNs (NaN if none); the mean of the two
// middle values for an even count.
func median(values []float64) float64 {
	v := finite(values)
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// spread returns the minimum and maximum of values, ignoring NaNs.
func spread(values []float64) (lo, hi float64) {
	v := finite(values)
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(v), slices.Max(v)
}

func finite(values []float64) []float64 {
	out := make([]float64, 0, len(values))
	for _, x := range values {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

// parseBitrate reads "2M", "500k", "1.5M" or "800000" as bit/s.
func parseBitrate(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "M") || strings.HasSuffix(s, "m"):
		mult, s = 1e6, s[:len(s)-1]
	case strings.HasSuffix(s, "k") || strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bad bitrate %q", s)
	}
	return int64(v * mult), nil
}

// formatBitrate writes bit/s as "2M", "500k", "1.5M".
func formatBitrate(bps int64) string {
	switch {
	case bps >= 1e6 && bps%100_000 == 0:
		return strconv.FormatFloat(float64(bps)/1e6, 'f', -1, 64) + "M"
	case bps >= 1e3 && bps%1000 == 0:
		return strconv.FormatInt(bps/1000, 10) + "k"
	}
	return strconv.FormatInt(bps, 10)
}

// runSpec is one configuration to measure: N viewers of a stream of the
// given bitrate.
type runSpec struct {
	Viewers int
	Bitrate int64 // bit/s the publisher pads to; the clip alone if lower
}

func (r runSpec) String() string { return fmt.Sprintf("%d@%s", r.Viewers, formatBitrate(r.Bitrate)) }

// parseRuns reads "100@2M,300@2M,1000@500k".
func parseRuns(s string) ([]runSpec, error) {
	var out []runSpec
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, br, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("run %q: want VIEWERS@BITRATE, like 100@2M", part)
		}
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("run %q: bad viewer count", part)
		}
		b, err := parseBitrate(br)
		if err != nil {
			return nil, fmt.Errorf("run %q: %v", part, err)
		}
		out = append(out, runSpec{Viewers: v, Bitrate: b})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no runs in %q", s)
	}
	return out, nil
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// parseStatTicks returns utime+stime (clock ticks) from /proc/PID/stat.
func parseStatTicks(stat []byte) (uint64, error) {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc stat line")
	}
	f := strings.Fields(s[i+1:])
	// After "pid (comm)": state is field 3; utime and stime are 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("bad /proc stat line: %d fields", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc stat times %q %q", f[11], f[12])
	}
	return u + st, nil
}

// parseVmRSS returns VmRSS in KiB from /proc/PID/status.
func parseVmRSS(status []byte) (int64, error) {
	for _, line := range strings.Split(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no VmRSS in status")
}

func procCPUTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(b)
}

func procRSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// machineTicks are the first ("cpu") line of /proc/stat: busy and steal
// clock ticks summed over every CPU.
type machineTicks struct{ busy, steal uint64 }

// parseMachineTicks reads the aggregate cpu line of /proc/stat. Busy is
// everything but idle, iowait and steal (guest time is already counted in
// user and nice).
func parseMachineTicks(stat []byte) (machineTicks, error) {
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineTicks{}, fmt.Errorf("bad /proc/stat cpu line %q", line)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return machineTicks{}, fmt.Errorf("bad /proc/stat cpu line %q", line)
		}
		v[i] = n
	}
	// user nice system idle iowait irq softirq steal
	return machineTicks{busy: v[0] + v[1] + v[2] + v[5] + v[6], steal: v[7]}, nil
}

func readMachineTicks() (machineTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTicks{}, err
	}
	return parseMachineTicks(b)
}
