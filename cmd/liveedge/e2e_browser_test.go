package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/liveedge/liveedge/internal/whepclient"
	"github.com/liveedge/liveedge/static"
)

// chromiumPath finds Chromium (Debian's package installs /usr/bin/chromium).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	requireTools(t, "chromium") // skips, or fails with LIVEEDGE_E2E=require
	return ""
}

// browser starts a headless Chromium for WebRTC on loopback: the host
// candidates it offers beyond 127.0.0.1 are refused by the server under
// test (remote_candidates allows 127.0.0.0/8 only), mDNS candidates are
// off, and nothing leaves the machine (no proxy, every host name but
// 127.0.0.1 unresolvable).
func browser(t *testing.T) context.Context {
	t.Helper()
	requireTools(t) // -short
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Replaces chromedp's own list, so it is repeated here.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page when a browser test fails.
func screenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	if !t.Failed() {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	p := filepath.Join(os.TempDir(), "liveedge-"+strings.ReplaceAll(t.Name(), "/", "_")+".png")
	if err := os.WriteFile(p, png, 0o644); err == nil {
		t.Logf("screenshot: %s", p)
	}
}

// playerState is what the test reads from the player page.
type playerState struct {
	Width    int            `json:"w"`
	Height   int            `json:"h"`
	Time     float64        `json:"t"`
	TTFF     *int           `json:"ttff"`
	Error    string         `json:"err"`
	Protocol string         `json:"proto"`
	Timing   map[string]int `json:"timing"`
}

const playerStateJS = `(() => { const v = document.querySelector("video"), s = window.liveedge || {};
	return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime, ttff: s.ttffMs, err: s.error, proto: s.protocol, timing: s.timing}; })()`

// pageStats is the selected candidate pair and the decoded frames, from
// the page's getStats.
const pageStatsJS = `(async () => {
	const rep = await window.liveedge.getStats(); if (!rep) return null;
	const out = {frames: 0, local: "", remote: ""}; let pair = null;
	rep.forEach((s) => {
		if (s.type === "inbound-rtp" && s.kind === "video") out.frames = s.framesDecoded;
		if (s.type === "transport" && s.selectedCandidatePairId) pair = rep.get(s.selectedCandidatePairId);
	});
	if (pair) { out.local = (rep.get(pair.localCandidateId) || {}).address || "";
		out.remote = (rep.get(pair.remoteCandidateId) || {}).address || ""; }
	return out; })()`

const debugJS = `(async () => { const v = document.querySelector("video"); const rep = await window.liveedge.getStats();
	const o = {ready: v.readyState, net: v.networkState, paused: v.paused, err: v.error && v.error.message, rtp: null};
	if (rep) rep.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") o.rtp = s;
		if (s.type === "codec") o.codec = s.mimeType + " " + (s.sdpFmtpLine || ""); });
	return o; })()`

func TestBrowserPlayerWHEP(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, webrtcConfig(t))
	base := "http://" + s.httpAddr(t)
	s.waitLog(t, `msg=listening proto=webrtc addr=127\.0\.0\.1:`, 10*time.Second)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	defer screenshot(t, ctx)

	// The stream list links to the player.
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	link, err := chromedp.Run(tctx, chromedp.AttributeValue(`#streams a[href="/live/demo/"]`, "href"))
	if err != nil || !link.Exists {
		t.Fatalf("stream list: %v", err)
	}
	href := link.Value

	// The player plays WHEP.
	if err := chromedp.Do(tctx, chromedp.Navigate(base+href)); err != nil {
		t.Fatal(err)
	}
	var st playerState
	var started time.Time
	for {
		cur, err := chromedp.Run(tctx, chromedp.Evaluate[playerState](playerStateJS))
		if err != nil {
			dbg, _ := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](debugJS, chromedp.EvalAwaitPromise))
			t.Fatalf("page state: %v (last %+v); %s", err, st, dbg)
		}
		st = cur
		if st.Error != "" {
			t.Fatalf("player error: %s", st.Error)
		}
		if st.Width == 640 && st.Time > 0 && st.TTFF != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	started = time.Now()
	t0 := st.Time
	time.Sleep(1500 * time.Millisecond)
	if st, err = chromedp.Run(tctx, chromedp.Evaluate[playerState](playerStateJS)); err != nil {
		t.Fatal(err)
	}
	if adv := st.Time - t0; adv < 0.8 {
		t.Fatalf("currentTime advanced %.2fs in %v", adv, time.Since(started))
	}
	var ps struct {
		Frames int    `json:"frames"`
		Local  string `json:"local"`
		Remote string `json:"remote"`
	}
	raw, err := chromedp.Run(tctx, chromedp.Evaluate[json.RawMessage](pageStatsJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ps); err != nil {
		t.Fatalf("stats %s: %v", raw, err)
	}
	if ps.Frames < 20 || ps.Local != "127.0.0.1" || ps.Remote != "127.0.0.1" {
		t.Fatalf("getStats: %+v", ps)
	}
	t.Logf("Chromium WHEP: %dx%d via %s, time to first frame %d ms (page start of play to first decoded frame; steps in ms: %v), %d frames decoded",
		st.Width, st.Height, st.Protocol, *st.TTFF, st.Timing, ps.Frames)

	// A second play in the same (now warm) browser: the WebRTC button
	// starts a new session, and its time to first frame is measured again.
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`document.getElementById("whep").click(), true`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	for {
		cur, err := chromedp.Run(tctx, chromedp.Evaluate[playerState](playerStateJS))
		if err != nil {
			t.Fatalf("second play: %v (last %+v)", err, st)
		}
		st = cur
		if st.Error != "" {
			t.Fatalf("player error: %s", st.Error)
		}
		if st.TTFF != nil && st.Width == 640 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("Chromium WHEP, second play in the warm browser: time to first frame %d ms (steps in ms: %v)", *st.TTFF, st.Timing)
	waitRemoved(t, s, 1) // the first session ended

	// Leaving the page ends the session.
	if err := chromedp.Do(tctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	waitRemoved(t, s, 2)
}

// waitRemoved waits until n WebRTC peers were removed.
func waitRemoved(t *testing.T, s *server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for countLines(s.logLines(), `webrtc peer removed.*stream=live/demo`) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d WebRTC peers removed, want %d", countLines(s.logLines(), `webrtc peer removed`), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mediaDebugJS describes the video element's state.
const mediaDebugJS = `(() => { const v = document.querySelector("video");
	return {ready: v.readyState, net: v.networkState, paused: v.paused, err: v.error && v.error.message,
		buffered: v.buffered.length ? [v.buffered.start(0), v.buffered.end(v.buffered.length-1)] : [], t: v.currentTime,
		src: v.currentSrc}; })()`

// playButton opens the demo's player page, clicks the button with id
// button and waits until the video plays 640x360 over proto and keeps
// playing; it returns the page's time to first frame.
func playButton(t *testing.T, button, proto string) int {
	t.Helper()
	ctx := browser(t)
	s := startServer(t, webrtcConfig(t))
	base := "http://" + s.httpAddr(t)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	defer screenshot(t, ctx)

	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/live/demo/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`document.getElementById("`+button+`").click(), true`)); err != nil {
		t.Fatal(err)
	}
	var st playerState
	for {
		cur, err := chromedp.Run(tctx, chromedp.Evaluate[playerState](playerStateJS))
		if err != nil {
			dbg, _ := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](mediaDebugJS))
			for _, l := range s.logLines() {
				if strings.Contains(l, "proto=hls") || strings.Contains(l, "proto=flv") {
					t.Log(l)
				}
			}
			t.Fatalf("page state: %v (last %+v); video element: %s", err, st, dbg)
		}
		st = cur
		if st.Error != "" {
			t.Fatalf("player error: %s", st.Error)
		}
		if st.Protocol == proto && st.Width == 640 && st.Height == 360 && st.Time > 0 && st.TTFF != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t0, started := st.Time, time.Now()
	time.Sleep(1500 * time.Millisecond) // playback time must advance meanwhile
	st, err := chromedp.Run(tctx, chromedp.Evaluate[playerState](playerStateJS))
	if err != nil {
		t.Fatal(err)
	}
	if adv := st.Time - t0; adv < 0.8 {
		t.Fatalf("currentTime advanced %.2fs in %v", adv, time.Since(started))
	}
	return *st.TTFF
}

