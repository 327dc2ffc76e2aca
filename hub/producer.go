package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Producer feeds one stream: an RTMP publisher, an origin pull or the demo
// loop. Its methods are called from one goroutine. Buffers handed to it
// belong to the hub afterwards.
type Producer struct {
	s      *Stream
	sess   Session
	ctx    context.Context
	cancel context.CancelFunc

	id       uint64 // in the hub's session registry
	sawKey   bool
	accepted uint64 // units taken into the stream
}

// Done is closed when the producer must stop: it was taken over, its stream
// ended or the hub closed.
func (p *Producer) Done() <-chan struct{} { return p.ctx.Done() }

// Stream returns the stream's name.
func (p *Producer) Stream() string { return p.s.name }

// Accepted returns how many units the stream took from this producer.
// Units before the first keyframe (after the start or a Discontinuity)
// and parameter sets alone are not taken: a source whose count does not
// grow sends nothing a viewer could decode.
func (p *Producer) Accepted() uint64 {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.accepted
}

// Close detaches the producer. Viewers stay for the producer grace period.
func (p *Producer) Close() {
	p.cancel()
	p.s.h.sess.remove(p.id)
	p.s.detachProducer(p)
}

// Discontinuity tells the hub that the next unit does not follow the last
// one (an origin switch): the timeline is rebased and the GOP restarts at
// the next keyframe.
func (p *Producer) Discontinuity() {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.producer != p {
		return
	}
	s.tl.rebase = true
	p.sawKey = false
	s.ring.ResetGOP()
}

// SetTracks sets the codec configuration. Headers are re-sent to viewers
// only when the configuration differs from the one in effect.
func (p *Producer) SetTracks(video, audio *Track) error {
	if video == nil && audio == nil {
		return ErrNoTracks
	}
	if video != nil && !video.Codec.IsVideo() {
		return fmt.Errorf("%w: %v as video", ErrUnsupportedCodec, video.Codec)
	}
	if audio != nil && audio.Codec != CodecAAC && audio.Codec != CodecOpus {
		return fmt.Errorf("%w: %v as audio", ErrUnsupportedCodec, audio.Codec)
	}
	s := p.s
	s.mu.Lock()
	if s.producer != p {
		s.mu.Unlock()
		return ErrReplaced
	}
	first := s.setTracksLocked(video, audio)
	s.mu.Unlock()
	if first {
		s.emit(Event{Type: StreamStarted, Stream: s.name, Producer: p.sess})
	}
	return nil
}

// setTracksLocked sets the configuration; first reports that it is the
// stream's first one (the stream is ready).
func (s *Stream) setTracksLocked(video, audio *Track) (first bool) {
	if t := s.tracks; t != nil && t.Video.Equal(video) && t.Audio.Equal(audio) {
		return false
	}
	first = s.tracks == nil
	s.tracks = &Tracks{Video: video, Audio: audio, Start: s.tl.maxOut}
	if first {
		close(s.ready)
	}
	s.log.Info("tracks", "video", trackString(video), "audio", trackString(audio))
	return first
}

func trackString(t *Track) string {
	if t == nil {
		return "none"
	}
	if t.Codec.IsVideo() {
		return fmt.Sprintf("%v %dx%d", t.Codec, t.Width, t.Height)
	}
	return fmt.Sprintf("%v %dHz %dch", t.Codec, t.SampleRate, t.Channels)
}

// WriteVideo adds a video access unit. In-band H.264 parameter sets that
// differ from the current ones update the track configuration.
func (p *Producer) WriteVideo(pts, dts time.Duration, nalus [][]byte) error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.producer != p {
		return ErrReplaced
	}
	t := s.tracks
	if t == nil || t.Video == nil {
		return fmt.Errorf("video unit before video track configuration")
	}
	if t.Video.Codec == CodecH264 {
		s.updateH264Locked(nalus)
		t = s.tracks
	}
	if !hasVCL(t.Video.Codec, nalus) {
		return nil // parameter sets or SEI alone: nothing to show
	}
	key := IsKeyframe(t.Video.Codec, nalus)
	if !p.sawKey {
		if !key {
			return nil // a viewer cannot decode anything before the first keyframe
		}
		p.sawKey = true
	}
	size := 0
	for _, n := range nalus {
		size += len(n)
	}
	out := s.tl.mapDTS(true, dts)
	p.accepted++
	now := time.Now()
	s.lastMedia = now
	s.bytesIn += uint64(size)
	s.sampleLocked(now)
	s.ring.Append(&Unit{Video: true, DTS: out, PTS: out + (pts - dts), Key: key,
		NALUs: nalus, Tracks: t, Ingest: now, size: size})
	return nil
}

// updateH264Locked applies in-band SPS/PPS that differ from the track's.
func (s *Stream) updateH264Locked(nalus [][]byte) {
	var sps, pps []byte
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		}
	}
	if sps == nil && pps == nil {
		return
	}
	cur := s.tracks.Video
	if sps == nil {
		sps = cur.SPS
	}
	if pps == nil {
		pps = cur.PPS
	}
	if string(sps) == string(cur.SPS) && string(pps) == string(cur.PPS) {
		return
	}
	nt, err := NewH264Track(sps, pps)
	if err != nil {
		// Keep the configuration we have; say so, at most every 10 s.
		if now := time.Now(); now.Sub(s.badParamsLogged) >= 10*time.Second {
			s.badParamsLogged = now
			s.log.Warn("in-band parameter sets do not parse: keeping the configuration in use", "err", err)
		}
		return
	}
	s.setTracksLocked(nt, s.tracks.Audio)
}

// WriteAudio adds an audio frame.
func (p *Producer) WriteAudio(pts time.Duration, payload []byte) error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.producer != p {
		return ErrReplaced
	}
	t := s.tracks
	if t == nil || t.Audio == nil {
		return fmt.Errorf("audio frame before audio track configuration")
	}
	key := t.Video == nil
	if !p.sawKey {
		if !key {
			return nil // wait for the first video keyframe
		}
		p.sawKey = true
	}
	out := s.tl.mapDTS(false, pts)
	p.accepted++
	now := time.Now()
	s.lastMedia = now
	s.bytesIn += uint64(len(payload))
	s.sampleLocked(now)
	s.ring.Append(&Unit{DTS: out, PTS: out, Key: key, Payload: payload, Tracks: t,
		Ingest: now, size: len(payload)})
	return nil
}

// hasVCL reports whether an access unit carries picture data.
func hasVCL(c Codec, nalus [][]byte) bool {
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		if c == CodecH265 {
			if (n[0]>>1)&0x3f < 32 {
				return true
			}
		} else if t := n[0] & 0x1f; t >= 1 && t <= 5 {
			return true
		}
	}
	return false
}
