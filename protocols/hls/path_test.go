package hls

import (
	"net/url"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		path   string
		ok     bool
		stream string
		file   string
		kind   fileKind
	}{
		{"/live/x/index.m3u8", true, "live/x", "index.m3u8", kindIndex},
		{"/live/x/hls.m3u8", true, "live/x", "index.m3u8", kindIndex},
		{"/live/x/video1_stream.m3u8", true, "live/x", "video1_stream.m3u8", kindMediaPlaylist},
		{"/live/x/main_stream.m3u8", true, "live/x", "main_stream.m3u8", kindMediaPlaylist},
		{"/live/x/0a1b2c3d4e5f_video1_seg12.mp4", true, "live/x", "0a1b2c3d4e5f_video1_seg12.mp4", kindSegment},
		{"/live/x/0a1b2c3d4e5f_main_seg3.ts", true, "live/x", "0a1b2c3d4e5f_main_seg3.ts", kindSegment},
		{"/live/x/0a1b2c3d4e5f_audio2_part40.mp4", true, "live/x", "0a1b2c3d4e5f_audio2_part40.mp4", kindSegment},
		{"/live/x/0a1b2c3d4e5f_video1_init.mp4", true, "live/x", "0a1b2c3d4e5f_video1_init.mp4", kindSegment},
		{"/live/my-stream_1/index.m3u8", true, "live/my-stream_1", "index.m3u8", kindIndex},

		// Not HLS paths: tricks, wrong shapes, unknown files.
		{"", false, "", "", 0},
		{"/", false, "", "", 0},
		{"live/x/index.m3u8", false, "", "", 0},
		{"/live/index.m3u8", false, "", "", 0},
		{"/live/x/y/index.m3u8", false, "", "", 0},
		{"/live/x/index.m3u8/", false, "", "", 0},
		{"/live//index.m3u8", false, "", "", 0},
		{"//x/index.m3u8", false, "", "", 0},
		{"/live/../index.m3u8", false, "", "", 0},
		{"/../../etc/passwd", false, "", "", 0},
		{"/live/x/../../../etc/passwd", false, "", "", 0},
		{"/live/x/..", false, "", "", 0},
		{"/live/../x/index.m3u8", false, "", "", 0},
		{"/live/x../index.m3u8", false, "", "", 0},
		{"/./x/index.m3u8", false, "", "", 0},
		{"/live/./index.m3u8", false, "", "", 0},
		{`/live/x\..\y/index.m3u8`, false, "", "", 0},
		{"/live/x/index.m3u8\x00", false, "", "", 0},
		{"/live/x/passwd", false, "", "", 0},
		{"/live/x/index.m3u", false, "", "", 0},
		{"/live/x/INDEX.M3U8", false, "", "", 0},
		{"/live/x/stream.m3u8", false, "", "", 0},
		{"/live/x/_stream.m3u8", false, "", "", 0},
		{"/live/x/0a1b2c3d4e5f_video1_seg1.mp4.bak", false, "", "", 0},
		{"/live/x/0a1b2c3d4e5f_video1_seg.mp4", false, "", "", 0},
		{"/live/x/xyz_video1_seg1.mp4", false, "", "", 0},
		{"/live/x/0a1b2c3d4e5f_video1_seg1.exe", false, "", "", 0},
		{"/live/x/0a1b2c3d4e5f_main_part1.ts", false, "", "", 0},
		{"/live/x/gap.mp4", false, "", "", 0},
		{"/live/x y/index.m3u8", false, "", "", 0},
		{"/live/x?y/index.m3u8", false, "", "", 0},
	}
	for _, tc := range tests {
		got, ok := parsePath(tc.path)
		if ok != tc.ok {
			t.Errorf("parsePath(%q) ok = %v, want %v", tc.path, ok, tc.ok)
			continue
		}
		if !ok {
			if Handles(tc.path) {
				t.Errorf("Handles(%q) = true", tc.path)
			}
			continue
		}
		if got.stream != tc.stream || got.file != tc.file || got.kind != tc.kind {
			t.Errorf("parsePath(%q) = %+v, want stream %q file %q kind %d", tc.path, got, tc.stream, tc.file, tc.kind)
		}
	}
}

// Encoded path tricks reach parsePath decoded, as net/http hands them.
func TestParsePathEncoded(t *testing.T) {
	for _, raw := range []string{
		"/live/%2e%2e/index.m3u8",
		"/live/x%2f..%2fy/index.m3u8",
		"/live%2fx/y/index.m3u8",
		"/%2e%2e/%2e%2e/etc/passwd",
		"/live/x/%2e%2e%2findex.m3u8",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := parsePath(u.Path); ok {
			t.Errorf("parsePath(%q decoded as %q) accepted", raw, u.Path)
		}
	}
}

func TestForwardQuery(t *testing.T) {
	s := &Server{p: Params{ExpiresParam: "e", TokenParam: "tk"}}
	q, _ := url.ParseQuery("e=123&tk=abc&tk=def&foo=bar&_HLS_msn=5&_HLS_part=1&token=zzz")
	if got, want := s.forwardQuery(q, false), "e=123&tk=abc"; got != want {
		t.Errorf("forwardQuery = %q, want %q", got, want)
	}
	if got, want := s.forwardQuery(q, true), "_HLS_msn=5&_HLS_part=1&e=123&tk=abc"; got != want {
		t.Errorf("forwardQuery(directives) = %q, want %q", got, want)
	}
	if got := s.forwardQuery(url.Values{"foo": {"x"}}, true); got != "" {
		t.Errorf("forwardQuery without auth = %q, want empty", got)
	}
}

func TestParseVariant(t *testing.T) {
	for _, v := range []Variant{LowLatency, MPEGTS, FMP4} {
		got, err := ParseVariant(v.String())
		if err != nil || got != v {
			t.Errorf("ParseVariant(%q) = %v, %v", v.String(), got, err)
		}
	}
	if _, err := ParseVariant("dash"); err == nil {
		t.Error("ParseVariant(dash) succeeded")
	}
}
