package signaling

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/internal/whepclient"
	"github.com/liveedge/liveedge/protocols/webrtc"
)

func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	res.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

func readMsg(t *testing.T, c *websocket.Conn) wsMessage {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
	var m wsMessage
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func wantError(t *testing.T, c *websocket.Conn, contains string) {
	t.Helper()
	if m := readMsg(t, c); m.Type != "error" || !strings.Contains(m.Message, contains) {
		t.Fatalf("got %+v, want an error with %q", m, contains)
	}
}

// waitPeers waits until the server has n peers.
func waitPeers(t *testing.T, ws *webrtc.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for ws.Peers("") != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d peers, want %d", ws.Peers(""), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// splitCandidates removes the candidate lines of an SDP and returns them
// (without "a=").
func splitCandidates(sdp string) (string, []string) {
	var keep, cands []string
	for _, l := range strings.SplitAfter(sdp, "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(l), "a=candidate:"); ok {
			cands = append(cands, "candidate:"+c)
			continue
		}
		if strings.TrimSpace(l) == "a=end-of-candidates" {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, ""), cands
}

func TestWSSession(t *testing.T) {
	ws, ts := testServer(t)
	c, offer := newClient(t)
	conn := dialWS(t, ts.URL+"/live/demo/ws")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	// The offer without candidates; they follow as candidate messages.
	sdp, cands := splitCandidates(offer)
	if len(cands) == 0 {
		t.Fatal("the client gathered no candidate")
	}
	if err := conn.WriteJSON(wsMessage{Type: "offer", SDP: sdp}); err != nil {
		t.Fatal(err)
	}
	ans := readMsg(t, conn)
	if ans.Type != "answer" || ans.ID == "" || !strings.Contains(ans.SDP, "a=candidate:") {
		t.Fatalf("answer %+v", ans)
	}
	mid := "0"
	for _, cand := range cands {
		if err := conn.WriteJSON(wsMessage{Type: "candidate", Candidate: &cand, SDPMid: &mid}); err != nil {
			t.Fatal(err)
		}
	}
	end := ""
	if err := conn.WriteJSON(wsMessage{Type: "candidate", Candidate: &end, SDPMid: &mid}); err != nil {
		t.Fatal(err)
	}
	if err := c.Answer(ans.SDP); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFrames(ctx, 30); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.First == nil || !st.First.IsIDR() {
		t.Fatalf("first frame %+v", st.First)
	} else {
		t.Logf("WebSocket TTFF %v", st.TTFF)
	}
	// A second offer on the same socket is refused; the session goes on.
	if err := conn.WriteJSON(wsMessage{Type: "offer", SDP: offer}); err != nil {
		t.Fatal(err)
	}
	wantError(t, conn, "already has a session")
	if ws.Peers("live/demo") != 1 {
		t.Fatalf("%d peers", ws.Peers("live/demo"))
	}
	// Closing the socket ends the session.
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")) //nolint:errcheck
	conn.Close()
	waitPeers(t, ws, 0)
}

func TestWSSessionEndedByServer(t *testing.T) {
	ws, ts := testServer(t)
	_, offer := newClient(t)
	conn := dialWS(t, ts.URL+"/live/demo/ws")
	if err := conn.WriteJSON(wsMessage{Type: "offer", SDP: offer}); err != nil {
		t.Fatal(err)
	}
	ans := readMsg(t, conn)
	if ans.Type != "answer" {
		t.Fatalf("answer %+v", ans)
	}
	// The session id works with WHEP's DELETE; the socket then closes.
	r, err := whepclient.Do(context.Background(), http.MethodDelete, ts.URL+"/live/demo/whep/"+ans.ID, "", nil)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("DELETE: %v %d", err, r.Status)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("read after DELETE: %v", err)
	}
	waitPeers(t, ws, 0)
}

func TestWSToken(t *testing.T) {
	ws, ts := testServer(t)
	_, offer := newClient(t)
	exp := time.Now().Add(time.Hour).Unix()
	tok := auth.Sign(auth.SHA256, []byte(testSecret), "sec/demo", exp, netip.Addr{})
	conn := dialWS(t, ts.URL+"/sec/demo/ws?expires="+strconv.FormatInt(exp, 10)+"&token="+tok)
	if err := conn.WriteJSON(wsMessage{Type: "offer", SDP: offer}); err != nil {
		t.Fatal(err)
	}
	if m := readMsg(t, conn); m.Type != "answer" {
		t.Fatalf("with token: %+v", m)
	}
	waitPeers(t, ws, 1)

	for _, q := range []string{"", "?expires=" + strconv.FormatInt(exp, 10) + "&token=" + strings.Repeat("0", 64)} {
		bad := dialWS(t, ts.URL+"/sec/demo/ws"+q)
		wantError(t, bad, "")
		bad.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		_, _, err := bad.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("refused socket %q: %v", q, err)
		}
	}
	conn.Close()
	waitPeers(t, ws, 0)
}

