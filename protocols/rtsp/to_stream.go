package rtsp

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpfragmented"
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

// This file maps what an RTSP origin sends (SDP formats, RTP packets) to
// what the hub takes (tracks, access units with DTS/PTS).

// pullUnit is one decoded access unit (video) or frame (audio), on the
// timeline of the RTSP session.
type pullUnit struct {
	video    bool
	pts, dts time.Duration
	nalus    [][]byte // video
	payload  []byte   // audio
}

// pullTrack turns the RTP packets of one format of one media into units.
// Its decode method is called from one goroutine at a time (gortsplib's
// reader for that media).
type pullTrack struct {
	media  *description.Media
	format format.Format
	video  bool
	codec  hub.Codec
	name   string // codec as the SDP names it, for messages

	// track is the hub configuration; nil until the H.264/H.265
	// parameter sets are known (neither in the SDP nor seen in-band yet).
	// Only DialPull reads it after setup.
	track *hub.Track

	// video state
	vps, sps, pps []byte // newest parameter sets, from the SDP or in-band
	h264Dec       *rtph264.Decoder
	h265Dec       *rtph265.Decoder
	h264DTS       *h264.DTSExtractor
	h265DTS       *h265.DTSExtractor
	dtsOK         bool // the DTS extractor produced a DTS since its last reset

	// audio state
	aacDec    *rtpmpeg4audio.Decoder
	latmDec   *rtpfragmented.Decoder
	latmConf  *mpeg4audio.StreamMuxConfig
	opusDec   *rtpsimpleaudio.Decoder
	frameDur  time.Duration // duration of one AAC access unit
	clockRate int64

	// dropped counts packets or units dropped because they did not
	// decode; read from other goroutines.
	dropped atomic.Uint64
}

// pullNewTrack returns the decoder of forma, or nil and the reason when
// the hub cannot relay it.
func pullNewTrack(medi *description.Media, forma format.Format) (*pullTrack, string) {
	t := &pullTrack{media: medi, format: forma, name: forma.Codec(), clockRate: int64(forma.ClockRate())}
	if t.clockRate <= 0 {
		return nil, "no clock rate"
	}
	var err error
	switch f := forma.(type) {
	case *format.H264:
		t.video, t.codec = true, hub.CodecH264
		if t.h264Dec, err = f.CreateDecoder(); err != nil {
			return nil, err.Error()
		}
		t.sps, t.pps = f.SafeParams()
		t.resetDTS()
		if tr, err := hub.NewH264Track(t.sps, t.pps); err == nil {
			t.track = tr
		} else {
			t.sps, t.pps = nil, nil // invalid or missing: wait for in-band ones
		}
	case *format.H265:
		t.video, t.codec = true, hub.CodecH265
		if t.h265Dec, err = f.CreateDecoder(); err != nil {
			return nil, err.Error()
		}
		t.vps, t.sps, t.pps = f.SafeParams()
		t.resetDTS()
		if tr, err := hub.NewH265Track(t.vps, t.sps, t.pps); err == nil {
			t.track = tr
		} else {
			t.vps, t.sps, t.pps = nil, nil, nil
		}
	case *format.MPEG4Audio:
		if f.Config == nil {
			return nil, "no AudioSpecificConfig"
		}
		asc, err := f.Config.Marshal()
		if err != nil {
			return nil, err.Error()
		}
		if t.track, err = hub.NewAACTrack(asc); err != nil {
			return nil, err.Error()
		}
		if t.aacDec, err = f.CreateDecoder(); err != nil {
			return nil, err.Error()
		}
		t.codec = hub.CodecAAC
		t.frameDur = pullSamples(mpeg4audio.SamplesPerAccessUnit, f.Config.SampleRate)
	case *format.MPEG4AudioLATM:
		if f.CPresent || f.StreamMuxConfig == nil || len(f.StreamMuxConfig.Programs) == 0 ||
			len(f.StreamMuxConfig.Programs[0].Layers) == 0 ||
			f.StreamMuxConfig.Programs[0].Layers[0].AudioSpecificConfig == nil {
			return nil, "LATM with in-band configuration"
		}
		conf := f.StreamMuxConfig.Programs[0].Layers[0].AudioSpecificConfig
		asc, err := conf.Marshal()
		if err != nil {
			return nil, err.Error()
		}
		if t.track, err = hub.NewAACTrack(asc); err != nil {
			return nil, err.Error()
		}
		if t.latmDec, err = f.CreateDecoder(); err != nil {
			return nil, err.Error()
		}
		t.codec, t.latmConf = hub.CodecAAC, f.StreamMuxConfig
		t.frameDur = pullSamples(mpeg4audio.SamplesPerAccessUnit, conf.SampleRate)
	case *format.Opus:
		if t.opusDec, err = f.CreateDecoder(); err != nil {
			return nil, err.Error()
		}
		t.codec = hub.CodecOpus
		t.track = hub.NewOpusTrack(f.ChannelCount)
	default:
		return nil, "codec not relayed"
	}
	return t, ""
}

func pullSamples(n, rate int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second / time.Duration(rate)
}

func (t *pullTrack) resetDTS() {
	t.dtsOK = false
	switch t.codec {
	case hub.CodecH264:
		t.h264DTS = &h264.DTSExtractor{}
		t.h264DTS.Initialize()
	case hub.CodecH265:
		t.h265DTS = &h265.DTSExtractor{}
		t.h265DTS.Initialize()
	}
}

