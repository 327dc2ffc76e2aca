package main

import (
	"strings"
	"testing"
	"time"
)

func TestWHEPPlan(t *testing.T) {
	o := &options{window: 10 * time.Second, probes: 10, batch: 50}
	tests := []struct {
		name      string
		set       map[string]bool
		runs      []runSpec
		wantBatch int
		wantRuns  []int
	}{
		{"defaults", nil, nil, 10, []int{10, 50}},
		{"-batch set", map[string]bool{"batch": true}, nil, 50, []int{10, 50}},
		{"-runs set for every kind", map[string]bool{"runs": true}, []runSpec{{Viewers: 5, Bitrate: 2e6}}, 10, []int{5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ko, specs, err := kindPlan(o, "whep", viewerKinds["whep"], tc.runs, nil, "100@2M", tc.set)
			if err != nil {
				t.Fatal(err)
			}
			if ko.batch != tc.wantBatch {
				t.Errorf("batch %d, want %d", ko.batch, tc.wantBatch)
			}
			var got []int
			for _, s := range specs {
				got = append(got, s.Viewers)
			}
			if len(got) != len(tc.wantRuns) || got[0] != tc.wantRuns[0] {
				t.Errorf("runs %v, want %v", got, tc.wantRuns)
			}
		})
	}
}

func TestWHEPConfigExtra(t *testing.T) {
	c := whepKind{}.configExtra()
	for _, want := range []string{"udp_host: 127.0.0.1", "allow: [127.0.0.0/8]", "udp_port: "} {
		if !strings.Contains(c, want) {
			t.Errorf("configExtra %q lacks %q", c, want)
		}
	}
	if strings.Contains(c, "udp_port: 0,") {
		t.Errorf("configExtra %q: port 0", c)
	}
}