func TestWSErrors(t *testing.T) {
	ws, ts := testServer(t)
	_, offer := newClient(t)
	conn := dialWS(t, ts.URL+"/live/demo/ws")
	cand := "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"not json", "{oops", "malformed JSON"},
		{"unknown type", `{"type":"bye"}`, "unknown message type"},
		{"candidate first", `{"type":"candidate","candidate":"` + cand + `","sdpMid":"0"}`, "before a successful offer"},
		{"empty offer", `{"type":"offer"}`, "malformed SDP"},
		{"garbage sdp", `{"type":"offer","sdp":"garbage"}`, "malformed SDP"},
		{"no h264", "", "H.264"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.msg == "" {
				err = conn.WriteJSON(wsMessage{Type: "offer", SDP: strings.ReplaceAll(offer, "H264/90000", "VP9/90000")})
			} else {
				err = conn.WriteMessage(websocket.TextMessage, []byte(tc.msg))
			}
			if err != nil {
				t.Fatal(err)
			}
			wantError(t, conn, tc.want)
		})
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	wantError(t, conn, "text frames")

	// Unknown stream.
	nothing := dialWS(t, ts.URL+"/live/nothing/ws")
	if err := nothing.WriteJSON(wsMessage{Type: "offer", SDP: offer}); err != nil {
		t.Fatal(err)
	}
	wantError(t, nothing, "stream not found")

	// Malformed candidates after a good offer.
	if err := conn.WriteJSON(wsMessage{Type: "offer", SDP: offer}); err != nil {
		t.Fatal(err)
	}
	if m := readMsg(t, conn); m.Type != "answer" {
		t.Fatalf("%+v", m)
	}
	for _, m := range []string{
		`{"type":"candidate"}`,
		`{"type":"candidate","candidate":"typ host"}`,
		`{"type":"candidate","candidate":"` + cand + `\r\na=ice-ufrag:x"}`,
		`{"type":"candidate","candidate":"` + cand + `","sdpMLineIndex":99}`,
		`{"type":"candidate","candidate":"` + cand + `","usernameFragment":"restart"}`,
	} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		wantError(t, conn, "")
	}
	// A good one by m-line index passes silently: the next reply is the
	// error for the unknown type after it.
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"candidate","candidate":"`+cand+`","sdpMLineIndex":0}`)) //nolint:errcheck
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"x"}`))                                                  //nolint:errcheck
	wantError(t, conn, "unknown message type")
	waitPeers(t, ws, 1)

	// An oversized message closes the socket, and its session ends.
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"offer","sdp":"`+strings.Repeat("a", DefaultMaxBody)+`"}`)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized: %v", err)
	}
	waitPeers(t, ws, 0)

	// A plain GET is not an upgrade.
	r, err := whepclient.Do(context.Background(), http.MethodGet, ts.URL+"/live/demo/ws", "", nil)
	if err != nil || r.Status != http.StatusBadRequest {
		t.Fatalf("GET: %v %d", err, r.Status)
	}
}

func TestCandidateFrag(t *testing.T) {
	c, mid, idx := "candidate:1 1 udp 1 127.0.0.1 9 typ host", "1", 1
	f, err := candidateFrag(wsMessage{Candidate: &c, SDPMid: &mid})
	if err != nil || f != "a=mid:1\r\na="+c+"\r\n" {
		t.Fatalf("%q %v", f, err)
	}
	f, err = candidateFrag(wsMessage{Candidate: &c, SDPMLineIndex: &idx})
	if err != nil || strings.Count(f, "m=") != 2 {
		t.Fatalf("%q %v", f, err)
	}
}

// TestWSOfferTimeout: a socket without a session for the offer timeout is
// closed with 1008, one with a session is not.
func TestWSOfferTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	_, ts := testServerWith(t, func(p *Params) { p.OfferTimeout = timeout })
	idle := dialWS(t, ts.URL+"/live/demo/ws")
	_, offer := newClient(t)
	busy := dialWS(t, ts.URL+"/live/demo/ws")
	if err := busy.WriteJSON(wsMessage{Type: "offer", SDP: offer}); err != nil {
		t.Fatal(err)
	}
	if ans := readMsg(t, busy); ans.Type != "answer" {
		t.Fatalf("answer %+v", ans)
	}
	// A failed offer does not count as a session.
	if err := idle.WriteJSON(wsMessage{Type: "offer", SDP: "v=0"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	var err error
	for err == nil {
		_, _, err = idle.ReadMessage() // the error reply, then the close
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("idle socket: %v, want a 1008 close", err)
	}
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Fatalf("idle socket closed after %v, want about %v", d, timeout)
	}
	// The socket with a session is still open well past the timeout.
	busy.SetReadDeadline(time.Now().Add(3 * timeout)) //nolint:errcheck
	_, _, err = busy.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("socket with a session: %v, want it still open (a read timeout)", err)
	}
}
