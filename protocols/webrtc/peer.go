package webrtc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
)

// ErrICERestart: a trickle fragment asked for an ICE restart, which the
// server does not do (the client makes a new session instead).
var ErrICERestart = errors.New("ICE restart is not supported")

// minKeyResend is the shortest interval between two keyframe re-sends to
// one peer: a viewer sending PLIs in a loop gets one re-send per interval.
const minKeyResend = 500 * time.Millisecond

// burstStep is the RTP timestamp distance (1 ms at 90 kHz) between the
// frames of a GOP burst.
const burstStep = 90

// peer is one viewer's PeerConnection. Its writer goroutine reads the
// stream's shared RTP frames through its own cursor; RTCP goroutines drain
// each sender.
type peer struct {
	srv     *Server
	id      string
	stream  string
	remote  string
	log     *slog.Logger
	created time.Time

	pres  *hub.Subscriber // the viewer's registration with the hub
	feed  *feed
	pc    *webrtc.PeerConnection
	video *outTrack
	audio *outTrack // nil: video only
	vs    *webrtc.RTPSender
	as    *webrtc.RTPSender

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing atomic.Bool

	mu      sync.Mutex
	stopped bool        // close ran: start must not
	timer   *time.Timer // connect timeout
	unkick  func() bool // stops the hub kick's callback (see start)

	connected atomic.Bool
	up        chan struct{} // closed once connected (ICE and DTLS)
	keyReq    chan struct{}

	sentBytes, plis, nacks, skips atomic.Uint64
	resent                        atomic.Uint64
	vhist                         atomic.Pointer[history] // set once video is bound
}

// newPeer registers the viewer with the hub (waiting for a stream that is
// starting), checks the stream's codecs and builds the PeerConnection and
// its tracks. On error nothing is left behind.
func (s *Server) newPeer(ctx context.Context, o Offer, info offerInfo) (_ *peer, err error) {
	pres, err := s.p.Hub.Subscribe(ctx, o.Stream, hub.Session{Protocol: "webrtc", Remote: o.Remote})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pres.Close()
		}
	}()
	tracks := pres.Tracks()
	if tracks == nil || tracks.Video == nil || tracks.Video.Codec != hub.CodecH264 {
		return nil, ErrStreamCodec
	}
	f, err := s.acquireFeed(ctx, o.Stream)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.releaseFeed(f)
		}
	}()
	id := newID()
	p := &peer{srv: s, id: id, stream: o.Stream, remote: o.Remote, created: time.Now(),
		log:  s.log.With("stream", o.Stream, "remote", o.Remote, "session", id[:8]),
		pres: pres, feed: f, keyReq: make(chan struct{}, 1), up: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(s.ctx)
	p.pc, err = s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		p.cancel()
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	defer func() {
		if err != nil {
			p.cancel()
			p.pc.Close() //nolint:errcheck // best effort on a failed setup
		}
	}()
	streamID := "liveedge"
	p.video = newOutTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, "video", streamID, profileOf(tracks.Video.SPS))
	sendonly := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}
	tr, err := p.pc.AddTransceiverFromTrack(p.video, sendonly)
	if err != nil {
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	p.vs = tr.Sender()
	if a := tracks.Audio; a != nil && a.Codec == hub.CodecOpus && info.opus {
		p.audio = newOutTrack(webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, "audio", streamID, "")
		tr, err := p.pc.AddTransceiverFromTrack(p.audio, sendonly)
		if err != nil {
			return nil, fmt.Errorf("webrtc: %w", err)
		}
		p.as = tr.Sender()
	}
	p.pc.OnConnectionStateChange(p.onState)
	return p, nil
}

// negotiate applies the offer and returns the answer once ICE gathering
// is complete (the answer then carries every candidate).
func (p *peer) negotiate(ctx context.Context, offer string) (Answer, error) {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return Answer{}, fmt.Errorf("webrtc: %w", err)
	}
	t := time.NewTimer(p.srv.p.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C: // answer with what was gathered
	case <-ctx.Done():
		return Answer{}, ctx.Err()
	}
	ld := p.pc.LocalDescription()
	if ld == nil {
		return Answer{}, errors.New("webrtc: no local description")
	}
	return Answer{ID: p.id, SDP: ld.SDP, ETag: `"` + p.id[:16] + `"`}, nil
}

