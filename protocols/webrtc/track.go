package webrtc

import (
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// outTrack is one peer's outgoing track. It is a webrtc.TrackLocal that
// only records its binding (SSRC, payload type, the SRTP write stream):
// the peer's writer sends the stream's shared payloads through it with
// the peer's own headers.
type outTrack struct {
	kind     webrtc.RTPCodecType
	mime     string
	id       string
	streamID string
	// profile is the stream's H.264 profile-level-id ("64001f"), to prefer
	// a negotiated codec of the same profile.
	profile string

	mu    sync.Mutex
	ssrc  uint32
	pt    uint8
	ws    webrtc.TrackLocalWriter
	bound chan struct{}
	once  sync.Once
}

func newOutTrack(kind webrtc.RTPCodecType, mime, id, streamID, profile string) *outTrack {
	return &outTrack{kind: kind, mime: mime, id: id, streamID: streamID, profile: profile,
		bound: make(chan struct{})}
}

// Bind implements webrtc.TrackLocal: it picks the negotiated codec (for
// H.264, packetization-mode=1, preferring the stream's profile).
func (t *outTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var pick *webrtc.RTPCodecParameters
	codecs := ctx.CodecParameters()
	for i := range codecs {
		c := &codecs[i]
		if !strings.EqualFold(c.MimeType, t.mime) {
			continue
		}
		if t.mime == webrtc.MimeTypeH264 {
			if !strings.Contains(c.SDPFmtpLine, "packetization-mode=1") {
				continue
			}
			if t.profile != "" && strings.Contains(strings.ToLower(c.SDPFmtpLine), "profile-level-id="+t.profile[:4]) {
				pick = c
				break
			}
		}
		if pick == nil {
			pick = c
		}
	}
	if pick == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	t.mu.Lock()
	t.ssrc, t.pt, t.ws = uint32(ctx.SSRC()), uint8(pick.PayloadType), ctx.WriteStream()
	t.mu.Unlock()
	t.once.Do(func() { close(t.bound) })
	return *pick, nil
}

// Unbind implements webrtc.TrackLocal.
func (t *outTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	t.ws = nil
	t.mu.Unlock()
	return nil
}

func (t *outTrack) ID() string                { return t.id }
func (t *outTrack) RID() string               { return "" }
func (t *outTrack) StreamID() string          { return t.streamID }
func (t *outTrack) Kind() webrtc.RTPCodecType { return t.kind }

// sender is what the writer needs of a bound track, and what it sent
// (for its RTCP sender reports).
type sender struct {
	ssrc  uint32
	pt    uint8
	clock uint32 // RTP clock rate
	ws    webrtc.TrackLocalWriter
	seq   uint16
	hist  *history // nil: NACKs are not answered (audio)

	packets, octets uint32    // sent so far (RTCP SR counts, wrapping)
	lastTS          uint32    // RTP timestamp of the last frame sent
	lastAt          time.Time // when it was sent; zero: nothing sent yet
}

func (t *outTrack) sender(seq uint16, hist *history) (sender, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clock := uint32(90000)
	if t.kind == webrtc.RTPCodecTypeAudio {
		clock = 48000 // Opus, the only audio codec sent
	}
	return sender{ssrc: t.ssrc, pt: t.pt, clock: clock, ws: t.ws, seq: seq, hist: hist}, t.ws != nil
}

// report returns the sender report for now (RFC 3550 6.4.1): the RTP time
// of now extrapolated from the last frame sent, and the counts. ok is false
// before anything was sent.
func (s *sender) report(now time.Time) (sr rtcp.SenderReport, ok bool) {
	if s.lastAt.IsZero() {
		return sr, false
	}
	elapsed := now.Sub(s.lastAt)
	return rtcp.SenderReport{SSRC: s.ssrc, NTPTime: ntpTime(now),
		RTPTime:     s.lastTS + uint32(elapsed.Seconds()*float64(s.clock)),
		PacketCount: s.packets, OctetCount: s.octets}, true
}

// ntpTime is t as a 64-bit NTP timestamp: seconds since 1900 in the high
// 32 bits, the fraction in the low ones.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix()) + unixToNTP
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// rtpHeaderSize is the size of the RTP header of a peer's packets (no
// CSRCs; SRTP's auth tag and header extensions are not counted).
const rtpHeaderSize = 12

// write sends one frame's payloads with this peer's header; the last
// packet of a frame carries the marker bit. It returns the bytes sent.
func (s *sender) write(payloads [][]byte, ts uint32, marker bool) (int, error) {
	n := 0
	s.lastTS, s.lastAt = ts, time.Now()
	for i, p := range payloads {
		h := rtp.Header{Version: 2, PayloadType: s.pt, SequenceNumber: s.seq, Timestamp: ts,
			SSRC: s.ssrc, Marker: marker && i == len(payloads)-1}
		s.seq++
		if s.hist != nil {
			s.hist.put(h.SequenceNumber, ts, h.Marker, p)
		}
		if _, err := s.ws.WriteRTP(&h, p); err != nil {
			return n, err
		}
		n += len(p)
		s.packets++
		s.octets += uint32(len(p))
	}
	return n, nil
}

// history is a peer's record of the packets it sent, to answer NACKs: per
// sequence number what of the header varies (timestamp, marker) and the
// stream's shared payload (no copy; every peer of the stream points at the
// same bytes). An entry is 32 bytes, 16 KiB for the default 512 packets.
type history struct {
	mu      sync.Mutex
	entries []histEntry // len is a power of two
	pt      uint8
	ssrc    uint32
	ws      webrtc.TrackLocalWriter
}

type histEntry struct {
	payload []byte
	ts      uint32
	seq     uint16
	marker  bool
	set     bool
}

func newHistory(size int, pt uint8, ssrc uint32, ws webrtc.TrackLocalWriter) *history {
	n := 1
	for n < size {
		n <<= 1
	}
	return &history{entries: make([]histEntry, n), pt: pt, ssrc: ssrc, ws: ws}
}

func (h *history) put(seq uint16, ts uint32, marker bool, payload []byte) {
	h.mu.Lock()
	h.entries[int(seq)&(len(h.entries)-1)] = histEntry{payload: payload, ts: ts, seq: seq, marker: marker, set: true}
	h.mu.Unlock()
}

// resend sends again the packet with sequence number seq, if the history
// still holds it; it reports whether it did.
func (h *history) resend(seq uint16) (bool, error) {
	h.mu.Lock()
	e := h.entries[int(seq)&(len(h.entries)-1)]
	h.mu.Unlock()
	if !e.set || e.seq != seq {
		return false, nil
	}
	hdr := rtp.Header{Version: 2, PayloadType: h.pt, SequenceNumber: seq, Timestamp: e.ts, SSRC: h.ssrc, Marker: e.marker}
	_, err := h.ws.WriteRTP(&hdr, e.payload)
	return err == nil, err
}
