// Package demo is the built-in looping test stream: a small H.264 + AAC
// clip shipped with the binary, replayed in real time with continuous
// timestamps. It serves live/demo in the default configuration and is the
// origin named "demo" in a configuration file.
package demo

import (
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/liveedge/liveedge/hub"
)

//go:embed clip.flv
var clipFLV []byte

// Frame is one unit of a clip.
type Frame struct {
	Video    bool
	DTS, PTS time.Duration
	NALUs    [][]byte
	Payload  []byte
}

// Clip is a decoded FLV clip.
type Clip struct {
	Video, Audio *hub.Track
	Frames       []Frame
	Duration     time.Duration
}

// Default returns the embedded clip.
func Default() (*Clip, error) { return ParseFLV(clipFLV) }

// FLV returns the embedded clip as the FLV file it is (for tools that
// publish it with ffmpeg); the bytes are shared and must not be modified.
func FLV() []byte { return clipFLV }

// ParseFLV decodes an FLV file holding H.264 and AAC.
func ParseFLV(b []byte) (*Clip, error) {
	if len(b) < 13 || string(b[:3]) != "FLV" {
		return nil, errors.New("demo: not an FLV file")
	}
	off := int(binary.BigEndian.Uint32(b[5:9])) + 4
	c := &Clip{}
	var lastVideo time.Duration
	for off+11 <= len(b) {
		typ := b[off]
		size := int(b[off+1])<<16 | int(b[off+2])<<8 | int(b[off+3])
		ts := time.Duration(uint32(b[off+7])<<24|uint32(b[off+4])<<16|uint32(b[off+5])<<8|uint32(b[off+6])) * time.Millisecond
		if off+11+size > len(b) {
			break
		}
		body := b[off+11 : off+11+size]
		off += 11 + size + 4
		switch typ {
		case 9:
			if len(body) < 5 || body[0]&0x0f != 7 {
				continue
			}
			cts := time.Duration(int32(uint32(body[2])<<24|uint32(body[3])<<16|uint32(body[4])<<8)>>8) * time.Millisecond
			switch body[1] {
			case 0:
				sps, pps, err := parseAVCC(body[5:])
				if err != nil {
					return nil, err
				}
				if c.Video, err = hub.NewH264Track(sps, pps); err != nil {
					return nil, err
				}
			case 1:
				var au h264.AVCC
				if err := au.Unmarshal(body[5:]); err != nil {
					continue
				}
				c.Frames = append(c.Frames, Frame{Video: true, DTS: ts, PTS: ts + cts, NALUs: au})
				lastVideo = max(lastVideo, ts)
			}
		case 8:
			if len(body) < 2 || body[0]>>4 != 10 {
				continue
			}
			if body[1] == 0 {
				var err error
				if c.Audio, err = hub.NewAACTrack(body[2:]); err != nil {
					return nil, err
				}
			} else {
				c.Frames = append(c.Frames, Frame{DTS: ts, PTS: ts, Payload: body[2:]})
			}
		}
	}
	if c.Video == nil || len(c.Frames) == 0 {
		return nil, errors.New("demo: clip has no H.264 video")
	}
	// The loop period: one video frame interval after the last video
	// frame, so that video keeps its cadence across the wrap (a longer
	// gap there makes an LL-HLS part longer than the others, and players
	// that check the part target, iOS's, fail). Audio frames that would
	// reach past the wrap are dropped.
	//
	// A frame rate the SPS does not give, or gives as nonsense (a file
	// is untrusted input), counts as 25.
	fps := c.Video.FPS
	if !(fps > 0 && fps <= 1000) {
		fps = 25
	}
	// The clip starts at its first video frame (time 0).
	var first time.Duration = -1
	for _, f := range c.Frames {
		if f.Video {
			first = f.DTS
			break
		}
	}
	if first < 0 {
		return nil, errors.New("demo: clip has no H.264 video")
	}
	c.Duration = lastVideo - first + time.Duration(float64(time.Second)/fps)
	kept := c.Frames[:0]
	for _, f := range c.Frames {
		f.DTS -= first
		f.PTS -= first
		// Frames outside the loop period (timestamps before the first
		// video frame, or past the loop in a file whose timestamps go
		// back) would break the timeline's order when looping.
		if f.DTS < 0 || f.DTS >= c.Duration || (!f.Video && f.DTS+21*time.Millisecond > c.Duration) {
			continue
		}
		kept = append(kept, f)
	}
	c.Frames = kept
	if len(c.Frames) == 0 {
		return nil, errors.New("demo: clip has no frames on its timeline")
	}
	return c, nil
}

func parseAVCC(b []byte) (sps, pps []byte, err error) {
	bad := errors.New("demo: invalid AVCDecoderConfigurationRecord")
	if len(b) < 8 || b[5]&0x1f < 1 {
		return nil, nil, bad
	}
	n := int(binary.BigEndian.Uint16(b[6:8]))
	if len(b) < 8+n+3 {
		return nil, nil, bad
	}
	sps = b[8 : 8+n]
	b = b[8+n:]
	if b[0] < 1 {
		return nil, nil, bad
	}
	m := int(binary.BigEndian.Uint16(b[1:3]))
	if len(b) < 3+m {
		return nil, nil, bad
	}
	return sps, b[3 : 3+m], nil
}

// Run publishes the clip to the stream in a loop, in real time, until ctx
// ends or the producer is told to stop.
func Run(ctx context.Context, h *hub.Hub, name string, clip *Clip, log *slog.Logger) error {
	p, err := h.Publish(name, hub.Session{Protocol: "demo", Remote: "builtin"})
	if err != nil {
		return fmt.Errorf("demo %s: %w", name, err)
	}
	defer p.Close()
	log.Info("demo source started", "stream", name)
	return Feed(ctx, p, clip, nil)
}

// Feed writes the clip to p in a loop, in real time, until ctx ends or p is
// told to stop (nil), or p refuses a unit. onMedia, if set, is called once
// the first unit is written.
func Feed(ctx context.Context, p *hub.Producer, clip *Clip, onMedia func()) error {
	if len(clip.Frames) == 0 || clip.Duration <= 0 {
		return errors.New("demo: empty clip")
	}
	if err := p.SetTracks(clip.Video, clip.Audio); err != nil {
		return err
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var err error
	for loop := time.Duration(0); ; loop += clip.Duration {
		for i := range clip.Frames {
			f := &clip.Frames[i]
			if d := time.Until(start.Add(loop + f.DTS)); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return nil
				case <-p.Done():
					return nil
				}
			}
			if f.Video {
				err = p.WriteVideo(loop+f.PTS, loop+f.DTS, f.NALUs)
			} else {
				err = p.WriteAudio(loop+f.DTS, f.Payload)
			}
			if err != nil {
				return err
			}
			if onMedia != nil {
				onMedia()
				onMedia = nil
			}
		}
	}
}