// start runs the peer's goroutines and arms the connect timeout; it
// reports false when the peer was closed meanwhile (by its own callbacks).
func (p *peer) start() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.wg.Add(1)
	go p.run()
	p.unkick = p.pres.AfterClose(func() { // kicked through the hub
		p.srv.removeAsync(p, "session closed", false)
	})
	p.wg.Add(1)
	go p.readRTCP(p.vs, true)
	if p.as != nil {
		p.wg.Add(1)
		go p.readRTCP(p.as, false)
	}
	p.timer = time.AfterFunc(p.srv.p.PeerTimeout, func() {
		if !p.connected.Load() {
			reason := "ICE did not connect in time"
			switch p.pc.ICEConnectionState() {
			case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
				reason = "DTLS did not complete in time" // a client that stops after ICE
			}
			p.srv.removeAsync(p, reason, true)
		}
	})
	return true
}

func (p *peer) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		if !p.connected.Swap(true) {
			close(p.up)
			p.log.Debug("webrtc peer connected", "after", time.Since(p.created).Round(time.Millisecond).String())
		}
	case webrtc.PeerConnectionStateDisconnected:
		p.log.Debug("webrtc peer disconnected, waiting for it to come back")
	case webrtc.PeerConnectionStateFailed:
		p.srv.removeAsync(p, "ICE failed", true)
	case webrtc.PeerConnectionStateClosed:
		p.srv.removeAsync(p, "connection closed", false)
	}
}

// close stops the goroutines, closes the PeerConnection and releases the
// hub registration and the feed.
func (p *peer) close() {
	p.mu.Lock()
	p.stopped = true
	timer, unkick := p.timer, p.unkick
	p.mu.Unlock()
	p.cancel()
	if timer != nil {
		timer.Stop()
	}
	if unkick != nil {
		unkick()
	}
	if err := p.pc.Close(); err != nil {
		p.log.Debug("closing peer connection", "err", err)
	}
	p.wg.Wait()
	p.pres.Close()
	p.srv.releaseFeed(p.feed)
}

// readRTCP drains a sender's RTCP (the sender reports interceptor sees it
// on the way): a video NACK is answered from the peer's history (the
// stream's shared payloads); a PLI or FIR asks the writer for a keyframe
// from the cache.
func (p *peer) readRTCP(s *webrtc.RTPSender, video bool) {
	defer p.wg.Done()
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pk := range pkts {
			switch pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if !video {
					continue
				}
				p.plis.Add(1)
				p.srv.stats.plis.Add(1)
				select {
				case p.keyReq <- struct{}{}:
				default:
				}
			case *rtcp.TransportLayerNack:
				p.nacks.Add(1)
				p.srv.stats.nacks.Add(1)
				if h := p.vhist.Load(); video && h != nil {
					p.answerNACK(h, pk.(*rtcp.TransportLayerNack))
				}
			}
		}
	}
}

// answerNACK resends the packets a NACK lists that the history holds.
func (p *peer) answerNACK(h *history, n *rtcp.TransportLayerNack) {
	for _, pair := range n.Nacks {
		for _, seq := range pair.PacketList() {
			ok, err := h.resend(seq)
			if err != nil {
				return
			}
			if ok {
				p.resent.Add(1)
				p.srv.stats.resent.Add(1)
			}
		}
	}
}

// clock maps one track's stream timestamps onto the peer's RTP timeline.
type clock struct {
	started bool
	live    bool   // off is valid
	off     uint32 // out = in + off while live
	lastIn  uint32
	lastOut uint32
}

// burst maps a frame sent ahead of real time (a GOP burst): 1 ms after
// the previous one. Such frames are decoded at once by the receiver, which
// then shows the newest.
func (c *clock) burst(in uint32, base uint32) uint32 {
	out := base
	if c.started {
		out = c.lastOut + burstStep
	}
	c.started, c.live, c.lastIn, c.lastOut = true, false, in, out
	return out
}

