// Package whepclient is a WebRTC viewer for tests: a pion PeerConnection
// that receives H.264 (and Opus) over loopback only, reassembles the H.264
// access units from RTP (STAP-A, FU-A, single NAL units) and records what
// it got, and a WHEP exchange over HTTP.
package whepclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Frame is one reassembled H.264 access unit.
type Frame struct {
	Timestamp uint32
	NALTypes  []uint8
	At        time.Time // when its last packet arrived
	// NALUs are the frame's NAL units (FU-A fragments joined, STAP-A
	// split), only for a client with Options.OnFrame.
	NALUs [][]byte
}

// IsIDR reports whether the frame holds an IDR slice with an SPS and a
// PPS before it.
func (f Frame) IsIDR() bool {
	sps, pps := false, false
	for _, t := range f.NALTypes {
		switch t {
		case 7:
			sps = true
		case 8:
			pps = true
		case 5:
			return sps && pps
		}
	}
	return false
}

// Client is one viewer.
type Client struct {
	pc    *webrtc.PeerConnection
	start time.Time

	mu         sync.Mutex
	frames     []Frame // complete frames, in arrival order (bounded)
	count      int
	incomplete int
	firstKey   time.Time
	firstFrame *Frame
	audioPkts  int
	videoPkts  int
	videoCodec string
	changed    chan struct{}
	connected  chan struct{}
	connOnce   sync.Once
	ended      chan struct{}
	endOnce    sync.Once
	onFrame    func(Frame)
	wg         sync.WaitGroup
	closeOnce  sync.Once
	videoSSRC  uint32
	lastSeq    uint16
	lastTS     uint32              // RTP timestamp of the last video packet
	reports    []rtcp.SenderReport // video sender reports received (bounded)
	seqCopies  *[1 << 16]uint8     // arrivals per video sequence number (saturating)
}

// Options shape a client.
type Options struct {
	Audio bool // also offer to receive audio
	// OnFrame, if set, is called with every complete video frame, NAL
	// units included, on the track's reader goroutine (it must return
	// quickly). The client then keeps no frame history: Frames returns
	// nothing and WaitFrames counts frames only.
	OnFrame func(Frame)
	// TCP makes the client use ICE over TCP only (active candidates), as a
	// client behind a firewall that blocks UDP would.
	TCP bool
}

// New creates a client whose offer asks for video (and audio). Only
// loopback addresses are used, in both directions.
func New(o Options) (*Client, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if o.TCP {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetRemoteIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	c := &Client{pc: pc, changed: make(chan struct{}), connected: make(chan struct{}), ended: make(chan struct{}),
		onFrame: o.OnFrame}
	recvonly := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, recvonly); err != nil {
		pc.Close()
		return nil, err
	}
	if o.Audio {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, recvonly); err != nil {
			pc.Close()
			return nil, err
		}
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			c.connOnce.Do(func() { close(c.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			c.endOnce.Do(func() { close(c.ended) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.read(tr)
		}()
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.readRTCP(rcv)
			}()
		}
	})
	return c, nil
}

// Offer creates the offer and returns it once ICE gathering is complete.
func (c *Client) Offer() (string, error) {
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	done := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return "", errors.New("ICE gathering did not complete")
	}
	return c.pc.LocalDescription().SDP, nil
}

// Answer applies the server's answer.
func (c *Client) Answer(sdp string) error {
	return c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
}

// Start marks the moment TTFF is measured from (call it before the offer
// is sent).
func (c *Client) Start() {
	c.mu.Lock()
	c.start = time.Now()
	c.mu.Unlock()
}

// Close closes the PeerConnection and waits for the readers.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.pc.Close() //nolint:errcheck
		c.wg.Wait()
	})
}

// SendPLI asks the server for a keyframe.
func (c *Client) SendPLI() error {
	c.mu.Lock()
	ssrc := c.videoSSRC
	c.mu.Unlock()
	return c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// SendNACK asks for the video packets with these sequence numbers again.
func (c *Client) SendNACK(seqs ...uint16) error {
	c.mu.Lock()
	ssrc := c.videoSSRC
	c.mu.Unlock()
	return c.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}})
}

