// Package rtsp is the RTSP output of liveedge (and, in pull*.go, its RTSP
// origin client). The server plays rtsp://host:8554/<app>/<stream> with
// DESCRIBE, SETUP and PLAY over TCP (interleaved) or UDP unicast, for
// H.264 or H.265 video and AAC or Opus audio; the SDP carries the hub's
// codec configuration (sprop parameter sets, AudioSpecificConfig).
//
// # Packetize once, start on the keyframe
//
// Each stream is packetized into RTP once, by a feed: an internal hub
// subscriber that turns units into RTP packets as they arrive and appends
// them to a ring (cache.Ring, with the hub's GOP bounds). Every viewer
// reads that ring through its own cursor, joining at the newest cached
// keyframe, so its first video frame is a keyframe and arrives at once.
// gortsplib's ServerStream only sends what is written after PLAY, to every
// reader at once, so each viewer has its own ServerStream (its own SSRC,
// sender reports and write queue) fed by the viewer's goroutine; the shared
// packets are never written to: a viewer copies a packet's header to set
// its own sequence number, and gortsplib serialises that copy into the
// viewer's queue.
//
// # Slow viewers
//
// The feed never waits for a viewer. A viewer whose cursor falls out of the
// ring, or whose write queue overflows, skips to the next keyframe; one that
// stays behind for SlowViewerTimeout, or whose socket takes no data for
// WriteTimeout, is disconnected with a logged reason.
//
// # Admission
//
// DESCRIBE and the first SETUP of a session go through Hub.Admit, like
// every other protocol: the token is the URL query
// (rtsp://host:8554/live/x?expires=…&token=…), or RTSP Basic credentials
// with the expiry as the user name and the token as the password
// (rtsp://<expires>:<token>@host:8554/live/x). A URL token wins over
// credentials. Digest cannot carry a token (the server only sees a hash of
// it), so the challenge offers Basic only. A refusal without any token is a
// 401 with a Basic challenge, any other refusal a 403; a stream that does
// not start within the hub's start timeout is a 404.
package rtsp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
)

// Params configure a Server.
type Params struct {
	// Listen is the TCP address of RTSP ("127.0.0.1:0" picks a port; see
	// Server.Addr).
	Listen string
	// WrapListener, if set, wraps the TCP listener (a per-IP connection
	// rate limit, say).
	WrapListener func(net.Listener) net.Listener
	// UDPRTPAddress, if set, enables UDP unicast: RTP on this address and
	// RTCP on the next port. The port must be even; 0 picks a free pair
	// (see Server.UDPAddr).
	UDPRTPAddress string
	Hub           *hub.Hub
	Logger        *slog.Logger
	// GOP bounds each stream's ring of RTP packets (as the hub's).
	GOP cache.Limits
	// WriteTimeout: a viewer whose TCP connection takes no data for this
	// long is disconnected (default 10 s).
	WriteTimeout time.Duration
	// ReadTimeout: a connection that is not playing and sends nothing for
	// this long is closed (default 10 s).
	ReadTimeout time.Duration
	// SlowViewerTimeout: a viewer that stays behind (skipping frames) for
	// this long is disconnected (default 10 s).
	SlowViewerTimeout time.Duration
	// WriteQueueSize is each viewer's queue of packets (a power of two,
	// default 1024); a viewer whose queue overflows skips to the next
	// keyframe.
	WriteQueueSize int
	// SendBuffer caps each TCP connection's kernel send buffer (bytes):
	// less memory per viewer and a quicker verdict on one that stopped
	// reading. Zero means DefaultSendBuffer; a negative value leaves the
	// system's autotuning, which on Linux lets a viewer that never reads
	// hold up to net.ipv4.tcp_wmem's maximum (4 MiB) before a write blocks.
	SendBuffer int
	// FeedLinger is how long a stream's packetizer stays after its last
	// viewer left (default 5 s), so that DESCRIBE, SETUP and reconnects
	// find it warm.
	FeedLinger time.Duration
	// ExpiresParam and TokenParam name the auth query parameters (default
	// "expires" and "token"); Basic credentials are mapped onto them.
	ExpiresParam, TokenParam string
}

