package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// num is a measured figure; NaN (nothing measured) is null in JSON.
type num float64

func (n num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(f*1e4)/1e4, 'f', -1, 64), nil
}

// targets is the DESIGN.md Targets line for RTMP/FLV fan-out.
const targets = "targets (DESIGN.md, RTMP/FLV): cpu/viewer ≤0.07%, TTFF p95 ≤50ms, latency p99 ≤10ms, key-first 100%, ≤64KiB/viewer, 0 stalls (1000 viewers @500k); * = misses its target"

// column is one figure of the table.
type column struct {
	head   string
	get    func(*result) float64
	format func(float64) string
	// miss reports whether a value misses its DESIGN target (nil: none).
	miss func(float64) bool
}

// cell formats v, marked with "*" when it misses the column's target.
func (c column) cell(v float64) string {
	s := c.format(v)
	if c.miss != nil && !math.IsNaN(v) && c.miss(v) {
		s += "*"
	}
	return s
}

func fmtF(prec int, unit string) func(float64) string {
	return func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', prec, 64) + unit
	}
}

func fmtRate(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	}
	return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
}

// DESIGN.md targets for RTMP/FLV viewers.
const (
	targetCPUPerViewer = 0.07 // % of a core
	targetRSSPerViewer = 64   // KiB
	targetTTFFp95      = 50   // ms
	targetLatencyP99   = 10   // ms
)

var columns = []column{
	{"bitrate", func(r *result) float64 { return float64(r.BitrateBps) }, fmtRate, nil},
	{"cpu/viewer", func(r *result) float64 { return float64(r.CPUPerViewer) }, fmtF(3, "%"),
		func(v float64) bool { return v > targetCPUPerViewer }},
	{"rss/viewer", func(r *result) float64 { return float64(r.RSSPerViewer) }, fmtF(1, "KiB"),
		func(v float64) bool { return v > targetRSSPerViewer }},
	{"ttff p50", func(r *result) float64 { return float64(r.TTFFp50) }, fmtF(1, "ms"), nil},
	{"ttff p95", func(r *result) float64 { return float64(r.TTFFp95) }, fmtF(1, "ms"),
		func(v float64) bool { return v > targetTTFFp95 }},
	{"key-first", func(r *result) float64 { return float64(r.KeyFirstPct) }, fmtF(1, "%"),
		func(v float64) bool { return v < 100 }},
	{"lat p50", func(r *result) float64 { return float64(r.LatP50) }, fmtF(2, "ms"), nil},
	{"lat p99", func(r *result) float64 { return float64(r.LatP99) }, fmtF(2, "ms"),
		func(v float64) bool { return v > targetLatencyP99 }},
	{"stalls", func(r *result) float64 { return float64(r.Stalls) }, fmtF(0, ""),
		func(v float64) bool { return v > 0 }},
}

// printTable writes one protocol's table: a row per run, and with repeats
// a median row and a min–max row per configuration.
func printTable(w io.Writer, proto string, results []*result, repeat int) {
	columns, targetsLine := tableFor(proto)
	head := []string{"run", "viewers"}
	for _, c := range columns {
		head = append(head, c.head)
	}
	rows := [][]string{head}
	for _, group := range groupRuns(results) {
		for _, r := range group {
			name := r.Run
			if repeat > 1 {
				name += " #" + strconv.Itoa(r.Repeat)
			}
			row := []string{name, fmt.Sprintf("%d/%d", r.OK, r.Viewers)}
			for _, c := range columns {
				row = append(row, c.cell(c.get(r)))
			}
			rows = append(rows, row)
		}
		if len(group) < 2 {
			continue
		}
		okv := make([]float64, len(group))
		for i, r := range group {
			okv[i] = float64(r.OK)
		}
		med := []string{group[0].Run + " median", fmt.Sprintf("%s/%d", fmtF(0, "")(median(okv)), group[0].Viewers)}
		lo, hi := spread(okv)
		rng := []string{group[0].Run + " min–max", fmt.Sprintf("%s–%s", fmtF(0, "")(lo), fmtF(0, "")(hi))}
		for _, c := range columns {
			vals := make([]float64, len(group))
			for i, r := range group {
				vals[i] = c.get(r)
			}
			med = append(med, c.cell(median(vals)))
			lo, hi := spread(vals)
			rng = append(rng, c.format(lo)+"–"+c.format(hi))
		}
		rows = append(rows, med, rng)
	}
	fmt.Fprintf(w, "\n%s\n", proto)
	if targetsLine != "" {
		fmt.Fprintln(w, targetsLine)
	}
	writeAligned(w, rows)
}