// LastVideoSeq returns the sequence number of the last video packet
// received, and how many packets carried it (more than one: resent).
func (c *Client) LastVideoSeq() (seq uint16, copies int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seqCopies == nil {
		return 0, 0
	}
	return c.lastSeq, int(c.seqCopies[c.lastSeq])
}

// Copies returns how many times the video packet seq arrived.
func (c *Client) Copies(seq uint16) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seqCopies == nil {
		return 0
	}
	return int(c.seqCopies[seq])
}

// Connected is closed once the PeerConnection is connected.
func (c *Client) Connected() <-chan struct{} { return c.connected }

// Ended is closed once the PeerConnection has failed or is closed.
func (c *Client) Ended() <-chan struct{} { return c.ended }

func (c *Client) read(tr *webrtc.TrackRemote) {
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	if video {
		c.mu.Lock()
		c.videoCodec = tr.Codec().MimeType
		c.videoSSRC = uint32(tr.SSRC())
		c.mu.Unlock()
	}
	asm := assembler{keep: c.onFrame != nil}
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if !video {
			c.mu.Lock()
			c.audioPkts++
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		if c.seqCopies == nil {
			c.seqCopies = new([1 << 16]uint8)
		}
		if c.seqCopies[pkt.SequenceNumber] < 255 {
			c.seqCopies[pkt.SequenceNumber]++
		}
		resent := c.seqCopies[pkt.SequenceNumber] > 1
		c.lastSeq, c.lastTS = pkt.SequenceNumber, pkt.Timestamp
		c.mu.Unlock()
		if resent {
			continue // a retransmission: the frame was complete already
		}
		f, ok, broken := asm.push(pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, pkt.Payload)
		c.mu.Lock()
		c.videoPkts++
		if broken {
			c.incomplete++
		}
		if ok {
			f.At = time.Now()
			c.count++
			if c.firstFrame == nil {
				ff := f
				c.firstFrame = &ff
			}
			if c.firstKey.IsZero() && f.IsIDR() {
				c.firstKey = f.At
			}
			if len(c.frames) < 4096 && c.onFrame == nil {
				c.frames = append(c.frames, f)
			}
			close(c.changed)
			c.changed = make(chan struct{})
		}
		c.mu.Unlock()
		if ok && c.onFrame != nil {
			c.onFrame(f)
		}
	}
}

// readRTCP keeps the sender reports the server sends about the video.
func (c *Client) readRTCP(rcv *webrtc.RTPReceiver) {
	for {
		pkts, _, err := rcv.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				c.mu.Lock()
				if len(c.reports) < 1024 {
					c.reports = append(c.reports, *sr)
				}
				c.mu.Unlock()
			}
		}
	}
}

// VideoSSRC returns the SSRC of the video track (0 before it arrived).
func (c *Client) VideoSSRC() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.videoSSRC
}

// SenderReports returns the RTCP sender reports received on the video
// track so far, and the RTP timestamp of the last video packet.
func (c *Client) SenderReports() ([]rtcp.SenderReport, uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rtcp.SenderReport(nil), c.reports...), c.lastTS
}

// Stats is what the client received.
type Stats struct {
	VideoCodec string
	Frames     int    // complete video frames
	Incomplete int    // frames dropped for a missing packet
	First      *Frame // the first complete frame
	TTFF       time.Duration
	VideoPkts  int
	AudioPkts  int
}

// Stats returns a snapshot.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{VideoCodec: c.videoCodec, Frames: c.count, Incomplete: c.incomplete, First: c.firstFrame,
		VideoPkts: c.videoPkts, AudioPkts: c.audioPkts}
	if !c.firstKey.IsZero() && !c.start.IsZero() {
		s.TTFF = c.firstKey.Sub(c.start)
	}
	return s
}

// Frames returns the frames received so far (at most 4096).
func (c *Client) Frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.frames...)
}

// WaitFrames waits until n complete frames arrived.
func (c *Client) WaitFrames(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got, ch := c.count, c.changed
		c.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("got %d frames, want %d: %w", got, n, ctx.Err())
		}
	}
}