// Stats are the server's counters.
type Stats struct {
	Viewers    int    // viewers with a session now
	Feeds      int    // streams being packetized now
	Packetized uint64 // RTP packets made (once per stream)
	Sent       uint64 // RTP packets handed to viewers' queues (all viewers)
	Skips      uint64 // times a viewer skipped to a keyframe
	Dropped    uint64 // viewers disconnected for being slow
}

// DefaultSendBuffer is a TCP connection's send buffer unless Params say
// otherwise (the kernel doubles it): about 1 s of a 2 Mbit/s stream, and
// 20 Mbit/s at a 100 ms round trip.
const DefaultSendBuffer = 128 << 10

// Server is the RTSP listener.
type Server struct {
	p       Params
	log     *slog.Logger
	rs      *gortsplib.Server
	tcpAddr net.Addr
	udpAddr net.Addr

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	feeds   map[string]*outFeed
	viewers map[*gortsplib.ServerSession]*outViewer
	closed  bool

	stats struct {
		packetized, packetizeErrors, sent, skips, dropped, badRequests atomic.Uint64
	}
}

// errOutClosed: the server is closing.
var errOutClosed = errors.New("rtsp: server closed")

// Listen starts the server.
func Listen(p Params) (*Server, error) {
	if p.Hub == nil {
		return nil, errors.New("rtsp: no hub")
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.WriteTimeout <= 0 {
		p.WriteTimeout = 10 * time.Second
	}
	if p.ReadTimeout <= 0 {
		p.ReadTimeout = 10 * time.Second
	}
	if p.SlowViewerTimeout <= 0 {
		p.SlowViewerTimeout = 10 * time.Second
	}
	if p.WriteQueueSize <= 0 {
		p.WriteQueueSize = 1024
	}
	if p.FeedLinger <= 0 {
		p.FeedLinger = 5 * time.Second
	}
	if p.SendBuffer == 0 {
		p.SendBuffer = DefaultSendBuffer
	}
	if p.GOP.MaxLag <= 0 {
		p.GOP.MaxLag = 2 * time.Second
	}
	if p.TokenParam == "" {
		p.TokenParam = auth.DefaultTokenParam
	}
	if p.ExpiresParam == "" {
		p.ExpiresParam = auth.DefaultExpiresParam
	}
	s := &Server{p: p, log: p.Logger.With("proto", "rtsp"),
		feeds: map[string]*outFeed{}, viewers: map[*gortsplib.ServerSession]*outViewer{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	pre := map[string]net.PacketConn{} // UDP sockets opened here, handed to gortsplib
	rs := &gortsplib.Server{
		Handler:        &outHandler{s: s},
		RTSPAddress:    p.Listen,
		ReadTimeout:    p.ReadTimeout,
		WriteTimeout:   p.WriteTimeout,
		WriteQueueSize: p.WriteQueueSize,
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			s.tcpAddr = ln.Addr()
			if p.WrapListener != nil {
				ln = p.WrapListener(ln)
			}
			return &outListener{Listener: ln, sendBuffer: p.SendBuffer, idle: p.ReadTimeout}, nil
		},
		ListenPacket: func(network, address string) (net.PacketConn, error) {
			if c, ok := pre[address]; ok {
				delete(pre, address)
				return c, nil
			}
			return net.ListenPacket(network, address)
		},
	}
	if p.UDPRTPAddress != "" {
		rtpAddr, rtcpAddr, err := outUDPPair(p.UDPRTPAddress, pre)
		if err != nil {
			s.cancel()
			return nil, err
		}
		rs.UDPRTPAddress, rs.UDPRTCPAddress = rtpAddr, rtcpAddr
	}
	if err := rs.Start(); err != nil {
		for _, c := range pre {
			c.Close()
		}
		s.cancel()
		return nil, fmt.Errorf("rtsp: %w", err)
	}
	s.rs = rs
	if rs.UDPRTPAddress != "" {
		s.udpAddr, _ = net.ResolveUDPAddr("udp", rs.UDPRTPAddress)
	}
	if s.udpAddr != nil {
		s.log.Info("listening", "addr", s.tcpAddr.String(), "udp_rtp", s.udpAddr.String())
	} else {
		s.log.Info("listening", "addr", s.tcpAddr.String(), "udp", "off")
	}
	return s, nil
}

// outUDPPair returns the RTP and RTCP addresses of rtpAddr. For port 0 it
// opens a free even/odd pair of ports and leaves the sockets in pre, for
// gortsplib to take.
func outUDPPair(rtpAddr string, pre map[string]net.PacketConn) (string, string, error) {
	host, port, err := net.SplitHostPort(rtpAddr)
	if err != nil {
		return "", "", fmt.Errorf("rtsp: udp address %q: %w", rtpAddr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65534 || n%2 != 0 {
		return "", "", fmt.Errorf("rtsp: udp RTP port %q must be even, in 0..65534", port)
	}
	if n != 0 {
		return rtpAddr, net.JoinHostPort(host, strconv.Itoa(n+1)), nil
	}
	for range 100 {
		c1, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", "", fmt.Errorf("rtsp: %w", err)
		}
		p := c1.LocalAddr().(*net.UDPAddr).Port
		if p%2 != 0 || p >= 65535 {
			c1.Close()
			continue
		}
		a2 := net.JoinHostPort(host, strconv.Itoa(p+1))
		c2, err := net.ListenPacket("udp", a2)
		if err != nil {
			c1.Close()
			continue
		}
		a1 := net.JoinHostPort(host, strconv.Itoa(p))
		pre[a1], pre[a2] = c1, c2
		return a1, a2, nil
	}
	return "", "", errors.New("rtsp: no free UDP port pair")
}

// outListener sets up accepted connections.
type outListener struct {
	net.Listener
	sendBuffer int
	idle       time.Duration
}

func (l *outListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true) //nolint:errcheck // best effort
		if l.sendBuffer > 0 {
			tc.SetWriteBuffer(l.sendBuffer) //nolint:errcheck // best effort
		}
	}
	return &outConn{Conn: c, idle: l.idle}, nil
}

// outConn bounds how long a connection that is not playing may take to
// send each request. gortsplib never times out reads on a connection that
// has no playing session, so a client that connects and sends nothing, or
// garbage without a line end, would otherwise be kept forever. The
// deadline is set when the connection starts waiting for a request and is
// renewed only once the request's header has ended (a blank line), not on
// every read: a client that trickles a request a byte at a time is closed
// too. Once PLAY was answered on the connection, reads are left to
// gortsplib (a TCP viewer may send nothing for a long time).
type outConn struct {
	net.Conn
	idle    time.Duration
	playing atomic.Bool
	armed   atomic.Bool // a read deadline of ours is set

	// Only Read uses these (gortsplib reads from one goroutine).
	inRequest bool   // the deadline of the request being read is set
	tail      uint32 // the last bytes read, to find a header's end
}

func (c *outConn) Read(b []byte) (int, error) {
	if c.playing.Load() {
		if c.armed.Swap(false) {
			c.Conn.SetReadDeadline(time.Time{}) //nolint:errcheck // a failed conn fails the read
		}
		return c.Conn.Read(b)
	}
	if !c.inRequest {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle)) //nolint:errcheck // as above
		c.armed.Store(true)
		c.inRequest = true
	}
	n, err := c.Conn.Read(b)
	for _, x := range b[:n] {
		c.tail = c.tail<<8 | uint32(x)
		if c.tail == 0x0d0a0d0a || c.tail&0xffff == 0x0a0a {
			c.inRequest = false // the next read waits for a new request
		}
	}
	return n, err
}

