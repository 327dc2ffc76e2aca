package config

import (
	"fmt"
	"strings"
	"unicode"
)

// HLS variants (hls.variant, hls.apps.<app>.variant).
const (
	HLSLowLatency = "lowlatency" // LL-HLS: fMP4 segments and parts
	HLSMPEGTS     = "mpegts"     // classic HLS, MPEG-TS segments
	HLSFMP4       = "fmp4"       // classic HLS, fMP4 segments
)

// HLSConfig configures HLS and LL-HLS output on the HTTP listener.
type HLSConfig struct {
	// Variant is lowlatency, mpegts or fmp4.
	Variant string `yaml:"variant" json:"variant"`
	// SegmentDuration is the minimum segment duration (segments are cut on
	// keyframes); 0 means the variant's default: 1s, or 2s for mpegts.
	SegmentDuration Duration `yaml:"segment_duration" json:"segment_duration"`
	// PartDuration is the minimum LL-HLS part duration.
	PartDuration Duration `yaml:"part_duration" json:"part_duration"`
	// SegmentCount is how many segments a playlist lists (at least 7 for
	// lowlatency, 3 otherwise).
	SegmentCount int `yaml:"segment_count" json:"segment_count"`
	// IdleClose: a stream's muxer with no HLS request for this long is
	// closed.
	IdleClose Duration `yaml:"idle_close" json:"idle_close"`
	// AllowOrigin is the Access-Control-Allow-Origin header ("" sends no
	// CORS headers).
	AllowOrigin string `yaml:"allow_origin" json:"allow_origin"`
	// Dir, if set, keeps segments and parts in files under this directory
	// (a tmpfs mount, say) instead of memory.
	Dir string `yaml:"dir" json:"dir"`
	// AlwaysOn names streams ("app/stream") whose muxer runs from start-up
	// and is never closed for idleness.
	AlwaysOn []string `yaml:"always_on,omitempty" json:"always_on,omitempty"`
	// Apps holds per-app overrides of the muxer settings.
	Apps map[string]HLSApp `yaml:"apps,omitempty" json:"apps,omitempty"`
}

// HLSApp overrides the muxer settings of one app; zero values inherit the
// top-level hls value (a segment_duration of 0 still means the variant's
// default when the top level has none).
type HLSApp struct {
	Variant         string   `yaml:"variant,omitempty" json:"variant,omitempty"`
	SegmentDuration Duration `yaml:"segment_duration,omitempty" json:"segment_duration,omitempty"`
	PartDuration    Duration `yaml:"part_duration,omitempty" json:"part_duration,omitempty"`
	SegmentCount    int      `yaml:"segment_count,omitempty" json:"segment_count,omitempty"`
}

// HLSMuxer is the resolved muxer settings of one app.
type HLSMuxer struct {
	Variant         string
	SegmentDuration Duration // never 0
	PartDuration    Duration
	SegmentCount    int
}

func defaultHLS() HLSConfig {
	return HLSConfig{
		Variant:      HLSLowLatency,
		PartDuration: Duration(200e6), // 200ms
		SegmentCount: 7,
		IdleClose:    Duration(30e9),
		AllowOrigin:  "*",
	}
}

// For returns the muxer settings of app: the top-level values with the
// app's overrides applied, and the variant's default segment duration.
func (h HLSConfig) For(app string) HLSMuxer {
	m := HLSMuxer{Variant: h.Variant, SegmentDuration: h.SegmentDuration,
		PartDuration: h.PartDuration, SegmentCount: h.SegmentCount}
	if o, ok := h.Apps[app]; ok {
		if o.Variant != "" {
			m.Variant = o.Variant
		}
		if o.SegmentDuration != 0 {
			m.SegmentDuration = o.SegmentDuration
		}
		if o.PartDuration != 0 {
			m.PartDuration = o.PartDuration
		}
		if o.SegmentCount != 0 {
			m.SegmentCount = o.SegmentCount
		}
	}
	if m.SegmentDuration == 0 {
		m.SegmentDuration = Duration(1e9)
		if m.Variant == HLSMPEGTS {
			m.SegmentDuration = Duration(2e9)
		}
	}
	return m
}

// AppNames returns the apps with HLS overrides, sorted.
func (h HLSConfig) AppNames() []string { return sortedKeys(h.Apps) }

func (h HLSConfig) clone() HLSConfig {
	h.AlwaysOn = append([]string(nil), h.AlwaysOn...)
	if h.Apps != nil {
		apps := make(map[string]HLSApp, len(h.Apps))
		for k, v := range h.Apps {
			apps[k] = v
		}
		h.Apps = apps
	}
	return h
}

func (c *Config) validateHLS(v *validator) {
	h := &c.HLS
	if h.IdleClose <= 0 {
		v.add("hls.idle_close", "must be > 0 (got %s)", h.IdleClose)
	}
	if h.Dir != "" && strings.TrimSpace(h.Dir) == "" {
		v.add("hls.dir", "is blank (want \"\" for memory, or a directory)")
	}
	for i, name := range h.AlwaysOn {
		if _, _, ok := SplitName(name); !ok {
			v.add(fmt.Sprintf("hls.always_on[%d]", i), "%q is not an app/stream name", name)
		}
	}
	if strings.ContainsFunc(h.AllowOrigin, func(r rune) bool { return unicode.IsControl(r) || r > unicode.MaxASCII }) {
		v.add("hls.allow_origin", "%q contains control or non-ASCII characters", h.AllowOrigin)
	}
	// checkMuxer checks resolved settings, reporting at prefix.key.
	checkMuxer := func(prefix string, m HLSMuxer) {
		v.oneOf(prefix+".variant", m.Variant, HLSLowLatency, HLSMPEGTS, HLSFMP4)
		if m.SegmentDuration < 0 {
			v.add(prefix+".segment_duration", "must be >= 0 (got %s)", m.SegmentDuration)
		}
		if m.PartDuration <= 0 {
			v.add(prefix+".part_duration", "must be > 0 (got %s)", m.PartDuration)
		} else if m.Variant == HLSLowLatency && m.PartDuration > m.SegmentDuration {
			v.add(prefix+".part_duration", "%s is longer than the segment duration %s", m.PartDuration, m.SegmentDuration)
		}
		minCount := 3
		if m.Variant == HLSLowLatency {
			minCount = 7
		}
		if m.SegmentCount < minCount {
			v.add(prefix+".segment_count", "must be >= %d for variant %s (got %d)", minCount, m.Variant, m.SegmentCount)
		}
	}
	top := len(v.errs)
	checkMuxer("hls", h.For("\x00"))
	topMsgs := map[string]bool{}
	for _, e := range v.errs[top:] {
		if fe, ok := e.(*FieldError); ok {
			topMsgs[strings.TrimPrefix(fe.Path, "hls.")+": "+fe.Msg] = true
		}
	}
	for _, app := range sortedKeys(h.Apps) {
		path := mapPath("hls.apps", app)
		if msg := checkSegment(app); msg != "" {
			v.add(path, "invalid app name %q: %s", app, msg)
			continue
		}
		// An app that inherits a top-level problem does not repeat it.
		before := len(v.errs)
		checkMuxer(path, h.For(app))
		kept := v.errs[:before]
		for _, e := range v.errs[before:] {
			fe, ok := e.(*FieldError)
			if ok && topMsgs[strings.TrimPrefix(fe.Path, path+".")+": "+fe.Msg] {
				continue
			}
			kept = append(kept, e)
		}
		v.errs = kept
	}
}
