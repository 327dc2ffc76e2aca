package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/liveedge/liveedge/protocols/webrtc"
)

// WebSocket signalling at /<app>/<stream>/ws: one socket carries one
// session. Messages are JSON text frames:
//
//	client → server  {"type":"offer","sdp":"…"}
//	server → client  {"type":"answer","sdp":"…","id":"…"}
//	client → server  {"type":"candidate","candidate":"candidate:…","sdpMid":"0","sdpMLineIndex":0}
//	server → client  {"type":"error","message":"…"}
//
// The answer carries every candidate of the server (host candidates on its
// one UDP port, gathered before answering), so the server sends no
// candidate messages. A client candidate goes through the same trickle
// path and remote-candidate policy as a WHEP PATCH; an empty candidate
// (end of candidates) is accepted and ignored. The session id also works
// with DELETE /<app>/<stream>/whep/<id>. Closing the socket ends the
// session; the socket is closed when the session ends on the server.
// Admission takes the query's expires/token (browsers cannot set headers
// on a WebSocket). A refused admission, or WebRTC being unavailable, is
// an error message followed by a close; other errors leave the socket open
// for another try, until Params.OfferTimeout passes without a session.

// WebSocket timing.
const (
	wsPongWait     = 60 * time.Second // a socket silent this long (no pong) is closed
	wsPingInterval = 25 * time.Second
	wsWriteWait    = 10 * time.Second
)

// wsMessage is every message of the protocol.
type wsMessage struct {
	Type             string  `json:"type"`
	SDP              string  `json:"sdp,omitempty"`
	ID               string  `json:"id,omitempty"`
	Candidate        *string `json:"candidate,omitempty"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *int    `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
	Message          string  `json:"message,omitempty"`
}

// wsConns tracks the open sockets so Close can end them.
type wsConns struct {
	mu     sync.Mutex
	conns  map[*websocket.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (h *Handler) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || h.p.AllowOrigin == "*" {
		return true
	}
	if h.p.AllowOrigin != "" && origin == h.p.AllowOrigin {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// serveWS upgrades the request and runs the socket's session.
func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request, rt route) {
	if !websocket.IsWebSocketUpgrade(r) {
		httpError(w, http.StatusBadRequest, "a WebSocket upgrade is expected")
		return
	}
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, CheckOrigin: h.checkOrigin,
		HandshakeTimeout: wsWriteWait}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	h.ws.mu.Lock()
	if h.ws.closed {
		h.ws.mu.Unlock()
		conn.Close()
		return
	}
	if h.ws.conns == nil {
		h.ws.conns = map[*websocket.Conn]struct{}{}
	}
	h.ws.conns[conn] = struct{}{}
	h.ws.wg.Add(1)
	h.ws.mu.Unlock()
	defer func() {
		h.ws.mu.Lock()
		delete(h.ws.conns, conn)
		h.ws.mu.Unlock()
		h.ws.wg.Done()
	}()
	s := &wsSession{h: h, conn: conn, stream: rt.stream, remote: r.RemoteAddr, peerDone: make(chan (<-chan struct{}), 1)}
	s.run(r)
}

// Close closes every WebSocket (their sessions end) and waits for them.
func (h *Handler) Close() {
	h.ws.mu.Lock()
	h.ws.closed = true
	for c := range h.ws.conns {
		c.Close()
	}
	h.ws.mu.Unlock()
	h.ws.wg.Wait()
}

type wsSession struct {
	h        *Handler
	conn     *websocket.Conn
	stream   string
	remote   string
	id       string
	peerDone chan (<-chan struct{})
}

func (s *wsSession) run(r *http.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		s.conn.Close()
		wg.Wait()
		if s.id != "" && s.h.p.WebRTC != nil {
			s.h.p.WebRTC.Remove(s.stream, s.id) //nolint:errcheck // may be gone already
		}
	}()
	if status := s.h.admit(r, s.stream); status != 0 {
		s.fatal(websocket.ClosePolicyViolation, http.StatusText(status))
		return
	}
	if s.h.p.WebRTC == nil {
		s.fatal(websocket.CloseTryAgainLater, "WebRTC is not available on this server")
		return
	}
	s.conn.SetReadLimit(s.h.p.MaxBody)
	s.conn.SetReadDeadline(time.Now().Add(wsPongWait)) //nolint:errcheck
	s.conn.SetPongHandler(func(string) error {
		return s.conn.SetReadDeadline(time.Now().Add(wsPongWait))
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.keepalive(ctx)
	}()
	for {
		typ, b, err := s.conn.ReadMessage()
		if err != nil {
			return
		}
		s.conn.SetReadDeadline(time.Now().Add(wsPongWait)) //nolint:errcheck
		if typ != websocket.TextMessage {
			s.sendError("messages are JSON text frames")
			continue
		}
		var m wsMessage
		if err := json.Unmarshal(b, &m); err != nil {
			s.sendError("malformed JSON message")
			continue
		}
		switch m.Type {
		case "offer":
			s.offer(ctx, m)
			// The offer may have taken a while: count silence from now.
			s.conn.SetReadDeadline(time.Now().Add(wsPongWait)) //nolint:errcheck
		case "candidate":
			s.candidate(m)
		default:
			s.sendError("unknown message type " + strconv.Quote(m.Type))
		}
	}
}

// keepalive pings the client, closes the socket when the session ends on
// the server, and closes it when no session started within the offer
// timeout.
func (s *wsSession) keepalive(ctx context.Context) {
	t := time.NewTicker(wsPingInterval)
	defer t.Stop()
	noOffer := time.NewTimer(s.h.p.OfferTimeout)
	defer noOffer.Stop()
	var done <-chan struct{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-noOffer.C:
			s.h.log.Debug("websocket closed: no session", "stream", s.stream, "remote", s.remote,
				"after", s.h.p.OfferTimeout.String())
			s.conn.WriteControl(websocket.CloseMessage, //nolint:errcheck
				websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "no offer"), time.Now().Add(time.Second))
			s.conn.Close()
			return
		case d := <-s.peerDone:
			noOffer.Stop()
			done = d
		case <-done:
			s.conn.WriteControl(websocket.CloseMessage, //nolint:errcheck
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, "session ended"), time.Now().Add(time.Second))
			s.conn.Close()
			return
		case <-t.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
				s.conn.Close()
				return
			}
		}
	}
}

