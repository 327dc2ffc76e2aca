package hls

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParsePath: an accepted request path is /<app>/<stream>/<file> with
// nothing that can reach outside the stream's directory: no "..", NUL or
// backslash, a file name without a separator, and a join under any root
// that stays in root/<app>/<stream>. Seeds are the paths of
// TestParsePath and TestParsePathEncoded (decoded, as net/http hands
// them).
func FuzzParsePath(f *testing.F) {
	for _, p := range []string{
		"/live/x/index.m3u8",
		"/live/x/hls.m3u8",
		"/live/x/video1_stream.m3u8",
		"/live/x/0a1b2c3d4e5f_video1_seg12.mp4",
		"/live/x/0a1b2c3d4e5f_main_seg3.ts",
		"/live/x/0a1b2c3d4e5f_audio2_part40.mp4",
		"/live/x/0a1b2c3d4e5f_video1_init.mp4",
		"/live/my-stream_1/index.m3u8",
		"", "/", "live/x/index.m3u8", "/live/x/y/index.m3u8", "/live//index.m3u8",
		"/live/../index.m3u8", "/live/x/../../../etc/passwd", "/live/x/..", "/./x/index.m3u8",
		`/live/x\..\y/index.m3u8`, "/live/x/index.m3u8\x00", "/live/x/0a1b2c3d4e5f_video1_seg1.mp4.bak",
		"/live/x y/index.m3u8", "/live/x?y/index.m3u8",
		"/live/%2e%2e/index.m3u8", "/live/x%2f..%2fy/index.m3u8", "/%2e%2e/%2e%2e/etc/passwd",
	} {
		f.Add(p)
		if u, err := url.Parse(p); err == nil && u.Path != p {
			f.Add(u.Path)
		}
	}
	f.Fuzz(func(t *testing.T, p string) {
		hp, ok := parsePath(p)
		if ok != Handles(p) {
			t.Fatalf("Handles(%q) disagrees with parsePath", p)
		}
		if !ok {
			if hp != (hlsPath{}) {
				t.Fatalf("refused path %q parsed as %+v", p, hp)
			}
			return
		}
		for _, bad := range []string{"..", "\x00", "\\"} {
			if strings.Contains(p, bad) || strings.Contains(hp.stream, bad) || strings.Contains(hp.file, bad) {
				t.Fatalf("accepted %q (%+v) contains %q", p, hp, bad)
			}
		}
		app, stream, _ := strings.Cut(hp.stream, "/")
		if app == "" || stream == "" || strings.Contains(stream, "/") || hp.file == "" || strings.ContainsRune(hp.file, '/') {
			t.Fatalf("accepted %q as %+v", p, hp)
		}
		if hp.kind != kindIndex && hp.kind != kindMediaPlaylist && hp.kind != kindSegment {
			t.Fatalf("accepted %q with kind %d", p, hp.kind)
		}
		if hp.kind != kindIndex && p != "/"+hp.stream+"/"+hp.file {
			t.Fatalf("%q parsed as %+v", p, hp)
		}
		const root = "/var/lib/liveedge/hls"
		dir := filepath.Join(root, hp.stream)
		if !strings.HasPrefix(dir, root+"/") || filepath.Join(root, app, stream) != dir || strings.Count(dir[len(root):], "/") != 2 {
			t.Fatalf("stream %q escapes the root: %s", hp.stream, dir)
		}
		if file := filepath.Join(dir, hp.file); filepath.Dir(file) != dir {
			t.Fatalf("file %q escapes the stream directory: %s", hp.file, file)
		}
	})
}
