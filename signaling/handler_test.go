package signaling

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/internal/whepclient"
	"github.com/liveedge/liveedge/protocols/demo"
	"github.com/liveedge/liveedge/protocols/webrtc"
)

const testSecret = "s3cret"

// testServer runs the demo clip on live/demo and sec/demo (the "sec" app
// requires play tokens), a WebRTC server on loopback and the signalling
// handler on an httptest server.
func testServer(t *testing.T) (*webrtc.Server, *httptest.Server) {
	t.Helper()
	return testServerWith(t, nil)
}

// testServerWith is testServer with the handler's Params changed by mod.
func testServerWith(t *testing.T, mod func(*Params)) (*webrtc.Server, *httptest.Server) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	h := hub.New(hub.Params{Logger: log, StartTimeout: 300 * time.Millisecond,
		Authorizer: &auth.Policy{Algorithm: auth.SHA256, Apps: map[string]auth.AppPolicy{
			"sec": {Secret: []byte(testSecret), Play: true},
		}}})
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"live/demo", "sec/demo"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			demo.Run(ctx, h, name, clip, log) //nolint:errcheck
		}()
	}
	ws, err := webrtc.New(webrtc.Params{Hub: h, Logger: log, UDPHost: "127.0.0.1",
		Remote:     webrtc.CandidatePolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		ICEServers: []string{"stun:stun.example.net:3478"}, StartDelay: 60 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hp := Params{Hub: h, WebRTC: ws, Logger: log, AllowOrigin: "*"}
	if mod != nil {
		mod(&hp)
	}
	ts := httptest.NewServer(New(hp))
	t.Cleanup(func() {
		ts.Close()
		http.DefaultClient.CloseIdleConnections()
		ws.Close()
		cancel()
		wg.Wait()
		h.Close()
	})
	return ws, ts
}

func newClient(t *testing.T) (*whepclient.Client, string) {
	t.Helper()
	c, err := whepclient.New(whepclient.Options{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.Start()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	return c, offer
}

func TestWHEPSession(t *testing.T) {
	ws, ts := testServer(t)
	c, offer := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := whepclient.Post(ctx, ts.URL+"/live/demo/whep", "", offer)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusCreated || !strings.HasPrefix(res.Location, "/live/demo/whep/") || res.ETag == "" ||
		res.Header.Get("Content-Type") != "application/sdp" || !strings.Contains(res.Header.Get("Link"), "stun:stun.example.net") {
		t.Fatalf("POST: %d location %q etag %q headers %v\n%s", res.Status, res.Location, res.ETag, res.Header, res.Body)
	}
	if err := c.Answer(res.Body); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFrames(ctx, 30); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.First == nil || !st.First.IsIDR() {
		t.Fatalf("first frame %+v", st.First)
	}
	t.Logf("WHEP TTFF %v", st.TTFF)

	// Trickle: a loopback candidate is taken, another address is dropped.
	frag := "a=ice-ufrag:" + ufrag(offer) + "\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n" +
		"a=candidate:2 1 udp 2130706431 10.1.2.3 40000 typ host\r\na=end-of-candidates\r\n"
	r, err := whepclient.Do(ctx, http.MethodPatch, ts.URL+res.Location, "application/trickle-ice-sdpfrag", []byte(frag))
	if err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("PATCH: %v %d %s", err, r.Status, r.Body)
	}
	restart := strings.Replace(frag, ufrag(offer), "other", 1)
	if r, _ := whepclient.Do(ctx, http.MethodPatch, ts.URL+res.Location, "application/trickle-ice-sdpfrag", []byte(restart)); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("ICE restart PATCH: %d", r.Status)
	}

	r, err = whepclient.Do(ctx, http.MethodDelete, ts.URL+res.Location, "", nil)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("DELETE: %v %d", err, r.Status)
	}
	if n := ws.Peers(""); n != 0 {
		t.Fatalf("%d peers after DELETE", n)
	}
	if r, _ := whepclient.Do(ctx, http.MethodDelete, ts.URL+res.Location, "", nil); r.Status != http.StatusNotFound {
		t.Fatalf("second DELETE: %d", r.Status)
	}
}

func ufrag(sdp string) string {
	for _, l := range strings.Split(sdp, "\n") {
		if u, ok := strings.CutPrefix(strings.TrimSpace(l), "a=ice-ufrag:"); ok {
			return u
		}
	}
	return ""
}

