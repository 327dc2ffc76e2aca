package main

import (
	"fmt"
	"time"
)

// DESIGN.md targets for HLS.
const (
	targetHLSTTFFp95 = 200 // ms, warm stream
	targetLLHLSE2E   = 1500 * time.Millisecond
	targetTSE2E      = 3 * hlsTSSegment
)

func (k hlsKind) e2eTarget() time.Duration {
	if k.ts {
		return targetTSE2E
	}
	return targetLLHLSE2E
}

func (k hlsKind) defaults() kindDefaults {
	// Shorter phases than RTMP's: `make bench` runs both HLS kinds at 100
	// and 500 clients in about a minute and a half.
	return kindDefaults{runs: "100@2M,500@2M", warmup: time.Second, baseline: 3 * time.Second,
		settle: 2 * time.Second, window: 8 * time.Second, drain: time.Second, solo: 5}
}

func (k hlsKind) targetsLine() string {
	return fmt.Sprintf("targets (DESIGN.md, %s): TTFF p95 ≤%dms (warm stream), key-first 100%%, e2e p95 <%v%s; * = misses its target",
		k.name(), targetHLSTTFFp95, k.e2eTarget(), map[bool]string{true: " (3 segments of " + hlsTSSegment.String() + ")", false: ""}[k.ts])
}

func (k hlsKind) tableColumns() []column {
	e2e := float64(k.e2eTarget().Milliseconds())
	return []column{
		{"bitrate", func(r *result) float64 { return float64(r.BitrateBps) }, fmtRate, nil},
		{"cpu/client", func(r *result) float64 { return float64(r.CPUPerViewer) }, fmtF(3, "%"), nil},
		{"req/s", func(r *result) float64 { return float64(r.ReqPerSec) }, fmtF(0, ""), nil},
		{"recv/client", func(r *result) float64 { return float64(r.RecvBps) }, fmtRate, nil},
		{"ttff p50", func(r *result) float64 { return float64(r.TTFFp50) }, fmtF(1, "ms"), nil},
		{"ttff p95", func(r *result) float64 { return float64(r.TTFFp95) }, fmtF(1, "ms"),
			func(v float64) bool { return v > targetHLSTTFFp95 }},
		{"key-first", func(r *result) float64 { return float64(r.KeyFirstPct) }, fmtF(1, "%"),
			func(v float64) bool { return v < 100 }},
		{"e2e p50", func(r *result) float64 { return float64(r.LatP50) }, fmtF(0, "ms"), nil},
		{"e2e p95", func(r *result) float64 { return float64(r.LatP95) }, fmtF(0, "ms"),
			func(v float64) bool { return v >= e2e }},
		{"stalls", func(r *result) float64 { return float64(r.Stalls) }, fmtF(0, ""),
			func(v float64) bool { return v > 0 }},
	}
}