// writeAligned pads columns to their widest cell (in runes): the first
// column left-aligned, the others right-aligned.
func writeAligned(w io.Writer, rows [][]string) {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i == 0 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString("  " + pad + cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// groupRuns groups results by configuration, in first-seen order.
func groupRuns(results []*result) [][]*result {
	var order []string
	by := map[string][]*result{}
	for _, r := range results {
		if _, ok := by[r.Run]; !ok {
			order = append(order, r.Run)
		}
		by[r.Run] = append(by[r.Run], r)
	}
	out := make([][]*result, len(order))
	for i, k := range order {
		out[i] = by[k]
	}
	return out
}

// printDetails writes the context of each run: server and bench CPU,
// receive rate, the worst figures, errors and the server's own account.
func printDetails(w io.Writer, results []*result) {
	for _, r := range results {
		f0, f1, f2 := fmtF(0, ""), fmtF(1, ""), fmtF(2, "")
		fmt.Fprintf(w, "  %s #%d: server cpu %s%% (0 viewers: %s%%), rss %s MiB (0 viewers: %s MiB), bench cpu %s%%, other processes %s%% (baseline %s%%), steal %s%%, filler %dB/AU, recv/viewer %s, ttff max %sms, lat max %sms (%d samples), max gap %sms, failed %d, lost %d\n",
			r.Run, r.Repeat, f1(float64(r.CPUWindow)), f1(float64(r.CPUBase)), f1(float64(r.RSSWindow)/1024), f1(float64(r.RSSBase)/1024),
			f0(float64(r.BenchCPU)), f0(float64(r.OtherCPU)), f0(float64(r.OtherBase)), f0(float64(r.StealCPU)), r.FillerBytes, fmtRate(float64(r.RecvBps)), f1(float64(r.TTFFMax)), f2(float64(r.LatMax)), r.LatSamples,
			f0(float64(r.MaxGap)), r.Failed, r.Lost)
		fmt.Fprintf(w, "      publisher (window): max lateness %sms, longest write %sms; server skipped %d units for lagging players\n",
			f1(float64(r.PubMaxLate)), f1(float64(r.PubMaxWrite)), r.ServerDropped)
		if r.SoloJoins > 0 {
			fmt.Fprintf(w, "      solo joins (one at a time, %d playing): ttff p50 %sms p95 %sms, key-first %d/%d\n",
				r.OK, f1(float64(r.SoloTTFFp50)), f1(float64(r.SoloTTFFp95)), r.SoloKeyFirst, r.SoloJoins)
		}
		if len(r.TTFFSteps) > 0 {
			parts := make([]string, len(r.TTFFSteps))
			for i, st := range r.TTFFSteps {
				parts[i] = fmt.Sprintf("%s %s/%s", st.Name, f1(float64(st.P50)), f1(float64(st.P95)))
			}
			fmt.Fprintf(w, "      ttff steps p50/p95 ms: %s\n", strings.Join(parts, ", "))
		}
		if len(r.ServerLeft) > 0 {
			fmt.Fprintf(w, "      server \"player left\" reasons: %s\n", countString(r.ServerLeft))
		}
		if len(r.ViewerErrors) > 0 {
			fmt.Fprintf(w, "      viewer errors: %s\n", countString(r.ViewerErrors))
		}
		if r.PreKey > 0 {
			fmt.Fprintf(w, "      %d frames arrived before the viewer's first keyframe (not decodable; not counted as its first frame)\n", r.PreKey)
		}
		if r.NoSEI > 0 {
			fmt.Fprintf(w, "      %d frames without the bench SEI\n", r.NoSEI)
		}
		if r.ServerWarn+r.ServerError > 0 {
			fmt.Fprintf(w, "      server log: %d warnings, %d errors\n", r.ServerWarn, r.ServerError)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "      %s\n", n)
		}
		if r.LogPath != "" {
			fmt.Fprintf(w, "      log: %s\n", r.LogPath)
		}
	}
}

func countString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// summaryRows returns, for a group of repeats of one configuration, rows
// holding the median, the minimum and the maximum of every figure.
func summaryRows(group []*result) []*result {
	if len(group) < 2 {
		return nil
	}
	out := make([]*result, 3)
	for i, stat := range []string{"median", "min", "max"} {
		r := &result{Proto: group[0].Proto, Run: group[0].Run, Stat: stat,
			Viewers: group[0].Viewers, TargetBps: group[0].TargetBps}
		rv := reflect.ValueOf(r).Elem()
		for f := 0; f < rv.NumField(); f++ {
			field := rv.Field(f)
			name := rv.Type().Field(f).Name
			if name == "Repeat" || name == "Viewers" || name == "TargetBps" {
				continue
			}
			var vals []float64
			switch field.Kind() {
			case reflect.Float64, reflect.Int, reflect.Int64:
			default:
				continue
			}
			for _, g := range group {
				gv := reflect.ValueOf(g).Elem().Field(f)
				if gv.Kind() == reflect.Float64 {
					vals = append(vals, gv.Float())
				} else {
					vals = append(vals, float64(gv.Int()))
				}
			}
			var v float64
			switch stat {
			case "median":
				v = median(vals)
			case "min":
				v, _ = spread(vals)
			case "max":
				_, v = spread(vals)
			}
			if field.Kind() == reflect.Float64 {
				field.SetFloat(v)
			} else if !math.IsNaN(v) {
				field.SetInt(int64(math.Round(v)))
			}
		}
		out[i] = r
	}
	return out
}

// writeJSON writes one JSON object per line.
func writeJSON(w io.Writer, results []*result) error {
	enc := json.NewEncoder(w)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}
