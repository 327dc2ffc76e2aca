package flv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/internal/fanout"
	"github.com/liveedge/liveedge/protocols/internal/mediahttp"
)

// Params configure a Server.
type Params struct {
	Hub    *hub.Hub
	Logger *slog.Logger
	// AllowOrigin is the Access-Control-Allow-Origin value; "" sends no
	// CORS headers.
	AllowOrigin string
	// WriteTimeout: a viewer whose connection takes no data for this long
	// is dropped (default 10 s, the hub's slow-viewer timeout).
	WriteTimeout time.Duration
	// TokenParam is the auth query parameter (default "token"); a refusal
	// without it (and without a Bearer header) is a 401, any other a 403.
	TokenParam string
	// SendBuffer caps the kernel send buffer of a viewer's connection
	// (HTTP/1.1 and WebSocket over TCP): less memory per viewer and a
	// quicker verdict on one that stopped reading. Zero means
	// DefaultSendBuffer; a negative value leaves the system's autotuning,
	// which on Linux lets a viewer that never reads hold up to
	// net.ipv4.tcp_wmem's maximum (4 MiB) before a write blocks.
	SendBuffer int
}

// DefaultSendBuffer is a viewer socket's send buffer unless Params say
// otherwise (the kernel doubles it): about 1 s of a 2 Mbit/s stream, and
// 20 Mbit/s at a 100 ms round trip.
const DefaultSendBuffer = 128 << 10

// capSendBuffer applies Params.SendBuffer to a viewer's connection.
func (s *Server) capSendBuffer(c net.Conn) {
	if b, ok := c.(interface{ SetWriteBuffer(int) error }); ok && s.p.SendBuffer > 0 {
		b.SetWriteBuffer(s.p.SendBuffer) //nolint:errcheck // best effort
	}
}

// Server is the HTTP-FLV / WS-FLV handler for the paths Handles accepts.
type Server struct {
	p   Params
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool

	upgrader websocket.Upgrader
	fan      *fanout.Pool // the hijacked viewers' shared fast path
}

// New returns a Server; Close ends its viewers.
func New(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.WriteTimeout <= 0 {
		p.WriteTimeout = 10 * time.Second
	}
	if p.TokenParam == "" {
		p.TokenParam = auth.DefaultTokenParam
	}
	if p.SendBuffer == 0 {
		p.SendBuffer = DefaultSendBuffer
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{p: p, log: p.Logger.With("proto", "flv"), ctx: ctx, cancel: cancel}
	s.fan = fanout.New(ctx, fanout.Params{Hub: p.Hub, Protocol: "flv", Format: chunked})
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  32 << 10,
		WriteBufferPool:  &sync.Pool{},
		// The Referer/Origin allow-list is the admission call's job, made
		// before the upgrade; an admitted request is accepted.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s
}

// Close ends every viewer (HTTP and WebSocket) and waits for them.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.fan.Close()
}

