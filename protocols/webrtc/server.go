// Package webrtc is the WebRTC media plane of liveedge: one UDP port for
// every peer (ICE through a UDP mux), H.264 (and Opus) packetized into RTP
// once per stream, and per-peer senders that add only their own headers
// and SRTP. Signalling (WHEP, the ZLMediaKit-style API) lives in package
// signaling, which calls Offer, Trickle and Remove.
//
// A new peer starts on the stream's cached keyframe: the GOP up to live is
// sent at once with compressed timestamps (1 ms apart), so the browser
// decodes it in a burst and shows the newest frame without lagging a GOP
// behind; live frames then follow at their own pace. A PLI from a viewer
// is answered the same way from the cache, never forwarded upstream.
package webrtc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
)

// Errors of Offer, Trickle and Remove. Signalling maps them to statuses.
var (
	// ErrBadOffer: the offer is not a usable SDP offer.
	ErrBadOffer = errors.New("malformed SDP offer")
	// ErrNoH264: the offer cannot receive H.264 video.
	ErrNoH264 = errors.New("offer has no H.264 video (packetization-mode=1) to receive")
	// ErrStreamCodec: the stream's video is not H.264.
	ErrStreamCodec = errors.New("stream video is not H.264, which WebRTC output needs")
	// ErrNoSession: no peer has that id (on that stream).
	ErrNoSession = errors.New("no such WebRTC session")
	// ErrBadFragment: a trickle fragment could not be applied.
	ErrBadFragment = errors.New("malformed trickle ICE fragment")
	// ErrClosed: the server is closed.
	ErrClosed = errors.New("webrtc: server closed")
	// errClosedEarly: the peer failed or the server closed during setup.
	errClosedEarly = errors.New("webrtc: session closed during setup")
	// ErrTooManyPeers: the peer limit is reached.
	ErrTooManyPeers = errors.New("webrtc: too many peers")
)

// Params configure a Server.
type Params struct {
	Hub    *hub.Hub
	Logger *slog.Logger
	// UDPHost is the IP address the UDP port is bound to; "" binds every
	// interface (one socket per local address, all on UDPPort).
	UDPHost string
	// UDPPort is the one UDP port of all ICE traffic; 0 picks a free one
	// (with UDPHost set), see Server.UDPAddr.
	UDPPort int
	// TCPPort, if not 0, is the one TCP port of ICE-TCP, the fallback for
	// clients that cannot use UDP (passive candidates, on UDPHost or every
	// interface). A port that cannot be opened is logged and ICE-TCP is
	// off; UDP works on.
	TCPPort int
	// PublicIPs replace the host candidates' addresses (1:1 NAT).
	PublicIPs []string
	// Interfaces, if not empty, limits host candidates to these network
	// interfaces; HostIPs, if not empty, to addresses in these prefixes.
	Interfaces []string
	HostIPs    []netip.Prefix
	// Remote filters the clients' candidates.
	Remote CandidatePolicy
	// ICEServers are the STUN/TURN URLs advertised to clients (the
	// server itself only offers host candidates on its one port).
	ICEServers []string
	// PeerTimeout: a peer whose ICE has not connected this long after its
	// answer, or has lost connectivity for this long, is removed (default
	// 10 s).
	PeerTimeout time.Duration
	// GatherTimeout bounds the wait for ICE gathering before the answer
	// (default 2 s).
	GatherTimeout time.Duration
	// StartDelay is how long a peer waits after its DTLS handshake before
	// the first packet (default 100 ms; negative: none). The server is the
	// DTLS client, so the viewer's side completes first, but a receiver
	// may still be opening its SRTP streams for a moment, and receivers
	// drop what arrives before: without the delay the cached keyframe can
	// be lost and the viewer waits for a PLI round trip. 20 ms was enough
	// for peers joining one at a time; ten pion peers joining at once on a
	// loaded 2-core machine lost the keyframe most of the time below
	// 100 ms.
	StartDelay time.Duration
	// GOP bounds each stream's ring of RTP frames (as the hub's).
	GOP cache.Limits
	// NACKHistory is how many video packets back each peer can resend on a
	// NACK (default 512, rounded up to a power of two: about 2.5 s of a
	// 2 Mbit/s stream). The history holds the stream's shared payloads,
	// not copies: a few dozen bytes per packet and peer.
	NACKHistory uint16
	// MaxPeers limits the peers of the server (default 0: no limit).
	MaxPeers int
}