func (s *wsSession) offer(ctx context.Context, m wsMessage) {
	if s.id != "" {
		s.sendError("this socket already has a session")
		return
	}
	if strings.TrimSpace(m.SDP) == "" {
		s.sendError(webrtc.ErrBadOffer.Error())
		return
	}
	ans, err := s.h.p.WebRTC.Offer(ctx, webrtc.Offer{Stream: s.stream, SDP: m.SDP, Remote: s.remote})
	if err != nil {
		st, msg := s.h.offerError(err)
		if st != 0 {
			s.sendError(msg)
		}
		return
	}
	s.id = ans.ID
	if done, err := s.h.p.WebRTC.Done(s.stream, ans.ID); err == nil {
		s.peerDone <- done
	} else {
		s.sendError("the session ended during setup")
		s.id = ""
		return
	}
	s.send(wsMessage{Type: "answer", SDP: ans.SDP, ID: ans.ID})
}

func (s *wsSession) candidate(m wsMessage) {
	if s.id == "" {
		s.sendError("candidate before a successful offer")
		return
	}
	frag, err := candidateFrag(m)
	if err != nil {
		s.sendError(err.Error())
		return
	}
	if frag == "" {
		return // end of candidates
	}
	if err := s.h.p.WebRTC.Trickle(s.stream, s.id, frag); err != nil {
		if errors.Is(err, webrtc.ErrNoSession) {
			s.sendError("the session has ended")
			return
		}
		s.sendError(err.Error())
	}
}

// candidateFrag turns a candidate message into a trickle-ice-sdpfrag; ""
// for the end of candidates.
func candidateFrag(m wsMessage) (string, error) {
	bad := func(v string) bool { return strings.ContainsAny(v, "\r\n\x00") }
	if m.Candidate == nil {
		return "", errors.New("candidate message without candidate")
	}
	c := strings.TrimPrefix(strings.TrimSpace(*m.Candidate), "a=")
	if c == "" {
		return "", nil
	}
	if !strings.HasPrefix(c, "candidate:") || bad(c) {
		return "", errors.New("malformed candidate")
	}
	var b strings.Builder
	if u := m.UsernameFragment; u != nil && *u != "" {
		if bad(*u) {
			return "", errors.New("malformed usernameFragment")
		}
		b.WriteString("a=ice-ufrag:" + *u + "\r\n")
	}
	switch {
	case m.SDPMid != nil && *m.SDPMid != "":
		if bad(*m.SDPMid) {
			return "", errors.New("malformed sdpMid")
		}
		b.WriteString("a=mid:" + *m.SDPMid + "\r\n")
	case m.SDPMLineIndex != nil:
		i := *m.SDPMLineIndex
		if i < 0 || i > 15 {
			return "", errors.New("sdpMLineIndex out of range")
		}
		for range i + 1 {
			b.WriteString("m=video 9 UDP/TLS/RTP/SAVPF 0\r\n")
		}
	}
	b.WriteString("a=" + c + "\r\n")
	return b.String(), nil
}

func (s *wsSession) send(m wsMessage) {
	s.conn.SetWriteDeadline(time.Now().Add(wsWriteWait)) //nolint:errcheck
	if err := s.conn.WriteJSON(m); err != nil {
		s.conn.Close()
	}
}

func (s *wsSession) sendError(msg string) {
	s.send(wsMessage{Type: "error", Message: msg})
}

// fatal sends an error message and closes the socket with code.
func (s *wsSession) fatal(code int, msg string) {
	s.sendError(msg)
	s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, msg), //nolint:errcheck
		time.Now().Add(time.Second))
}