// TestBrowserPlayerFLV: the player page's HTTP-FLV button plays the demo
// through mpegts.js in Chromium.
func TestBrowserPlayerFLV(t *testing.T) {
	if !static.HasMPEGTS() {
		requireTools(t, "static/vendor/mpegts.js (make vendor)")
	}
	ttff := playButton(t, "flv", "HTTP-FLV")
	t.Logf("Chromium HTTP-FLV (mpegts.js): time to first frame %d ms", ttff)
}

// TestBrowserPlayerLLHLS: the player page's LL-HLS button plays the demo
// through hls.js in Chromium.
func TestBrowserPlayerLLHLS(t *testing.T) {
	if !static.HasHLSJS() {
		requireTools(t, "static/vendor/hls.min.js (make vendor)")
	}
	ttff := playButton(t, "hls", "LL-HLS")
	t.Logf("Chromium LL-HLS (hls.js): time to first frame %d ms", ttff)
}

// TestBrowserDashboard: the stream list at "/" refreshes from
// /status.json and shows a WHEP viewer of the demo by protocol, and the
// demo as the stream's source.
func TestBrowserDashboard(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, webrtcConfig(t))
	base := "http://" + s.httpAddr(t)
	s.waitLog(t, `msg="origin up" stream=live/demo`, 10*time.Second)
	defer screenshot(t, ctx)

	c, err := whepclient.New(whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	c.Start()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	res, err := whepclient.Post(wctx, base+"/live/demo/whep", "", offer)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("WHEP: %v %d", err, res.Status)
	}
	if err := c.Answer(res.Body); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFrames(wctx, 5); err != nil {
		t.Fatal(err)
	}

	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	const rowJS = `(() => { for (const tr of document.querySelectorAll("#streams tbody tr"))
		if (tr.cells[0].textContent === "live/demo") return tr.innerText; return ""; })()`
	var row string
	for {
		row, err = chromedp.Run(tctx, chromedp.Evaluate[string](rowJS))
		if err != nil {
			t.Fatalf("dashboard: %v (last row %q)", err, row)
		}
		if strings.Contains(row, "webrtc 1") && strings.Contains(row, "demo") && strings.Contains(row, "640x360") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("dashboard row: %q", row)
}
