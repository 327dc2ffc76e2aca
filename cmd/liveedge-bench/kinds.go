package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Optional extensions of a viewerKind.

// kindConfigurer adds YAML to the server configuration of the kind's runs.
type kindConfigurer interface{ configExtra() string }

// kindWarmer prepares the stream before the 0-viewer baseline (starts an
// HLS muxer, so the baseline includes it and the viewers join a warm
// stream).
type kindWarmer interface {
	warm(ctx context.Context, addr, stream string) error
}

// kindTable gives a kind its own table columns and targets line.
type kindTable interface {
	tableColumns() []column
	targetsLine() string
}

// kindDefaulter gives a kind its own defaults for the flags the user did
// not set.
type kindDefaulter interface{ defaults() kindDefaults }

type kindDefaults struct {
	runs                            string
	window, baseline, settle, drain time.Duration
	warmup                          time.Duration
	solo                            int
	batch                           int // viewers connecting in parallel
}

// kindByName returns the viewer kind whose report name is proto.
func kindByName(proto string) viewerKind {
	for _, k := range viewerKinds {
		if k.name() == proto {
			return k
		}
	}
	return nil
}

// tableFor returns the columns and the targets line of proto's table.
func tableFor(proto string) ([]column, string) {
	if t, ok := kindByName(proto).(kindTable); ok {
		return t.tableColumns(), t.targetsLine()
	}
	return columns, ""
}

// parseKindRuns reads -runs: either one list for every kind
// ("100@2M,300@2M") or per-kind lists ("rtmp=100@2M,1000@500k;hls=100@2M");
// a kind not named gets its own default. Kind names are the -kinds names.
func parseKindRuns(s string) (all []runSpec, per map[string][]runSpec, err error) {
	if !strings.Contains(s, "=") {
		all, err = parseRuns(s)
		return all, nil, err
	}
	per = map[string][]runSpec{}
	for _, group := range strings.Split(s, ";") {
		group = strings.TrimSpace(group)
		if group == "" {
			continue
		}
		k, list, ok := strings.Cut(group, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok {
			return nil, nil, fmt.Errorf("-runs group %q: want KIND=RUNS", group)
		}
		if _, ok := viewerKinds[k]; !ok {
			return nil, nil, fmt.Errorf("-runs: unknown viewer kind %q", k)
		}
		specs, err := parseRuns(list)
		if err != nil {
			return nil, nil, err
		}
		per[k] = specs
	}
	return nil, per, nil
}

// kindPlan returns the options and runs of one kind: what the flags set,
// then the kind's defaults, then the general defaults.
func kindPlan(o *options, key string, kind viewerKind, all []runSpec, per map[string][]runSpec,
	defaultRuns string, set map[string]bool) (*options, []runSpec, error) {
	ko := *o
	var d kindDefaults
	if kd, ok := kind.(kindDefaulter); ok {
		d = kd.defaults()
	}
	for _, f := range []struct {
		flag string
		dst  *time.Duration
		val  time.Duration
	}{
		{"window", &ko.window, d.window}, {"baseline", &ko.baseline, d.baseline},
		{"settle", &ko.settle, d.settle}, {"drain", &ko.drain, d.drain}, {"warmup", &ko.warmup, d.warmup},
	} {
		if !set[f.flag] && f.val > 0 {
			*f.dst = f.val
		}
	}
	if !set["solo"] && d.solo > 0 {
		ko.probes = d.solo
	}
	if !set["batch"] && d.batch > 0 {
		ko.batch = d.batch
	}
	switch {
	case per[key] != nil:
		return &ko, per[key], nil
	case all != nil && set["runs"]:
		return &ko, all, nil
	case d.runs != "":
		specs, err := parseRuns(d.runs)
		return &ko, specs, err
	case all != nil:
		return &ko, all, nil
	}
	specs, err := parseRuns(defaultRuns)
	return &ko, specs, err
}