// assembler rebuilds H.264 access units from RTP packets (RFC 6184). A
// frame with a missing packet is dropped. With keep, it also rebuilds the
// NAL units themselves.
type assembler struct {
	have    bool
	ts      uint32
	nextSeq uint16
	broken  bool
	types   []uint8
	fu      bool // inside an FU-A

	keep  bool
	nalus [][]byte // the frame's NAL units so far (keep)
	fuBuf []byte   // the NAL unit of the FU-A in progress (keep)
}

func (a *assembler) push(seq uint16, ts uint32, marker bool, payload []byte) (f Frame, complete, broken bool) {
	if a.have && ts != a.ts {
		// A new frame started before the marker of the previous one.
		broken = len(a.types) > 0 || a.broken
		a.reset(ts)
	}
	if !a.have {
		a.reset(ts)
		a.have = true
	} else if seq != a.nextSeq {
		a.broken = true
	}
	a.nextSeq = seq + 1
	if len(payload) == 0 {
		a.broken = true
	} else {
		switch t := payload[0] & 0x1f; t {
		case 24: // STAP-A
			for p := payload[1:]; len(p) >= 2; {
				n := int(p[0])<<8 | int(p[1])
				if n == 0 || len(p) < 2+n {
					a.broken = true
					break
				}
				a.types = append(a.types, p[2]&0x1f)
				if a.keep {
					a.nalus = append(a.nalus, append([]byte(nil), p[2:2+n]...))
				}
				p = p[2+n:]
			}
		case 28: // FU-A
			if len(payload) < 2 {
				a.broken = true
				break
			}
			start, end := payload[1]&0x80 != 0, payload[1]&0x40 != 0
			if start {
				if a.fu {
					a.broken = true
				}
				a.fu = true
				a.types = append(a.types, payload[1]&0x1f)
				if a.keep {
					// The NAL header: F and NRI from the indicator, the type
					// from the FU header.
					a.fuBuf = append(make([]byte, 0, 4096), payload[0]&0xe0|payload[1]&0x1f)
				}
			} else if !a.fu {
				a.broken = true
			}
			if a.keep && a.fu {
				a.fuBuf = append(a.fuBuf, payload[2:]...)
			}
			if end {
				if a.keep && a.fu {
					a.nalus = append(a.nalus, a.fuBuf)
					a.fuBuf = nil
				}
				a.fu = false
			}
		default:
			if t >= 1 && t <= 23 {
				a.types = append(a.types, t)
				if a.keep {
					a.nalus = append(a.nalus, append([]byte(nil), payload...))
				}
			} else {
				a.broken = true
			}
		}
	}
	if marker {
		if !a.broken && !a.fu && len(a.types) > 0 {
			f, complete = Frame{Timestamp: ts, NALTypes: append([]uint8(nil), a.types...), NALUs: a.nalus}, true
		} else {
			broken = true
		}
		a.have = false
		a.types = a.types[:0]
		a.broken, a.fu = false, false
		a.nalus, a.fuBuf = nil, nil
	}
	return f, complete, broken
}

func (a *assembler) reset(ts uint32) {
	a.ts = ts
	a.types = a.types[:0]
	a.broken, a.fu = false, false
	a.nalus, a.fuBuf = nil, nil
}

// WHEP is the result of a WHEP POST.
type WHEP struct {
	Status   int
	Location string
	ETag     string
	Body     string
	Header   http.Header
}

// Post sends an offer to a WHEP endpoint.
func Post(ctx context.Context, url, token, offer string) (WHEP, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(offer))
	if err != nil {
		return WHEP{}, err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(req)
}

// Do sends a request and reads the whole response.
func Do(ctx context.Context, method, url, contentType string, body []byte) (WHEP, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return WHEP{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(req)
}

func do(req *http.Request) (WHEP, error) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return WHEP{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return WHEP{}, err
	}
	return WHEP{Status: res.StatusCode, Location: res.Header.Get("Location"), ETag: res.Header.Get("ETag"),
		Body: string(b), Header: res.Header}, nil
}