// SetReadDeadline ignores gortsplib's "no deadline" while not playing.
func (c *outConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() && !c.playing.Load() {
		return nil
	}
	c.armed.Store(false)
	return c.Conn.SetReadDeadline(t)
}

// markPlaying lifts the idle bound of a connection PLAY was answered on.
func outMarkPlaying(sc *gortsplib.ServerConn) {
	if c, ok := sc.NetConn().(*outConn); ok {
		c.playing.Store(true)
	}
}

// Addr returns the RTSP (TCP) address.
func (s *Server) Addr() net.Addr { return s.tcpAddr }

// UDPAddr returns the UDP RTP address, or nil without UDP.
func (s *Server) UDPAddr() net.Addr { return s.udpAddr }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Viewers: len(s.viewers), Feeds: len(s.feeds)}
	s.mu.Unlock()
	st.Packetized = s.stats.packetized.Load()
	st.Sent = s.stats.sent.Load()
	st.Skips = s.stats.skips.Load()
	st.Dropped = s.stats.dropped.Load()
	return st
}

// Close ends every session, stops every feed and waits for their
// goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	// Cancel first: requests waiting for a stream to start return, so
	// gortsplib's connections can end.
	s.cancel()
	s.rs.Close() // each session's OnSessionClose closes its viewer
	s.mu.Lock()
	viewers := make([]*outViewer, 0, len(s.viewers))
	for ss, v := range s.viewers {
		viewers = append(viewers, v)
		delete(s.viewers, ss)
	}
	feeds := make([]*outFeed, 0, len(s.feeds))
	for name, f := range s.feeds {
		feeds = append(feeds, f)
		delete(s.feeds, name)
		s.unlingerLocked(f)
	}
	s.mu.Unlock()
	for _, v := range viewers {
		v.close("server closing")
	}
	for _, f := range feeds {
		f.stop()
	}
	s.wg.Wait()
}

