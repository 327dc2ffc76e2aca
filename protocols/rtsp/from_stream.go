package rtsp

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"github.com/liveedge/liveedge/hub"
)

// This file maps what the hub holds (tracks, access units) to what an RTSP
// viewer gets (an SDP, RTP packets). It is used by the server's feeds.

// Payload types of the output. Every viewer's stream uses the same ones, so
// that the packets made once per stream fit every viewer's session.
const (
	outVideoPT = 96
	outAudioPT = 97
)

// errOutCodec: a track the RTSP output cannot describe.
var errOutCodec = errors.New("rtsp: unsupported codec")

// outDesc is the session description of one viewer. gortsplib keys its
// per-stream state by *description.Media, so every viewer gets its own
// (built from the same tracks, hence the same SDP).
type outDesc struct {
	session *description.Session
	video   *description.Media // nil: no video track
	audio   *description.Media // nil: no audio track
}

// outSignature is what must stay the same for a viewer's SDP to remain
// valid: which codecs are present, and the audio configuration (which
// only the SDP carries). Video parameter sets may change: they are sent
// in-band on every keyframe.
type outSignature struct {
	video, audio  hub.Codec
	audioRate     int
	audioChannels int
	audioConfig   string
}

func outSignatureOf(t *hub.Tracks) outSignature {
	var s outSignature
	if t.Video != nil {
		s.video = t.Video.Codec
	}
	if t.Audio != nil {
		s.audio, s.audioRate = t.Audio.Codec, t.Audio.SampleRate
		s.audioChannels, s.audioConfig = t.Audio.Channels, string(t.Audio.AudioConfig)
	}
	return s
}

// outDescribe builds the description of the stream's tracks: video first
// (trackID=0), then audio. Codec configuration (sprop parameter sets,
// AudioSpecificConfig) comes from the hub's tracks.
func outDescribe(t *hub.Tracks) (*outDesc, error) {
	d := &outDesc{session: &description.Session{Title: "liveedge"}}
	if v := t.Video; v != nil {
		var f format.Format
		switch v.Codec {
		case hub.CodecH264:
			f = &format.H264{PayloadTyp: outVideoPT, SPS: v.SPS, PPS: v.PPS, PacketizationMode: 1}
		case hub.CodecH265:
			f = &format.H265{PayloadTyp: outVideoPT, VPS: v.VPS, SPS: v.SPS, PPS: v.PPS}
		default:
			return nil, fmt.Errorf("%w: %v", errOutCodec, v.Codec)
		}
		d.video = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}
	}
	if a := t.Audio; a != nil {
		var f format.Format
		switch a.Codec {
		case hub.CodecAAC:
			var conf mpeg4audio.AudioSpecificConfig
			if err := conf.Unmarshal(a.AudioConfig); err != nil {
				return nil, fmt.Errorf("rtsp: AAC config: %w", err)
			}
			f = &format.MPEG4Audio{PayloadTyp: outAudioPT, Config: &conf,
				SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
		case hub.CodecOpus:
			f = &format.Opus{PayloadTyp: outAudioPT, ChannelCount: max(a.Channels, 1)}
		default:
			return nil, fmt.Errorf("%w: %v", errOutCodec, a.Codec)
		}
		d.audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{f}}
	}
	for _, m := range []*description.Media{d.video, d.audio} {
		if m != nil {
			m.Control = fmt.Sprintf("trackID=%d", len(d.session.Medias))
			d.session.Medias = append(d.session.Medias, m)
		}
	}
	if len(d.session.Medias) == 0 {
		return nil, hub.ErrNoTracks
	}
	return d, nil
}

// outPacketizer turns the hub's units into RTP packets, once per stream.
// It is owned by the feed's goroutine. Sequence numbers and SSRC of the
// packets it makes are placeholders: each viewer writes its own.
type outPacketizer struct {
	sig    outSignature
	h264   *rtph264.Encoder
	h265   *rtph265.Encoder
	aac    *rtpmpeg4audio.Encoder
	opus   *rtpsimpleaudio.Encoder
	vbase  uint32 // RTP timestamp of stream time 0, video
	abase  uint32 // and audio
	arate  int64  // audio clock rate
	warned bool
}