func TestWHEPWithToken(t *testing.T) {
	ws, ts := testServer(t)
	_, offer := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	exp := time.Now().Add(time.Hour).Unix()
	tok := auth.Sign(auth.SHA256, []byte(testSecret), "sec/demo", exp, netip.Addr{})
	res, err := whepclient.Post(ctx, ts.URL+"/sec/demo/whep?expires="+strconv.FormatInt(exp, 10), tok, offer)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("bearer: %v %d %s", err, res.Status, res.Body)
	}
	if ws.Peers("sec/demo") != 1 {
		t.Fatal("no peer")
	}
}

func TestWHEPErrors(t *testing.T) {
	ws, ts := testServer(t)
	_, offer := newClient(t)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	badTok := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, method, path, ctype, body string
		want                            int
	}{
		{"garbage sdp", "POST", "/live/demo/whep", "application/sdp", "not an sdp", 400},
		{"empty body", "POST", "/live/demo/whep", "application/sdp", "", 400},
		{"no video", "POST", "/live/demo/whep", "application/sdp", strings.ReplaceAll(offer, "m=video", "m=text"), 400},
		{"no h264", "POST", "/live/demo/whep", "application/sdp", strings.ReplaceAll(offer, "H264/90000", "VP9/90000"), 400},
		{"wrong type", "POST", "/live/demo/whep", "text/plain", offer, 415},
		{"too big", "POST", "/live/demo/whep", "application/sdp", strings.Repeat("a", 2<<20), 413},
		{"unknown stream", "POST", "/live/nothing/whep", "application/sdp", offer, 404},
		{"no token", "POST", "/sec/demo/whep", "application/sdp", offer, 401},
		{"bad token", "POST", "/sec/demo/whep?expires=" + exp + "&token=" + badTok, "application/sdp", offer, 403},
		{"GET", "GET", "/live/demo/whep", "", "", 405},
		{"patch unknown", "PATCH", "/live/demo/whep/0123abcd", "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", 404},
		{"delete unknown", "DELETE", "/live/demo/whep/0123abcd", "", "", 404},
		{"bad path", "POST", "/live/demo/whep/x/y", "application/sdp", offer, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := whepclient.Do(context.Background(), tc.method, ts.URL+tc.path, tc.ctype, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want {
				t.Fatalf("status %d, want %d: %s", res.Status, tc.want, res.Body)
			}
		})
	}
	if n := ws.Peers(""); n != 0 {
		t.Fatalf("%d peers left behind", n)
	}
}

func TestOptions(t *testing.T) {
	_, ts := testServer(t)
	res, err := whepclient.Do(context.Background(), http.MethodOptions, ts.URL+"/live/demo/whep", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := res.Header
	if res.Status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		h.Get("Link") != `<stun:stun.example.net:3478>; rel="ice-server"` {
		t.Fatalf("OPTIONS: %d %v", res.Status, h)
	}
}

func TestZLMAPI(t *testing.T) {
	ws, ts := testServer(t)
	c, offer := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := whepclient.Do(ctx, http.MethodPost, ts.URL+"/index/api/webrtc?app=live&stream=demo&type=play", "text/plain;charset=utf-8", []byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Code int    `json:"code"`
		SDP  string `json:"sdp"`
		Type string `json:"type"`
		ID   string `json:"id"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal([]byte(res.Body), &rep); err != nil || rep.Code != 0 || rep.Type != "answer" || rep.ID == "" {
		t.Fatalf("reply %d %v %+v", res.Status, err, rep)
	}
	if err := c.Answer(rep.SDP); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFrames(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if f := c.Stats().First; f == nil || !f.IsIDR() {
		t.Fatalf("first frame %+v", f)
	}
	if r, _ := whepclient.Do(ctx, http.MethodDelete, ts.URL+"/live/demo/whep/"+rep.ID, "", nil); r.Status != http.StatusOK {
		t.Fatalf("DELETE %d", r.Status)
	}

	for _, q := range []string{"app=live&stream=demo&type=push", "app=live&stream=nothing&type=play", "app=sec&stream=demo&type=play"} {
		res, err := whepclient.Do(ctx, http.MethodPost, ts.URL+"/index/api/webrtc?"+q, "text/plain", []byte(offer))
		if err != nil {
			t.Fatal(err)
		}
		rep.Code, rep.Msg = 0, ""
		if err := json.Unmarshal([]byte(res.Body), &rep); err != nil || rep.Code != -1 || rep.Msg == "" {
			t.Fatalf("%s: %v %s", q, err, res.Body)
		}
	}
	if n := ws.Peers(""); n != 0 {
		t.Fatalf("%d peers left", n)
	}
}