// acquireFeed returns the stream's feed, starting it (and waiting for the
// stream to start, bounded by the hub's start timeout) when there is none.
// Each successful call is paired with releaseFeed.
func (s *Server) acquireFeed(ctx context.Context, name string) (*outFeed, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errOutClosed
	}
	if f := s.liveFeedLocked(name); f != nil {
		f.refs++
		s.unlingerLocked(f)
		s.mu.Unlock()
		return f, nil
	}
	s.mu.Unlock()
	// Subscribing may wait for the stream: not under the lock.
	sub, err := s.p.Hub.Subscribe(ctx, name, hub.Session{Protocol: "rtsp", Remote: "feed", Internal: true})
	if err != nil {
		return nil, err
	}
	tracks := sub.Tracks()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sub.Close()
		return nil, errOutClosed
	}
	if f := s.liveFeedLocked(name); f != nil {
		f.refs++
		s.unlingerLocked(f)
		s.mu.Unlock()
		sub.Close() // another viewer started one meanwhile
		return f, nil
	}
	f, err := newOutFeed(s, name, sub, tracks)
	if err != nil {
		s.mu.Unlock()
		sub.Close()
		return nil, err
	}
	f.refs = 1
	s.feeds[name] = f
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f.run()
	}()
	s.mu.Unlock()
	// The feed starts on the hub's cached keyframe: give it the moment it
	// needs to packetize that GOP, so this viewer joins on it instead of
	// waiting for the next keyframe.
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-f.ready:
	case <-t.C:
	case <-ctx.Done():
	}
	return f, nil
}

// liveFeedLocked returns the stream's running feed, or nil.
func (s *Server) liveFeedLocked(name string) *outFeed {
	f := s.feeds[name]
	if f == nil {
		return nil
	}
	select {
	case <-f.done:
		delete(s.feeds, name)
		s.unlingerLocked(f)
		return nil
	default:
		return f
	}
}

// unlingerLocked stops a feed's linger timer.
func (s *Server) unlingerLocked(f *outFeed) {
	if f.linger != nil {
		if f.linger.Stop() {
			s.wg.Done() // the timer's function will not run
		}
		f.linger = nil
	}
}