func newOutPacketizer(t *hub.Tracks, vbase, abase uint32) (*outPacketizer, error) {
	p := &outPacketizer{sig: outSignatureOf(t), vbase: vbase, abase: abase}
	var err error
	switch p.sig.video {
	case hub.CodecH264:
		p.h264 = &rtph264.Encoder{PayloadType: outVideoPT, PacketizationMode: 1}
		err = p.h264.Init()
	case hub.CodecH265:
		p.h265 = &rtph265.Encoder{PayloadType: outVideoPT}
		err = p.h265.Init()
	}
	if err != nil {
		return nil, err
	}
	switch p.sig.audio {
	case hub.CodecAAC:
		p.aac = &rtpmpeg4audio.Encoder{PayloadType: outAudioPT, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
		err = p.aac.Init()
		p.arate = int64(t.Audio.SampleRate)
		if p.arate <= 0 {
			p.arate = 48000
		}
	case hub.CodecOpus:
		p.opus = &rtpsimpleaudio.Encoder{PayloadType: outAudioPT}
		err = p.opus.Init()
		p.arate = 48000
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// rtpTime converts a stream time to RTP ticks.
func rtpTime(d time.Duration, rate int64) uint32 {
	sec, frac := int64(d/time.Second), int64(d%time.Second)
	return uint32(sec*rate + frac*rate/int64(time.Second))
}

// packetize returns the RTP packets of one unit, with their timestamps
// set; nil when the unit has nothing to send. The packets are new and
// never modified afterwards; their payloads may alias the unit's (immutable)
// buffers.
func (p *outPacketizer) packetize(u *hub.Unit) ([]*rtp.Packet, error) {
	if u.Video {
		v := u.Tracks.Video
		ts := p.vbase + rtpTime(u.PTS, 90000)
		var pkts []*rtp.Packet
		var err error
		switch {
		case p.h264 != nil:
			nalus := outH264AU(u.NALUs, u.Key, v.SPS, v.PPS)
			if len(nalus) == 0 {
				return nil, nil
			}
			pkts, err = p.h264.Encode(nalus)
		case p.h265 != nil:
			nalus := outH265AU(u.NALUs, u.Key, v.VPS, v.SPS, v.PPS)
			if len(nalus) == 0 {
				return nil, nil
			}
			pkts, err = p.h265.Encode(nalus)
		}
		if err != nil {
			return nil, err
		}
		for _, pk := range pkts {
			pk.Timestamp = ts
		}
		return pkts, nil
	}
	ts := p.abase + rtpTime(u.PTS, p.arate)
	switch {
	case p.aac != nil:
		pkts, err := p.aac.Encode([][]byte{u.Payload})
		if err != nil {
			return nil, err
		}
		for _, pk := range pkts {
			pk.Timestamp += ts
		}
		return pkts, nil
	case p.opus != nil:
		pk, err := p.opus.Encode(u.Payload)
		if err != nil {
			return nil, err
		}
		pk.Timestamp = ts
		return []*rtp.Packet{pk}, nil
	}
	return nil, nil
}

// outH264AU drops access unit delimiters and filler data and, on a
// keyframe without its parameter sets, puts sps and pps in front, so that
// every keyframe a viewer gets is decodable on its own (also after an
// in-band parameter change the SDP does not show).
func outH264AU(nalus [][]byte, key bool, sps, pps []byte) [][]byte {
	out := make([][]byte, 0, len(nalus)+2)
	hasSPS, hasPPS := false, false
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			continue
		case h264.NALUTypeSPS:
			hasSPS = true
		case h264.NALUTypePPS:
			hasPPS = true
		}
		out = append(out, n)
	}
	if key && !(hasSPS && hasPPS) && len(sps) > 0 && len(pps) > 0 {
		withPS := make([][]byte, 0, len(out)+2)
		withPS = append(withPS, sps, pps)
		for _, n := range out {
			if t := h264.NALUType(n[0] & 0x1f); t != h264.NALUTypeSPS && t != h264.NALUTypePPS {
				withPS = append(withPS, n)
			}
		}
		out = withPS
	}
	return out
}

// outH265AU is outH264AU for H.265 (VPS, SPS and PPS).
func outH265AU(nalus [][]byte, key bool, vps, sps, pps []byte) [][]byte {
	out := make([][]byte, 0, len(nalus)+3)
	have := 0
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_AUD_NUT:
			continue
		case h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT:
			have++
		}
		out = append(out, n)
	}
	if key && have < 3 && len(vps) > 0 && len(sps) > 0 && len(pps) > 0 {
		withPS := make([][]byte, 0, len(out)+3)
		withPS = append(withPS, vps, sps, pps)
		for _, n := range out {
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT:
			default:
				withPS = append(withPS, n)
			}
		}
		out = withPS
	}
	return out
}