// next maps a live frame: the first one after a burst keeps its real
// distance to the burst's last frame, the following ones keep the offset.
func (c *clock) next(in uint32, base uint32) uint32 {
	if !c.live {
		switch {
		case !c.started:
			c.off = base - in
		case int32(in-c.lastIn) > 0:
			c.off = c.lastOut - c.lastIn
		default:
			c.off = c.lastOut + burstStep - in
		}
		c.live = true
	}
	out := in + c.off
	c.started, c.lastIn, c.lastOut = true, in, out
	return out
}

// run is the writer: it waits for the video track to be bound and the
// connection to be up (ICE and DTLS), joins the stream's ring at the cached keyframe and sends from
// there. Frames that were already in the ring when it joined (the GOP up
// to live) are a burst: sent at once, video with compressed timestamps,
// audio skipped. A PLI rewinds the cursor to the newest keyframe and
// bursts again.
func (p *peer) run() {
	defer p.wg.Done()
	select {
	case <-p.video.bound:
	case <-p.ctx.Done():
		return
	}
	// pion binds the track when the answer is set, before ICE; until DTLS
	// is up it drops what is written. Wait for it: a client that never
	// connects costs no packetizing, and a real one gets the burst.
	select {
	case <-p.up:
	case <-p.ctx.Done():
		return
	}
	// DTLS is up on this side; give the receiver a moment to open its
	// SRTP streams (see Params.StartDelay).
	if d := p.srv.p.StartDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return
		}
	}
	var rnd [10]byte
	for i := range rnd {
		rnd[i] = byte(rand.Uint32())
	}
	vbase, abase := binary.BigEndian.Uint32(rnd[0:4]), binary.BigEndian.Uint32(rnd[4:8])
	vs, ok := p.video.sender(binary.BigEndian.Uint16(rnd[8:10]), nil)
	if !ok {
		return
	}
	vs.hist = newHistory(int(p.srv.p.NACKHistory), vs.pt, vs.ssrc, vs.ws)
	p.vhist.Store(vs.hist)
	var as sender
	haveAudio := false
	var vclock clock

	ring := p.feed.ring
	cur, waitKey := ring.Join()
	burstEnd := ring.Head()
	var lastResend, lastSR time.Time
	firstSent := false
	buf := make([]*frame, 0, 64)
	for {
		select {
		case <-p.keyReq:
			if time.Since(lastResend) >= minKeyResend {
				if c, wk := ring.Join(); !wk {
					cur, waitKey, burstEnd = c, false, ring.Head()
					lastResend = time.Now()
					p.srv.stats.keyResends.Add(1)
				}
			}
		default:
		}
		frames, next, wait, err := ring.Fetch(cur, buf)
		switch {
		case errors.Is(err, cache.ErrLagged):
			cur, waitKey = ring.Resync()
			burstEnd = ring.Head()
			p.skips.Add(1)
			continue
		case errors.Is(err, cache.ErrClosed):
			p.srv.removeAsync(p, "stream ended", false)
			return
		}
		if wait != nil {
			select {
			case <-wait:
			case <-p.keyReq:
				select { // handled at the top of the loop
				case p.keyReq <- struct{}{}:
				default:
				}
			case <-p.ctx.Done():
				return
			}
			continue
		}
		batchBytes := 0 // RTP bytes of this batch, for the stream's bytes out
		for i, f := range frames {
			seq := cur + uint64(i)
			if waitKey {
				if !f.key {
					continue
				}
				waitKey = false
			}
			burst := seq < burstEnd
			var n int
			var err error
			if f.video {
				var ts uint32
				if burst {
					ts = vclock.burst(f.ts, vbase)
				} else {
					ts = vclock.next(f.ts, vbase)
				}
				n, err = vs.write(f.payloads, ts, true)
				if !firstSent && err == nil {
					firstSent = true
					p.srv.p.Hub.ObserveFirstFrame("webrtc", time.Since(p.created))
				}
			} else {
				if burst || p.audio == nil {
					continue
				}
				if !haveAudio {
					if as, haveAudio = p.audio.sender(uint16(rand.Uint32()), nil); !haveAudio {
						continue
					}
				}
				n, err = as.write(f.payloads, f.ts+abase, false)
			}
			p.sentBytes.Add(uint64(n))
			if err != nil {
				p.pres.CountOut(batchBytes)
				if p.ctx.Err() == nil && !errors.Is(err, io.ErrClosedPipe) {
					p.log.Debug("webrtc write failed", "err", err)
				}
				return
			}
			batchBytes += n + rtpHeaderSize*len(f.payloads)
		}
		p.pres.CountOut(batchBytes)
		if now := time.Now(); now.Sub(lastSR) >= srInterval {
			lastSR = now
			p.sendReports(now, &vs, &as)
		}
		cur = next
		for i := range frames {
			frames[i] = nil
		}
	}
}

