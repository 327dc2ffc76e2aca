package main

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
)

// TestHLSFromPulledOrigin: ffmpeg → nginx-rtmp → liveedge (on-demand pull)
// → HLS. The first HLS request starts the pull and waits for the first
// segment; ffprobe plays LL-HLS and an RTMP player watches at the same
// time; the origin sees exactly one player, and the playlists of the
// pulled stream pass the conformance checks.
func TestHLSFromPulledOrigin(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	o := nginxtest.Start(t)
	o.Publish(t, "x")
	if err := o.WaitPublishing("x", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, hlsBaseConfig+`
streams:
  - match: "live/*"
    mode: on_demand
    idle_close: 2s
    origins: ["rtmp://`+o.RTMP+`/live/$stream"]
`)
	index := "http://" + s.httpAddr(t) + "/live/x/index.m3u8"

	var wg sync.WaitGroup
	var hlsRes, rtmpRes probeResult
	var hlsErr, rtmpErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		hlsRes, hlsErr = probe(t, index, 120)
	}()
	go func() {
		defer wg.Done()
		time.Sleep(500 * time.Millisecond) // the HLS request starts the pull
		rtmpRes, rtmpErr = probe(t, s.url("live/x"), 120)
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	maxPlayers := 0
	for watching := true; watching; {
		select {
		case <-done:
			watching = false
		case <-time.After(100 * time.Millisecond):
			if st, err := o.Stat(); err == nil {
				maxPlayers = max(maxPlayers, st.Players("x"))
			}
		}
	}
	if hlsErr != nil {
		t.Fatal(hlsErr)
	}
	if rtmpErr != nil {
		t.Fatal(rtmpErr)
	}
	checkPlayback(t, hlsRes, 40)
	checkPlayback(t, rtmpRes, 40)
	if maxPlayers != 1 {
		t.Errorf("origin saw at most %d players, want exactly 1", maxPlayers)
	}
	if n := countLines(s.logLines(), `msg="pull started" stream=live/x`); n != 1 {
		t.Errorf("%d pulls started, want 1", n)
	}

	// The pulled stream's live playlists conform, reload after reload.
	media := mediaPlaylist(t, index)
	var prev *mediaPL
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		u := media
		if prev != nil {
			msn, part := prev.nextPart()
			u += "?_HLS_msn=" + itoa(msn) + "&_HLS_part=" + itoa(part)
		}
		res, body := httpGet(t, u)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s = %d", u, res.StatusCode)
		}
		p, err := parseMediaPlaylist(body)
		if err != nil {
			t.Fatal(err)
		}
		v := p.check(true)
		if prev != nil {
			v = append(v, checkReload(prev, p, true)...)
		}
		if len(v) > 0 {
			t.Fatalf("%s\n%s", strings.Join(v, "\n"), body)
		}
		prev = p
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
