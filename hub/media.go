package hub

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// Codec identifies a track's codec.
type Codec int

// Codecs the hub relays.
const (
	CodecH264 Codec = iota + 1
	CodecH265
	CodecAAC
	CodecOpus
)

func (c Codec) String() string {
	switch c {
	case CodecH264:
		return "H264"
	case CodecH265:
		return "H265"
	case CodecAAC:
		return "AAC"
	case CodecOpus:
		return "Opus"
	}
	return fmt.Sprintf("codec(%d)", int(c))
}

// IsVideo reports whether the codec is a video codec.
func (c Codec) IsVideo() bool { return c == CodecH264 || c == CodecH265 }

// ErrUnsupportedCodec is returned for a codec the hub does not relay.
var ErrUnsupportedCodec = errors.New("unsupported codec (liveedge relays H.264, H.265, AAC and Opus)")

// Track is the codec configuration of one track. It is immutable once
// handed to the hub.
type Track struct {
	Codec Codec

	// Video: parameter sets (VPS for H.265 only).
	VPS, SPS, PPS []byte
	Width, Height int
	FPS           float64

	// Audio: AAC AudioSpecificConfig (raw) or Opus channel count.
	AudioConfig []byte
	SampleRate  int
	Channels    int
}

// NewH264Track builds an H.264 track from its parameter sets.
func NewH264Track(sps, pps []byte) (*Track, error) {
	if len(sps) == 0 || len(pps) == 0 {
		return nil, errors.New("H264: missing SPS or PPS")
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("H264: invalid SPS: %w", err)
	}
	return &Track{Codec: CodecH264, SPS: clone(sps), PPS: clone(pps),
		Width: s.Width(), Height: s.Height(), FPS: frameRate(s.FPS())}, nil
}

// NewH265Track builds an H.265 track from its parameter sets.
func NewH265Track(vps, sps, pps []byte) (*Track, error) {
	if len(vps) == 0 || len(sps) == 0 || len(pps) == 0 {
		return nil, errors.New("H265: missing VPS, SPS or PPS")
	}
	var s h265.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("H265: invalid SPS: %w", err)
	}
	return &Track{Codec: CodecH265, VPS: clone(vps), SPS: clone(sps), PPS: clone(pps),
		Width: s.Width(), Height: s.Height(), FPS: frameRate(s.FPS())}, nil
}

// NewAACTrack builds an AAC track from its AudioSpecificConfig.
func NewAACTrack(asc []byte) (*Track, error) {
	var c mpeg4audio.AudioSpecificConfig
	if err := c.Unmarshal(asc); err != nil {
		return nil, fmt.Errorf("AAC: invalid AudioSpecificConfig: %w", err)
	}
	if c.SampleRate <= 0 {
		// An explicit frequency of 0: every timestamp conversion of the
		// outputs divides or multiplies by the rate.
		return nil, errors.New("AAC: invalid AudioSpecificConfig: sample rate 0")
	}
	return &Track{Codec: CodecAAC, AudioConfig: clone(asc), SampleRate: c.SampleRate, Channels: c.ChannelCount}, nil
}

// NewOpusTrack builds an Opus track.
func NewOpusTrack(channels int) *Track {
	if channels <= 0 {
		channels = 2
	}
	return &Track{Codec: CodecOpus, SampleRate: 48000, Channels: channels}
}

// Equal reports whether two tracks carry the same configuration.
func (t *Track) Equal(o *Track) bool {
	if t == nil || o == nil {
		return t == o
	}
	return t.Codec == o.Codec && bytes.Equal(t.VPS, o.VPS) && bytes.Equal(t.SPS, o.SPS) &&
		bytes.Equal(t.PPS, o.PPS) && bytes.Equal(t.AudioConfig, o.AudioConfig) &&
		t.Channels == o.Channels && t.SampleRate == o.SampleRate
}

// Tracks is the codec configuration in effect for a run of units. Every
// unit points to the Tracks it was produced under; a configuration change
// makes a new Tracks, so outputs notice it with a pointer compare.
type Tracks struct {
	Video *Track
	Audio *Track
	// Start is the stream time at which this configuration took effect.
	Start time.Duration

	enc encodings
}

// Encoded returns the encoding of the track headers in format f, computing
// it with enc the first time any output asks for it.
func (t *Tracks) Encoded(f Format, enc func(*Tracks) []byte) []byte {
	return t.enc.get(f, func() []byte { return enc(t) })
}

// Format names an output encoding memoised on units and track headers.
type Format int

// Formats known to the hub. Outputs that encode a unit in the same way for
// every viewer store the result here, so the work is done once per stream.
const (
	FormatRTMP Format = iota
	FormatFLV
	numFormats
)

type encodings [numFormats]atomic.Pointer[[]byte]

func (e *encodings) get(f Format, enc func() []byte) []byte {
	if p := e[f].Load(); p != nil {
		return *p
	}
	b := enc()
	if e[f].CompareAndSwap(nil, &b) {
		return b
	}
	return *e[f].Load()
}

// Unit is one access unit (video) or frame (audio), normalised once at
// ingest and shared, immutable, by every output.
type Unit struct {
	Video bool
	// DTS and PTS on the stream's monotonic timeline.
	DTS, PTS time.Duration
	// Key is set on video keyframes, and on every audio unit of a stream
	// without video: a viewer may start on it.
	Key bool
	// NALUs of a video access unit (no start codes, no length prefixes).
	NALUs [][]byte
	// Payload of an audio frame (raw AAC access unit or Opus packet).
	Payload []byte
	// Tracks in effect for this unit.
	Tracks *Tracks
	// Ingest is the wall-clock time the unit entered the hub.
	Ingest time.Time

	size int
	enc  encodings
}

// IsKey implements cache.Item.
func (u *Unit) IsKey() bool { return u.Key }

// Size implements cache.Item.
func (u *Unit) Size() int { return u.size }

// Time implements cache.Item.
func (u *Unit) Time() time.Duration { return u.DTS }

// Encoded returns the unit in format f, computing it with enc the first
// time any output asks for it. enc must be deterministic.
func (u *Unit) Encoded(f Format, enc func(*Unit) []byte) []byte {
	return u.enc.get(f, func() []byte { return enc(u) })
}

// IsKeyframe reports whether an access unit of codec c is a random access
// point. Empty NAL units (which a publisher can send) are skipped.
func IsKeyframe(c Codec, nalus [][]byte) bool {
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch c {
		case CodecH264:
			if h264.NALUType(n[0]&0x1f) == h264.NALUTypeIDR {
				return true
			}
		case CodecH265:
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_IDR_W_RADL, h265.NALUType_IDR_N_LP, h265.NALUType_CRA_NUT:
				return true
			}
		default:
			return false
		}
	}
	return false
}

// frameRate is an SPS's frame rate, 0 (unknown) when the timing info
// gives none or nonsense: a zero num_units_in_tick makes it +Inf or NaN.
func frameRate(fps float64) float64 {
	if math.IsNaN(fps) || math.IsInf(fps, 0) || fps < 0 {
		return 0
	}
	return fps
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
