package hls

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dirEntries lists the muxer directories under dir and the files in them.
func dirEntries(t *testing.T, dir string) (dirs []string, files int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		dirs = append(dirs, e.Name())
		sub, _ := os.ReadDir(filepath.Join(dir, e.Name()))
		files += len(sub)
	}
	return dirs, files
}

// TestDirSegments: with Dir set, segments are files under one directory
// per muxer, served as usual; a stale directory from an earlier run is
// removed at start, and the muxer's own when it closes.
func TestDirSegments(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, dirPrefix+"live~old-1")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, "seg.mp4"), []byte("x"), 0o644)
	other := filepath.Join(dir, "keep-me")
	os.MkdirAll(other, 0o755)

	s, ts := testServer(t, Params{Dir: dir, IdleClose: 700 * time.Millisecond,
		Apps: map[string]Settings{"live": {Variant: MPEGTS}}})
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale muxer directory left: %v", err)
	}
	index := ts.URL + "/live/demo/index.m3u8"
	res, body := get(t, http.MethodGet, index)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET index = %d", res.StatusCode)
	}
	media := resolve(t, index, playlistURIs(body)[0])
	_, body = get(t, http.MethodGet, media)
	segs := playlistURIs(body)
	if len(segs) == 0 {
		t.Fatalf("no segment in:\n%s", body)
	}
	res, b := get(t, http.MethodGet, resolve(t, media, segs[0]))
	if res.StatusCode != http.StatusOK || len(b) == 0 || b[0] != 0x47 {
		t.Fatalf("GET segment = %d (%d bytes)", res.StatusCode, len(b))
	}
	dirs, files := dirEntries(t, dir)
	if len(dirs) != 2 || dirs[0] != "keep-me" || !strings.HasPrefix(dirs[1], dirPrefix+"live~demo-") || files == 0 {
		t.Fatalf("directories %v with %d files", dirs, files)
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.streams)
		s.mu.Unlock()
		if dirs, _ := dirEntries(t, dir); n == 0 && len(dirs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			d, _ := dirEntries(t, dir)
			t.Fatalf("after idle close: %d muxers, directories %v", n, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDirUnusable: a Dir that cannot be written keeps segments in memory.
func TestDirUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(file, nil, 0o644)
	_, ts := testServer(t, Params{Dir: file})
	if res, _ := get(t, http.MethodGet, ts.URL+"/live/demo/index.m3u8"); res.StatusCode != http.StatusOK {
		t.Fatalf("GET index = %d", res.StatusCode)
	}
}

// TestAlwaysOn: an always-on muxer runs before any request and is not
// closed for idleness; others are.
func TestAlwaysOn(t *testing.T) {
	s, ts := testServer(t, Params{IdleClose: 300 * time.Millisecond, AlwaysOn: []string{"live/demo"}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		m := s.streams["live/demo"]
		s.mu.Unlock()
		if m != nil {
			select {
			case <-m.ready:
			default:
				m = nil
			}
		}
		if m != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("always-on muxer has no playlist")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	res, _ := get(t, http.MethodGet, ts.URL+"/live/demo/index.m3u8")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET index = %d", res.StatusCode)
	}
	t.Logf("first playlist of an always-on muxer after %v", time.Since(start))
	time.Sleep(1200 * time.Millisecond) // four idle periods: an absence to observe, no event to wait for
	s.mu.Lock()
	_, ok := s.streams["live/demo"]
	s.mu.Unlock()
	if !ok {
		t.Fatal("always-on muxer closed for idleness")
	}
}

// TestDirFailsMidStream: when hls.dir stops taking writes under a running
// muxer (its directory replaced by a file here: ENOTDIR on the next
// segment), the muxer goes on in memory instead of failing every write,
// and new segments are served.
func TestDirFailsMidStream(t *testing.T) {
	dir := t.TempDir()
	s, ts := testServer(t, Params{Dir: dir, Apps: map[string]Settings{"live": {Variant: MPEGTS, SegmentDuration: time.Second}}})
	index := ts.URL + "/live/demo/index.m3u8"
	if res, _ := get(t, http.MethodGet, index); res.StatusCode != http.StatusOK {
		t.Fatalf("GET index = %d", res.StatusCode)
	}
	s.mu.Lock()
	m := s.streams["live/demo"]
	s.mu.Unlock()
	m.mu.Lock()
	mxDir := m.mxDir
	m.mu.Unlock()
	if mxDir == "" {
		t.Fatal("the muxer does not use hls.dir")
	}
	if err := os.RemoveAll(mxDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mxDir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		d, mx := m.mxDir, m.mx
		m.mu.Unlock()
		if d == "" && mx != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("muxer still on %q 10 s after its directory became unusable", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The in-memory muxer serves segments again.
	for {
		_, body := get(t, http.MethodGet, index)
		if uris := playlistURIs(body); len(uris) > 0 {
			media := resolve(t, index, uris[0])
			_, body = get(t, http.MethodGet, media)
			if segs := playlistURIs(body); len(segs) > 0 {
				res, b := get(t, http.MethodGet, resolve(t, media, segs[len(segs)-1]))
				if res.StatusCode == http.StatusOK && len(b) > 0 && b[0] == 0x47 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no segment served after the fallback to memory")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