// srInterval is how often the writer sends RTCP sender reports, which
// let the receiver map RTP time to wall-clock time (lip sync, and its
// round-trip estimate from the receiver reports that answer them).
const srInterval = time.Second

// sendReports sends one RTCP packet with the sender report of each
// sender that sent something. The writer makes them itself, from what it
// sent, rather than through a per-peer interceptor with its own goroutine
// and a lock on every packet.
func (p *peer) sendReports(now time.Time, senders ...*sender) {
	var srs [2]rtcp.SenderReport
	pkts := make([]rtcp.Packet, 0, len(senders))
	for _, s := range senders {
		if sr, ok := s.report(now); ok && len(pkts) < len(srs) {
			srs[len(pkts)] = sr
			pkts = append(pkts, &srs[len(pkts)])
		}
	}
	if len(pkts) == 0 {
		return
	}
	if err := p.pc.WriteRTCP(pkts); err != nil && p.ctx.Err() == nil {
		p.log.Debug("webrtc sender report not sent", "err", err)
	}
}

// trickle applies an RFC 8840 fragment: its candidates (filtered by the
// policy) are added to the ICE agent of the media section they follow.
func (p *peer) trickle(frag string) error {
	rd := p.pc.RemoteDescription()
	ufrag := ""
	if rd != nil {
		ufrag = remoteUfrag(rd.SDP)
	}
	mid := ""
	var mline *uint16
	added := 0
	for _, line := range strings.Split(frag, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			if u := strings.TrimPrefix(line, "a=ice-ufrag:"); ufrag != "" && u != ufrag {
				return ErrICERestart
			}
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "m="):
			mid = ""
			if mline == nil {
				mline = new(uint16)
			} else {
				*mline++
			}
		case strings.HasPrefix(line, "a=candidate:"):
			ip, ok := candidateAddr(line)
			if !ok || !p.srv.p.Remote.Accepts(ip) {
				continue
			}
			init := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a=")}
			if mid != "" {
				m := mid
				init.SDPMid = &m
			} else {
				var zero uint16
				if mline != nil {
					zero = *mline
				}
				init.SDPMLineIndex = &zero
			}
			if err := p.pc.AddICECandidate(init); err != nil {
				return fmt.Errorf("%w: %v", ErrBadFragment, err)
			}
			added++
		case strings.HasPrefix(line, "a=end-of-candidates"), strings.HasPrefix(line, "a=ice-pwd:"),
			strings.HasPrefix(line, "a=ice-options:"), strings.HasPrefix(line, "a=group:"):
		case strings.HasPrefix(line, "a=") || strings.HasPrefix(line, "c="):
		default:
			return fmt.Errorf("%w: unexpected line %q", ErrBadFragment, line)
		}
	}
	p.log.Debug("trickle candidates", "added", added)
	return nil
}

// remoteUfrag returns the first ice-ufrag of an SDP.
func remoteUfrag(sdp string) string {
	for _, line := range strings.Split(sdp, "\n") {
		if u, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return u
		}
	}
	return ""
}
