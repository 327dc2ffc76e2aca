package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHLSDefaults(t *testing.T) {
	c := Default()
	want := HLSConfig{Variant: "lowlatency", PartDuration: Duration(200 * time.Millisecond),
		SegmentCount: 7, IdleClose: Duration(30 * time.Second), AllowOrigin: "*"}
	if !reflect.DeepEqual(c.HLS, want) {
		t.Errorf("hls defaults = %#v, want %#v", c.HLS, want)
	}
	if got := c.HLS.For("live"); got != (HLSMuxer{Variant: "lowlatency", SegmentDuration: Duration(time.Second),
		PartDuration: Duration(200 * time.Millisecond), SegmentCount: 7}) {
		t.Errorf("For(live) = %+v", got)
	}
}

func TestHLSParseAndFor(t *testing.T) {
	c := mustParse(t, `
hls:
  segment_duration: 1500ms
  idle_close: 5s
  allow_origin: "https://player.example"
  apps:
    old: {variant: mpegts, segment_duration: 0s}
    tv: {variant: mpegts, segment_count: 5}
    ll: {part_duration: 300ms}
`)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.HLS.Variant != "lowlatency" || c.HLS.SegmentCount != 7 || c.HLS.IdleClose != Duration(5*time.Second) ||
		c.HLS.AllowOrigin != "https://player.example" {
		t.Errorf("hls = %+v", c.HLS)
	}
	tests := []struct {
		app  string
		want HLSMuxer
	}{
		{"live", HLSMuxer{"lowlatency", Duration(1500 * time.Millisecond), Duration(200 * time.Millisecond), 7}},
		{"old", HLSMuxer{"mpegts", Duration(1500 * time.Millisecond), Duration(200 * time.Millisecond), 7}},
		{"tv", HLSMuxer{"mpegts", Duration(1500 * time.Millisecond), Duration(200 * time.Millisecond), 5}},
		{"ll", HLSMuxer{"lowlatency", Duration(1500 * time.Millisecond), Duration(300 * time.Millisecond), 7}},
	}
	for _, tc := range tests {
		if got := c.HLS.For(tc.app); got != tc.want {
			t.Errorf("For(%s) = %+v, want %+v", tc.app, got, tc.want)
		}
	}

	// Without a top-level segment_duration, mpegts gets 2s.
	c = mustParse(t, "hls: {apps: {tv: {variant: mpegts}}}\n")
	if got := c.HLS.For("tv").SegmentDuration; got != Duration(2*time.Second) {
		t.Errorf("mpegts default segment = %s, want 2s", got)
	}
	if got := c.HLS.For("live").SegmentDuration; got != Duration(time.Second) {
		t.Errorf("lowlatency default segment = %s, want 1s", got)
	}

	if _, err := Parse([]byte("hls: {variantt: mpegts}\n")); err == nil || !strings.Contains(err.Error(), "variantt") {
		t.Errorf("unknown hls key: err = %v", err)
	}

	// Clone does not share the apps map.
	n := c.Clone()
	n.HLS.Apps["tv"] = HLSApp{Variant: "fmp4"}
	if c.HLS.Apps["tv"].Variant != "mpegts" {
		t.Error("Clone shares hls.apps")
	}
}

func TestHLSValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(h *HLSConfig)
		want []string
		not  []string
	}{
		{"variant", func(h *HLSConfig) { h.Variant = "dash" }, []string{`hls.variant: "dash" is not one of lowlatency, mpegts, fmp4`}, nil},
		{"segment negative", func(h *HLSConfig) { h.SegmentDuration = -1 }, []string{"hls.segment_duration: must be >= 0"}, nil},
		{"part zero", func(h *HLSConfig) { h.PartDuration = 0 }, []string{"hls.part_duration: must be > 0"}, nil},
		{"part longer than segment", func(h *HLSConfig) { h.PartDuration = Duration(2 * time.Second) },
			[]string{"hls.part_duration: 2s is longer than the segment duration 1s"}, nil},
		{"segment count ll", func(h *HLSConfig) { h.SegmentCount = 5 }, []string{"hls.segment_count: must be >= 7 for variant lowlatency (got 5)"}, nil},
		{"segment count ts ok", func(h *HLSConfig) { h.SegmentCount, h.Variant = 3, "mpegts" }, nil, []string{"segment_count"}},
		{"idle close", func(h *HLSConfig) { h.IdleClose = 0 }, []string{"hls.idle_close: must be > 0"}, nil},
		{"allow origin", func(h *HLSConfig) { h.AllowOrigin = "*\r\nX-Evil: 1" }, []string{"hls.allow_origin: "}, nil},
		{"app variant", func(h *HLSConfig) { h.Apps = map[string]HLSApp{"tv": {Variant: "hds"}} },
			[]string{`hls.apps.tv.variant: "hds" is not one of`}, nil},
		{"app name", func(h *HLSConfig) { h.Apps = map[string]HLSApp{"a/b": {Variant: "mpegts"}} },
			[]string{`hls.apps["a/b"]: invalid app name`}, nil},
		{"app count for its variant", func(h *HLSConfig) {
			h.Variant, h.SegmentCount = "mpegts", 3
			h.Apps = map[string]HLSApp{"ll": {Variant: "lowlatency"}}
		}, []string{"hls.apps.ll.segment_count: must be >= 7 for variant lowlatency (got 3)"}, []string{"hls.segment_count"}},
		{"inherited problem reported once", func(h *HLSConfig) {
			h.PartDuration = 0
			h.Apps = map[string]HLSApp{"tv": {SegmentCount: 8}}
		}, []string{"hls.part_duration: must be > 0"}, []string{"hls.apps.tv.part_duration"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c.HLS)
			err := c.Validate()
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if len(tc.want) == 0 && err != nil && tc.not == nil {
				t.Fatalf("Validate = %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Validate = %q, want it to contain %q", msg, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(msg, n) {
					t.Errorf("Validate = %q, want no %q", msg, n)
				}
			}
		})
	}
}

func TestHLSDirAndAlwaysOn(t *testing.T) {
	c, err := Parse([]byte("hls:\n  dir: /dev/shm/liveedge\n  always_on: [live/a, live/b]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HLS.Dir != "/dev/shm/liveedge" || len(c.HLS.AlwaysOn) != 2 || c.HLS.AlwaysOn[1] != "live/b" {
		t.Fatalf("hls %+v", c.HLS)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.HLS.AlwaysOn = []string{"live/a", "nope"}
	c.HLS.Dir = "  "
	err = c.Validate()
	for _, want := range []string{`hls.always_on[1]: "nope" is not an app/stream name`, "hls.dir: is blank"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
}