func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// ServeHTTP serves GET /<app>/<stream>.flv and .live.flv, over HTTP or,
// for an upgrade request, WebSocket.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := parsePath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	mediahttp.CORS(w.Header(), s.p.AllowOrigin)
	if !mediahttp.Methods(w, r, s.p.AllowOrigin, "Authorization") {
		return
	}
	ws := websocket.IsWebSocketUpgrade(r)
	proto := "flv"
	if ws {
		proto = "ws-flv"
	}
	if status := s.admit(r, name, proto); status != 0 {
		// Never say why; the hub logged the reason.
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="liveedge"`)
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	if !s.enter() {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	sub, err := s.p.Hub.Subscribe(ctx, name, hub.Session{Protocol: proto, Remote: r.RemoteAddr})
	if err != nil {
		switch {
		case errors.Is(err, hub.ErrNotFound), errors.Is(err, hub.ErrStreamEnded), errors.Is(err, hub.ErrInvalidName):
			http.NotFound(w, r)
		case r.Context().Err() != nil:
			// The client left.
		default:
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		}
		return
	}
	defer sub.Close()
	if r.Method == http.MethodHead && !ws {
		setHeaders(w)
		w.WriteHeader(http.StatusOK)
		return
	}
	log := s.log.With("stream", name, "remote", r.RemoteAddr, "via", proto)
	start := time.Now()
	log.Info("playing")
	switch {
	case ws:
		err = s.serveWS(ctx, cancel, w, r, sub)
	case hijackable(r):
		err = s.serveConn(ctx, cancel, w, sub)
	default:
		err = s.serveHTTP(ctx, w, sub)
	}
	lvl := slog.LevelInfo
	if errors.Is(err, hub.ErrSlowViewer) || isTimeout(err) {
		lvl = slog.LevelWarn
	}
	log.Log(context.Background(), lvl, "player left", "reason", s.reason(err, r),
		"duration", time.Since(start).Round(time.Millisecond), "dropped", sub.Dropped())
}

// admit runs the hub's admission: 0 when admitted, 401 when no token was
// given, 403 for any other refusal.
func (s *Server) admit(r *http.Request, stream, proto string) int {
	req := auth.FromHTTP(r, auth.Play, stream)
	if err := s.p.Hub.Admit(req, hub.Session{Protocol: proto, Remote: r.RemoteAddr}); err != nil {
		if req.Bearer == "" && req.Query.Get(s.p.TokenParam) == "" {
			return http.StatusUnauthorized
		}
		return http.StatusForbidden
	}
	return 0
}

// serveHTTP streams over the ResponseWriter's chunked body (HTTP/2, TLS,
// or a ResponseWriter that cannot be hijacked).
func (s *Server) serveHTTP(ctx context.Context, w http.ResponseWriter, sub *hub.Subscriber) error {
	setHeaders(w)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var deadlineSet time.Time
	return s.loop(ctx, sub, func(bufs net.Buffers) error {
		if now := time.Now(); now.Sub(deadlineSet) > s.p.WriteTimeout/4 {
			if err := rc.SetWriteDeadline(now.Add(s.p.WriteTimeout)); err != nil {
				return err
			}
			deadlineSet = now
		}
		for _, b := range bufs {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return rc.Flush()
	})
}

// setHeaders sets the headers of a streaming FLV response (chunked: no
// Content-Length).
func setHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "video/x-flv")
	h.Set("Cache-Control", "no-cache")
}

// serveWS upgrades and sends one binary message per batch.
func (s *Server) serveWS(ctx context.Context, cancel context.CancelFunc, w http.ResponseWriter, r *http.Request,
	sub *hub.Subscriber) error {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return err // the upgrader answered the client
	}
	conn.SetReadLimit(4096)
	s.capSendBuffer(conn.NetConn())
	read := make(chan struct{})
	var readErr error // why the player's side ended; read once read is closed
	go func() {
		defer close(read)
		defer cancel()
		for {
			if _, _, err := conn.NextReader(); err != nil {
				readErr = err
				return
			}
		}
	}()
	// Server.Close does not wait a whole write timeout for a viewer whose
	// socket is full: its pending write gets a second more, then the
	// connection is closed under it (gorilla sets its own deadline on the
	// connection at every write, so a deadline alone may not hold).
	nc := conn.NetConn()
	stop := context.AfterFunc(s.ctx, func() {
		nc.SetWriteDeadline(time.Now().Add(time.Second)) //nolint:errcheck // best effort
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			nc.Close()
		case <-read: // closed already
		}
	})
	defer stop()
	var deadlineSet time.Time
	err = s.loop(ctx, sub, func(bufs net.Buffers) error {
		if now := time.Now(); now.Sub(deadlineSet) > s.p.WriteTimeout/4 {
			conn.SetWriteDeadline(now.Add(s.p.WriteTimeout))
			deadlineSet = now
		}
		mw, err := conn.NextWriter(websocket.BinaryMessage)
		if err != nil {
			return err
		}
		for _, b := range bufs {
			if _, err := mw.Write(b); err != nil {
				return err
			}
		}
		return mw.Close()
	})
	if errors.Is(err, hub.ErrStreamEnded) {
		conn.WriteControl(websocket.CloseMessage, //nolint:errcheck // closing anyway
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, "stream ended"), time.Now().Add(time.Second))
	}
	conn.Close()
	<-read
	if err != nil && s.ctx.Err() == nil && badMessage(readErr) && !isTimeout(err) &&
		!errors.Is(err, hub.ErrSlowViewer) && !errors.Is(err, hub.ErrStreamEnded) {
		// The player broke the protocol or sent too much, which ended the
		// writes too (cancelled, or the close frame sent meanwhile): say
		// so rather than "closed by player".
		err = fmt.Errorf("player sent a bad WebSocket message: %w", readErr)
	}
	return err
}

// badMessage reports whether err, from reading a WS-FLV player's
// messages, is a protocol error or an oversized message rather than the
// player closing or the connection going away.
func badMessage(err error) bool {
	if errors.Is(err, websocket.ErrReadLimit) {
		return true
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return false // the player closed, whatever its code
	}
	var ne net.Error
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne) {
		return false
	}
	return true // gorilla's protocol errors ("bad opcode", "unexpected continuation", …)
}

// loop writes the stream to one viewer until it ends or a write fails.
func (s *Server) loop(ctx context.Context, sub *hub.Subscriber, write func(net.Buffers) error) error {
	batch := make([]*hub.Unit, 0, 64)
	bufs := make(net.Buffers, 0, 72)
	var cur *hub.Tracks
	for {
		units, err := sub.Next(ctx, batch)
		if err != nil {
			return err
		}
		var n int
		bufs, cur, n = plain.Append(bufs[:0], cur, units)
		if n == 0 {
			continue
		}
		if err := write(bufs); err != nil {
			return err
		}
		sub.CountOut(n)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *Server) reason(err error, r *http.Request) string {
	switch {
	case err == nil:
		return "done"
	case s.ctx.Err() != nil:
		return "server closing"
	case isTimeout(err):
		return "write timeout (slow viewer)"
	case errors.Is(err, hub.ErrSlowViewer):
		return "too far behind (slow viewer)"
	case errors.Is(err, hub.ErrStreamEnded):
		return "stream ended"
	case errors.Is(err, context.Canceled), r.Context().Err() != nil, errors.Is(err, io.EOF),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed),
		errors.Is(err, websocket.ErrCloseSent):
		return "closed by player"
	}
	return err.Error()
}