// releaseFeed drops a reference; the last one arms the linger timer,
// after which the feed stops if nobody took it again.
func (s *Server) releaseFeed(f *outFeed) {
	s.mu.Lock()
	f.refs--
	if f.refs > 0 {
		s.mu.Unlock()
		return
	}
	if s.closed || s.feeds[f.name] != f {
		if s.feeds[f.name] == f {
			delete(s.feeds, f.name)
		}
		s.mu.Unlock()
		f.stop()
		return
	}
	s.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(s.p.FeedLinger, func() {
		defer s.wg.Done()
		s.mu.Lock()
		if f.linger != t || f.refs > 0 {
			s.mu.Unlock()
			return
		}
		f.linger = nil
		if s.feeds[f.name] == f {
			delete(s.feeds, f.name)
		}
		s.mu.Unlock()
		f.stop()
	})
	f.linger = t
	s.mu.Unlock()
}

// outRequest is what admission needs from a request.
type outRequest struct {
	req      *base.Request
	path     string
	rawQuery string
	conn     *gortsplib.ServerConn
	method   string
}

func (r outRequest) remote() string {
	if r.conn == nil {
		return ""
	}
	return r.conn.NetConn().RemoteAddr().String()
}

// admit checks the stream name and runs the hub's admission. It returns
// the stream name, or the response refusing the request.
func (s *Server) admit(r outRequest) (string, *base.Response) {
	name := strings.Trim(r.path, "/")
	log := s.log.With("remote", r.remote(), "method", r.method)
	if !hub.ValidName(name) {
		log.Info("rtsp refused", "status", 404, "path", r.path, "reason", "invalid stream name")
		return "", &base.Response{StatusCode: base.StatusNotFound}
	}
	q, err := url.ParseQuery(r.rawQuery)
	if err != nil {
		log.Info("rtsp refused", "status", 400, "stream", name, "reason", "malformed query")
		return "", &base.Response{StatusCode: base.StatusBadRequest}
	}
	if user, pass, ok := outBasicCredentials(r.req.Header["Authorization"]); ok && q.Get(s.p.TokenParam) == "" {
		q.Set(s.p.ExpiresParam, user)
		q.Set(s.p.TokenParam, pass)
	}
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(r.remote()); err == nil {
		ip = ap.Addr().Unmap()
	}
	req := auth.Request{Action: auth.Play, Stream: name, Query: q, ClientIP: ip}
	if err := s.p.Hub.Admit(req, hub.Session{Protocol: "rtsp", Remote: r.remote()}); err != nil {
		// Never say why; the hub logged the reason.
		if q.Get(s.p.TokenParam) == "" {
			log.Info("rtsp refused", "status", 401, "stream", name)
			return "", &base.Response{StatusCode: base.StatusUnauthorized,
				Header: base.Header{"WWW-Authenticate": base.HeaderValue{`Basic realm="liveedge"`}}}
		}
		log.Info("rtsp refused", "status", 403, "stream", name)
		return "", &base.Response{StatusCode: base.StatusForbidden}
	}
	return name, nil
}

// outBasicCredentials returns the user and password of a Basic
// Authorization header.
func outBasicCredentials(v base.HeaderValue) (user, pass string, ok bool) {
	if len(v) != 1 {
		return "", "", false
	}
	scheme, rest, found := strings.Cut(strings.TrimSpace(v[0]), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(b), ":")
	if !ok {
		return "", "", false
	}
	return user, pass, true
}

// outStatus maps an error from the hub or a feed to a response.
func (s *Server) outStatus(err error, name string, r outRequest) *base.Response {
	code := base.StatusServiceUnavailable
	switch {
	case errors.Is(err, hub.ErrNotFound), errors.Is(err, hub.ErrStreamEnded), errors.Is(err, hub.ErrInvalidName),
		errors.Is(err, hub.ErrNoTracks):
		code = base.StatusNotFound
	case errors.Is(err, errOutCodec):
		code = base.StatusUnsupportedMediaType
	}
	s.log.Info("rtsp refused", "status", int(code), "stream", name, "remote", r.remote(), "method", r.method,
		"reason", err)
	return &base.Response{StatusCode: code}
}

