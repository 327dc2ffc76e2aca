// Package rtmp serves RTMP publish and play on top of the hub. Ingest goes
// through gortmplib's reader (legacy and enhanced RTMP); play output is
// chunked once per stream and the same bytes are written to every player.
package rtmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/internal/fanout"
)

// Params configure a Server.
type Params struct {
	Listen string
	Hub    *hub.Hub
	Logger *slog.Logger
	// WrapListener, if set, wraps the TCP listener (a per-IP connection
	// rate limit, say).
	WrapListener func(net.Listener) net.Listener
	// HandshakeTimeout bounds the handshake and the commands before play
	// or publish; ReadTimeout bounds the wait for a publisher's next
	// message; WriteTimeout bounds one write to a player (a player that
	// cannot take a write for this long is disconnected).
	HandshakeTimeout time.Duration
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	// SendBuffer caps a player socket's kernel send buffer (bytes): less
	// memory per player and a quicker verdict on a player that stopped
	// reading. Zero means DefaultSendBuffer; a negative value leaves the
	// system's autotuning, which on Linux lets a player that never reads
	// hold up to net.ipv4.tcp_wmem's maximum (4 MiB) before a write blocks.
	SendBuffer int
}

// DefaultSendBuffer is a player socket's send buffer unless Params say
// otherwise (the kernel doubles it): about 1 s of a 2 Mbit/s stream, and
// 20 Mbit/s at a 100 ms round trip.
const DefaultSendBuffer = 128 << 10

// Server is the RTMP listener.
type Server struct {
	p   Params
	log *slog.Logger
	ln  net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	fan *fanout.Pool // the players' shared fast path
}

// Listen starts the server.
func Listen(p Params) (*Server, error) {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.HandshakeTimeout <= 0 {
		p.HandshakeTimeout = 10 * time.Second
	}
	if p.ReadTimeout <= 0 {
		p.ReadTimeout = 10 * time.Second
	}
	if p.WriteTimeout <= 0 {
		p.WriteTimeout = 10 * time.Second
	}
	if p.SendBuffer == 0 {
		p.SendBuffer = DefaultSendBuffer
	}
	ln, err := net.Listen("tcp", p.Listen)
	if err != nil {
		return nil, fmt.Errorf("rtmp: %w", err)
	}
	if p.WrapListener != nil {
		ln = p.WrapListener(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{p: p, log: p.Logger.With("proto", "rtmp"), ln: ln, ctx: ctx, cancel: cancel,
		conns: map[net.Conn]struct{}{}}
	s.fan = fanout.New(ctx, fanout.Params{Hub: p.Hub, Protocol: "rtmp", Format: format})
	s.wg.Add(1)
	go s.acceptLoop()
	s.log.Info("listening", "addr", ln.Addr().String())
	return s, nil
}

// Addr returns the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (s *Server) Close() {
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.fan.Close()
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Error("accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
			nc.Close()
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) handle(nc net.Conn) {
	log := s.log.With("remote", nc.RemoteAddr().String())
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	nc.SetDeadline(time.Now().Add(s.p.HandshakeTimeout))
	guard := newChunkGuard(nc, budgetConnect)
	sc := &gortmplib.ServerConn{RW: guard}
	if err := sc.Initialize(); err != nil {
		if errors.Is(err, ErrEncrypted) {
			log.Info("refused", "err", err)
		} else {
			log.Debug("handshake failed", "err", err)
		}
		return
	}
	if err := sc.AcceptConn(); err != nil {
		log.Debug("connect failed", "err", err)
		return
	}
	name, ok := streamName(sc.URL)
	action := auth.Play
	if sc.Publish {
		action = auth.Publish
	}
	log = log.With("stream", name, "action", action.String())
	if !ok {
		log.Warn("refused: invalid stream name", "path", sc.URL.Path)
		writeStatus(sc, "error", statusCode(sc.Publish, "BadName"), "invalid stream name")
		return
	}
	sess := hub.Session{Protocol: "rtmp", Remote: nc.RemoteAddr().String()}
	req := auth.Request{Action: action, Stream: name, Query: sc.URL.Query(), ClientIP: remoteIP(nc)}
	if err := s.p.Hub.Admit(req, sess); err != nil {
		sc.RejectAction()
		return
	}
	guard.setBudget(budgetMedia)
	if sc.Publish {
		s.publish(log, nc, sc, name, sess)
		return
	}
	s.play(log, nc, sc, name, sess)
}

func statusCode(publish bool, what string) string {
	if publish {
		return "NetStream.Publish." + what
	}
	return "NetStream.Play." + what
}

// writeStatus sends an onStatus command on the play/publish stream.
func writeStatus(sc *gortmplib.ServerConn, level, code, desc string) {
	sc.Write(&message.CommandAMF0{ //nolint:errcheck // best effort before closing
		ChunkStreamID:   csidData,
		MessageStreamID: 0x1000000,
		Name:            "onStatus",
		Arguments: []any{nil, amf0.Object{
			{Key: "level", Value: level},
			{Key: "code", Value: code},
			{Key: "description", Value: desc},
		}},
	})
}

// streamName extracts "app/stream" from the URL made of tcUrl and the
// stream key.
func streamName(u *url.URL) (string, bool) {
	if u == nil {
		return "", false
	}
	name := strings.Trim(u.Path, "/")
	return name, hub.ValidName(name)
}

func remoteIP(nc net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