// Server is the WebRTC output.
type Server struct {
	p      Params
	log    *slog.Logger
	api    *webrtc.API
	mux    ice.UDPMux
	tcpMux ice.TCPMux // nil: no ICE-TCP
	tcpLn  net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	peers  map[string]*peer
	feeds  map[string]*feed
	closed bool

	stats struct {
		created, removed, dead, plis, nacks, resent, keyResends atomic.Uint64
	}
}

// New opens the UDP port and returns a running Server; Close stops it.
func New(p Params) (*Server, error) {
	if p.Hub == nil {
		return nil, errors.New("webrtc: no hub")
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.PeerTimeout <= 0 {
		p.PeerTimeout = 10 * time.Second
	}
	if p.GatherTimeout <= 0 {
		p.GatherTimeout = 2 * time.Second
	}
	if p.StartDelay == 0 {
		p.StartDelay = 100 * time.Millisecond
	}
	if p.NACKHistory == 0 {
		p.NACKHistory = 512
	}
	if p.GOP.MaxLag <= 0 {
		p.GOP.MaxLag = 2 * time.Second
	}
	s := &Server{p: p, log: p.Logger.With("proto", "webrtc"), peers: map[string]*peer{}, feeds: map[string]*feed{}}
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.listenTCP()
	api, err := s.newAPI()
	if err != nil {
		s.mux.Close()
		s.closeTCP()
		return nil, err
	}
	s.api = api
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// listen opens the UDP mux.
func (s *Server) listen() error {
	plog := pionLoggerFactory{log: s.log}
	if s.p.UDPHost != "" {
		ip, err := netip.ParseAddr(s.p.UDPHost)
		if err != nil {
			return fmt.Errorf("webrtc: udp host %q is not an IP address", s.p.UDPHost)
		}
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(s.p.UDPPort))))
		if err != nil {
			return fmt.Errorf("webrtc: %w", err)
		}
		s.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: plog.NewLogger("udpmux"), UDPConn: conn})
		return nil
	}
	opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLogger(plog.NewLogger("udpmux"))}
	if f := s.interfaceFilter(); f != nil {
		opts = append(opts, ice.UDPMuxFromPortWithInterfaceFilter(f))
	}
	if f := s.ipFilter(); f != nil {
		opts = append(opts, ice.UDPMuxFromPortWithIPFilter(f))
	}
	mux, err := ice.NewMultiUDPMuxFromPort(s.p.UDPPort, opts...)
	if err != nil {
		return fmt.Errorf("webrtc: udp port %d: %w", s.p.UDPPort, err)
	}
	s.mux = mux
	return nil
}

// listenTCP opens the ICE-TCP port, if one is configured.
func (s *Server) listenTCP() {
	if s.p.TCPPort == 0 {
		return
	}
	addr := &net.TCPAddr{Port: s.p.TCPPort}
	if s.p.UDPHost != "" {
		addr.IP = net.ParseIP(s.p.UDPHost)
	}
	ln, err := net.ListenTCP("tcp", addr)
	if err != nil {
		s.log.Error("ICE-TCP off: cannot open its port", "port", s.p.TCPPort, "err", err)
		return
	}
	plog := pionLoggerFactory{log: s.log}
	s.tcpLn = ln
	s.tcpMux = webrtc.NewICETCPMux(plog.NewLogger("tcpmux"), ln, 16)
	s.p.Logger.Info("listening", "proto", "webrtc-tcp", "addr", ln.Addr().String())
}

func (s *Server) closeTCP() {
	if s.tcpMux != nil {
		s.tcpMux.Close()
		s.tcpLn.Close()
	}
}

// TCPAddr returns the ICE-TCP listener's address, nil when ICE-TCP is off.
func (s *Server) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

func (s *Server) interfaceFilter() func(string) bool {
	if len(s.p.Interfaces) == 0 {
		return nil
	}
	return func(name string) bool {
		for _, n := range s.p.Interfaces {
			if n == name {
				return true
			}
		}
		return false
	}
}

func (s *Server) ipFilter() func(net.IP) bool {
	if len(s.p.HostIPs) == 0 {
		return nil
	}
	return func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return false
		}
		for _, p := range s.p.HostIPs {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
}

// UDPAddr returns the local address of the UDP port (the first, when
// bound to every interface).
func (s *Server) UDPAddr() net.Addr {
	if a := s.mux.GetListenAddresses(); len(a) > 0 {
		return a[0]
	}
	return nil
}

// ICEServers returns the ICE server URLs advertised to clients.
func (s *Server) ICEServers() []string { return s.p.ICEServers }

// h264Profiles are the H.264 profiles (packetization-mode=1) the server
// negotiates: constrained baseline, baseline, main and high. The stream is
// sent as it is; browsers decode any of them whatever was negotiated.
var h264Profiles = []struct {
	pt      webrtc.PayloadType
	profile string
}{{102, "42001f"}, {106, "42e01f"}, {127, "4d001f"}, {112, "640032"}}