// duration converts a timestamp in the track's clock rate.
func (t *pullTrack) duration(ticks int64) time.Duration {
	cr := t.clockRate
	return time.Duration(ticks/cr)*time.Second + time.Duration(ticks%cr)*time.Second/time.Duration(cr)
}

// decode consumes one RTP packet whose PTS, in the track's clock rate, is
// pts, and emits the units it completes.
func (t *pullTrack) decode(pkt *rtp.Packet, pts int64, emit func(pullUnit)) {
	switch {
	case t.h264Dec != nil:
		au, err := t.h264Dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				t.dropped.Add(1)
			}
			return
		}
		t.emitVideo(au, pts, emit)
	case t.h265Dec != nil:
		au, err := t.h265Dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph265.ErrMorePacketsNeeded) && !errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
				t.dropped.Add(1)
			}
			return
		}
		t.emitVideo(au, pts, emit)
	case t.aacDec != nil:
		aus, err := t.aacDec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
				t.dropped.Add(1)
			}
			return
		}
		base := t.duration(pts)
		for i, au := range aus {
			emit(pullUnit{pts: base + time.Duration(i)*t.frameDur, payload: au})
		}
	case t.latmDec != nil:
		buf, err := t.latmDec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtpfragmented.ErrMorePacketsNeeded) {
				t.dropped.Add(1)
			}
			return
		}
		ame := mpeg4audio.AudioMuxElement{StreamMuxConfig: t.latmConf}
		if err := ame.Unmarshal(buf); err != nil {
			t.dropped.Add(1)
			return
		}
		base := t.duration(pts)
		for i, sub := range ame.Payloads {
			if len(sub) == 0 || len(sub[0]) == 0 || len(sub[0][0]) == 0 {
				continue
			}
			emit(pullUnit{pts: base + time.Duration(i)*t.frameDur, payload: sub[0][0]})
		}
	case t.opusDec != nil:
		p, err := t.opusDec.Decode(pkt)
		if err != nil {
			t.dropped.Add(1)
			return
		}
		emit(pullUnit{pts: t.duration(pts), payload: p})
	}
}

// emitVideo notes in-band parameter sets, puts the known ones in front of
// a random access unit that lacks them (decoders and the DTS extractor
// need them there), derives the DTS and emits the unit.
func (t *pullTrack) emitVideo(au [][]byte, pts int64, emit func(pullUnit)) {
	h265 := t.codec == hub.CodecH265
	var hasVPS, hasSPS, hasPPS bool
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch pullParamType(h265, n) {
		case pullVPS:
			t.vps, hasVPS = n, true
		case pullSPS:
			t.sps, hasSPS = n, true
		case pullPPS:
			t.pps, hasPPS = n, true
		}
	}
	if t.isRandomAccess(au) {
		var pre [][]byte
		if h265 && !hasVPS && t.vps != nil {
			pre = append(pre, t.vps)
		}
		if !hasSPS && t.sps != nil {
			pre = append(pre, t.sps)
		}
		if !hasPPS && t.pps != nil {
			pre = append(pre, t.pps)
		}
		if len(pre) > 0 {
			au = append(pre, au...)
		}
	}
	var dts int64
	var err error
	if h265 {
		dts, err = t.h265DTS.Extract(au, pts)
	} else {
		dts, err = t.h264DTS.Extract(au, pts)
	}
	if err != nil {
		// Before the first random access unit this is expected; later
		// the extractor restarts at the next one.
		if t.dtsOK {
			t.dropped.Add(1)
			t.resetDTS()
		}
		return
	}
	t.dtsOK = true
	emit(pullUnit{video: true, pts: t.duration(pts), dts: t.duration(dts), nalus: au})
}

func (t *pullTrack) isRandomAccess(au [][]byte) bool {
	if t.codec == hub.CodecH265 {
		return h265.IsRandomAccess(au)
	}
	return h264.IsRandomAccess(au)
}

// pullParamSets collects the newest in-band parameter sets.
type pullParamSets struct{ vps, sps, pps []byte }

// add notes the parameter sets in nalus and returns the track they make,
// once they are complete and valid.
func (p *pullParamSets) add(codec hub.Codec, nalus [][]byte) *hub.Track {
	h265 := codec == hub.CodecH265
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch pullParamType(h265, n) {
		case pullVPS:
			p.vps = n
		case pullSPS:
			p.sps = n
		case pullPPS:
			p.pps = n
		}
	}
	var tr *hub.Track
	var err error
	switch {
	case h265 && p.vps != nil && p.sps != nil && p.pps != nil:
		tr, err = hub.NewH265Track(p.vps, p.sps, p.pps)
	case !h265 && p.sps != nil && p.pps != nil:
		tr, err = hub.NewH264Track(p.sps, p.pps)
	}
	if err != nil {
		return nil
	}
	return tr
}

const (
	pullOther = iota
	pullVPS
	pullSPS
	pullPPS
)

func pullParamType(h265NALU bool, n []byte) int {
	if h265NALU {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			return pullVPS
		case h265.NALUType_SPS_NUT:
			return pullSPS
		case h265.NALUType_PPS_NUT:
			return pullPPS
		}
		return pullOther
	}
	switch h264.NALUType(n[0] & 0x1f) {
	case h264.NALUTypeSPS:
		return pullSPS
	case h264.NALUTypePPS:
		return pullPPS
	}
	return pullOther
}

// pullDescribeFormat names a format for messages: "video H264" etc.
func pullDescribeFormat(medi *description.Media, forma format.Format) string {
	return fmt.Sprintf("%s %s", medi.Type, forma.Codec())
}