// outHandler implements gortsplib's server callbacks.
type outHandler struct{ s *Server }

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *outHandler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	h.s.log.Debug("rtsp conn opened", "remote", ctx.Conn.NetConn().RemoteAddr().String())
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (h *outHandler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.log.Debug("rtsp conn closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "err", ctx.Error)
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose: the
// viewer of the session (if it got that far) is closed.
func (h *outHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s := h.s
	s.mu.Lock()
	v := s.viewers[ctx.Session]
	delete(s.viewers, ctx.Session)
	s.mu.Unlock()
	if v == nil {
		return
	}
	v.close(v.reasonFor(ctx.Error))
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe: admission, then
// the SDP of the stream's tracks (waiting for a stream that is starting).
func (h *outHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s := h.s
	r := outRequest{req: ctx.Request, path: ctx.Path, rawQuery: ctx.Query, conn: ctx.Conn, method: "DESCRIBE"}
	name, res := s.admit(r)
	if res != nil {
		return res, nil, nil
	}
	f, err := s.acquireFeed(s.ctx, name)
	if err != nil {
		return s.outStatus(err, name, r), nil, nil
	}
	defer s.releaseFeed(f) // it lingers, warm, for the SETUP that follows
	d, err := outDescribe(f.tracks.Load())
	if err != nil {
		return s.outStatus(err, name, r), nil, nil
	}
	body, err := d.session.Marshal(false)
	if err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK, Body: body}, nil, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup. The first SETUP of a
// session admits it and makes its viewer (registered with the hub, with
// its own ServerStream); the next ones return the same stream.
func (h *outHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s := h.s
	r := outRequest{req: ctx.Request, path: ctx.Path, rawQuery: ctx.Query, conn: ctx.Conn, method: "SETUP"}
	s.mu.Lock()
	v := s.viewers[ctx.Session]
	s.mu.Unlock()
	if v != nil {
		if strings.Trim(ctx.Path, "/") != v.name {
			return &base.Response{StatusCode: base.StatusBadRequest}, nil, nil
		}
		return &base.Response{StatusCode: base.StatusOK}, v.stream, nil
	}
	name, res := s.admit(r)
	if res != nil {
		return res, nil, nil
	}
	v, err := s.newViewer(name, ctx.Session, r, ctx.Transport)
	if err != nil {
		return s.outStatus(err, name, r), nil, nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		v.close("server closing")
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, nil
	}
	s.viewers[ctx.Session] = v
	s.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, v.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay. The viewer starts
// writing once the response is on its way (OnResponse): gortsplib makes
// the session a reader of its stream only after this returns.
func (h *outHandler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	s := h.s
	s.mu.Lock()
	v := s.viewers[ctx.Session]
	s.mu.Unlock()
	if v == nil {
		return &base.Response{StatusCode: base.StatusSessionNotFound}, nil
	}
	v.armPlay(ctx.Conn)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnResponse implements gortsplib.ServerHandlerOnResponse: after a
// successful PLAY, the session is an active reader of its stream, and its
// viewer may start.
func (h *outHandler) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	if res.StatusCode >= 400 {
		h.s.stats.badRequests.Add(1)
	}
	if res.StatusCode != base.StatusOK {
		return
	}
	ss := sc.Session()
	if ss == nil {
		return
	}
	h.s.mu.Lock()
	v := h.s.viewers[ss]
	h.s.mu.Unlock()
	if v != nil && v.startIfArmed(sc) {
		outMarkPlaying(sc)
	}
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError:
// a viewer's write queue is full. Its goroutine (which made the call)
// skips to the next keyframe.
func (h *outHandler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.mu.Lock()
	v := h.s.viewers[ctx.Session]
	h.s.mu.Unlock()
	if v != nil {
		v.overflow.Store(true)
	}
}

// OnDecodeError implements gortsplib.ServerHandlerOnDecodeError (RTCP
// from a viewer that does not parse): counted, not logged per packet.
func (h *outHandler) OnDecodeError(*gortsplib.ServerHandlerOnDecodeErrorCtx) {
	h.s.stats.badRequests.Add(1)
}