// newAPI builds the pion API shared by every peer: the codecs, the one
// UDP port and the candidate policy. There are no interceptors: no TWCC,
// no receiver-side ones; the peer's writer sends the RTCP sender reports
// and answers NACKs from its history of shared payloads (see
// peer.sendReports and history).
func (s *Server) newAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	for _, c := range h264Profiles {
		err := me.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: c.pt, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + c.profile,
			RTCPFeedback: fb}}, webrtc.RTPCodecTypeVideo)
		if err != nil {
			return nil, err
		}
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}},
		webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}

	// No interceptors: the writer sends the sender reports itself and
	// answers NACKs from its history (see peer.sendReports, history).
	reg := &interceptor.Registry{}
	plog := pionLoggerFactory{log: s.log}
	se := webrtc.SettingEngine{LoggerFactory: plog}
	inet, err := newIfaceNet()
	if err != nil {
		return nil, err
	}
	se.SetNet(inet)
	se.SetICEUDPMux(s.mux)
	nets := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if s.tcpMux != nil {
		se.SetICETCPMux(s.tcpMux)
		nets = append(nets, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(nets)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true) // only where the mux is bound to it
	se.SetRemoteIPFilter(s.p.Remote.acceptsIP)
	if f := s.interfaceFilter(); f != nil {
		se.SetInterfaceFilter(f)
	}
	if f := s.ipFilter(); f != nil {
		se.SetIPFilter(f)
	}
	if len(s.p.PublicIPs) > 0 {
		se.SetNAT1To1IPs(s.p.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	disconnected := min(s.p.PeerTimeout/2, 5*time.Second)
	se.SetICETimeouts(disconnected, s.p.PeerTimeout, 2*time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(se)), nil
}

// Stats are the server's counters.
type Stats struct {
	Peers      int    // peers now
	Created    uint64 // peers created
	Removed    uint64 // peers removed, for any reason
	Dead       uint64 // peers removed because ICE failed or never connected
	PLIs       uint64 // PLI/FIR received from viewers
	KeyResends uint64 // keyframe re-sends from the cache, answering them
	NACKs      uint64 // NACK packets received
	Resent     uint64 // packets sent again answering them
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.peers)
	s.mu.Unlock()
	return Stats{Peers: n, Created: s.stats.created.Load(), Removed: s.stats.removed.Load(),
		Dead: s.stats.dead.Load(), PLIs: s.stats.plis.Load(), KeyResends: s.stats.keyResends.Load(),
		NACKs: s.stats.nacks.Load(), Resent: s.stats.resent.Load()}
}

// Peers returns the number of peers of a stream ("" for all streams).
func (s *Server) Peers(stream string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stream == "" {
		return len(s.peers)
	}
	n := 0
	for _, p := range s.peers {
		if p.stream == stream {
			n++
		}
	}
	return n
}

// Close removes every peer, stops every feed and closes the UDP port.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	list := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		list = append(list, p)
	}
	s.mu.Unlock()
	for _, p := range list {
		s.remove(p, "server closing", false)
	}
	s.cancel()
	s.wg.Wait()
	s.mux.Close()
	s.closeTCP()
}

// acquireFeed returns the stream's feed, starting it for the first peer.
// Each call is paired with releaseFeed.
func (s *Server) acquireFeed(ctx context.Context, name string) (*feed, error) {
	s.mu.Lock()
	if f := s.feeds[name]; f != nil {
		select {
		case <-f.done:
		default:
			f.refs++
			s.mu.Unlock()
			return f, nil
		}
	}
	s.mu.Unlock()
	// Subscribing may wait for the stream: not under the lock.
	sub, err := s.p.Hub.Subscribe(ctx, name, hub.Session{Protocol: "webrtc", Remote: "feed", Internal: true})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		sub.Close()
		return nil, ErrClosed
	}
	if f := s.feeds[name]; f != nil {
		select {
		case <-f.done:
		default:
			f.refs++
			sub.Close() // another peer started one meanwhile
			return f, nil
		}
	}
	f := newFeed(s, name, sub)
	f.refs = 1
	s.feeds[name] = f
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f.run()
	}()
	return f, nil
}

func (s *Server) releaseFeed(f *feed) {
	s.mu.Lock()
	f.refs--
	last := f.refs == 0
	if last && s.feeds[f.name] == f {
		delete(s.feeds, f.name)
	}
	s.mu.Unlock()
	if last {
		f.stop()
	}
}

func newID() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand never fails
	return hex.EncodeToString(b[:])
}

// profileOf returns the profile-level-id of an SPS ("64001f"), or "".
func profileOf(sps []byte) string {
	if len(sps) < 4 {
		return ""
	}
	return hex.EncodeToString(sps[1:4])
}

// Offer is a viewer's request for a stream.
type Offer struct {
	Stream string // "app/stream"
	SDP    string
	// Remote is the client's address (for logs and the hub's session).
	Remote string
}

// Answer is the server's reply to an Offer.
type Answer struct {
	ID   string // the session id (WHEP resource)
	SDP  string
	ETag string
}

// Offer creates a peer for a viewer of o.Stream and returns the answer,
// with every host candidate gathered. It waits (bounded by the hub's start
// timeout and ctx) for a stream that is starting. On any error nothing is
// left behind.
func (s *Server) Offer(ctx context.Context, o Offer) (Answer, error) {
	offerSDP, dropped := s.p.Remote.filterSDP(o.SDP)
	info, err := inspectOffer(offerSDP)
	if err != nil {
		return Answer{}, err
	}
	s.mu.Lock()
	closed, full := s.closed, s.p.MaxPeers > 0 && len(s.peers) >= s.p.MaxPeers
	s.mu.Unlock()
	if closed {
		return Answer{}, ErrClosed
	}
	if full {
		return Answer{}, ErrTooManyPeers
	}
	p, err := s.newPeer(ctx, o, info)
	if err != nil {
		return Answer{}, err
	}
	ans, err := p.negotiate(ctx, offerSDP)
	if err != nil {
		s.remove(p, "negotiation failed", false)
		return Answer{}, err
	}
	// Start before registering: a DELETE can only find a running peer.
	// The peer's own callbacks may have closed it meanwhile.
	if !p.start() {
		s.remove(p, "closed during setup", false)
		return Answer{}, errClosedEarly
	}
	s.mu.Lock()
	if s.closed || p.closing.Load() {
		s.mu.Unlock()
		s.remove(p, "closed during setup", false)
		return Answer{}, errClosedEarly
	}
	s.peers[p.id] = p
	s.mu.Unlock()
	s.stats.created.Add(1)
	p.log.Info("webrtc peer created", "candidates_dropped", dropped, "audio", p.audio != nil)
	return ans, nil
}

// lookup returns the peer id of stream ("" matches any stream).
func (s *Server) lookup(stream, id string) (*peer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[id]
	if p == nil || (stream != "" && p.stream != stream) {
		return nil, ErrNoSession
	}
	return p, nil
}

// Trickle applies a trickle ICE fragment (RFC 8840
// application/trickle-ice-sdpfrag) to a peer; candidates the policy does
// not accept are dropped. An ICE restart (new ufrag) is refused.
func (s *Server) Trickle(stream, id, frag string) error {
	p, err := s.lookup(stream, id)
	if err != nil {
		return err
	}
	return p.trickle(frag)
}

// Done returns a channel closed when the peer of that session is removed
// (for any reason), so a signalling channel can end with it.
func (s *Server) Done(stream, id string) (<-chan struct{}, error) {
	p, err := s.lookup(stream, id)
	if err != nil {
		return nil, err
	}
	return p.ctx.Done(), nil
}

// Remove ends a peer's session.
func (s *Server) Remove(stream, id string) error {
	p, err := s.lookup(stream, id)
	if err != nil {
		return err
	}
	s.remove(p, "session deleted", false)
	return nil
}

// remove closes a peer and forgets it; dead counts it as a dead peer.
// Only the first call for a peer does anything.
func (s *Server) remove(p *peer, reason string, dead bool) {
	if !p.closing.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	known := s.peers[p.id] == p
	if known {
		delete(s.peers, p.id)
		// Counted with the deletion: whoever sees the peer gone sees it
		// counted.
		s.stats.removed.Add(1)
		if dead {
			s.stats.dead.Add(1)
		}
	}
	s.mu.Unlock()
	p.close()
	if known {
		p.log.Info("webrtc peer removed", "reason", reason, "duration", time.Since(p.created).Round(time.Millisecond).String(),
			"sent_bytes", p.sentBytes.Load(), "plis", p.plis.Load(), "nacks", p.nacks.Load(), "skips", p.skips.Load())
	}
}

// removeAsync removes a peer from a goroutine the server owns (pion's
// callbacks must not close their own peer connection synchronously).
func (s *Server) removeAsync(p *peer, reason string, dead bool) {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closed {
		return // Close removes it
	}
	go func() {
		defer s.wg.Done()
		s.remove(p, reason, dead)
	}()
}
