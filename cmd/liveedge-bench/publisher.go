package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/liveedge/liveedge/protocols/demo"
)

// publisher sends the demo clip, looped in real time with continuous
// timestamps, to the server over RTMP. Every video access unit carries an
// SEI with the publisher's wall clock, and, to reach the target bitrate, a
// filler-data NAL unit.
type publisher struct {
	clip      *demo.Clip
	fillerLen int // bytes of the filler NAL unit per video AU (0: none)
	// keyEvery, when > 1, keeps one keyframe in keyEvery: the IDR slices
	// of the others are relabelled as non-IDR slices (nal_unit_type 5 to
	// 1), so the server sees a GOP keyEvery times longer. The result does
	// not decode; it is for memory runs, where nothing decodes.
	keyEvery int

	// bytes counts the media bytes written: FLV tag bodies (video: 5-byte
	// header + 4-byte NALU lengths + NALUs; audio: 2-byte header + frame).
	bytes   atomic.Int64
	started chan struct{} // closed once the stream is published
	// maxLate is the longest a write started after its schedule (ns), and
	// maxWrite the longest a write took; reset them to measure a window.
	maxLate, maxWrite atomic.Int64
}

const publishTimeout = 10 * time.Second

func newPublisher(clip *demo.Clip, targetBps int64) *publisher {
	p := &publisher{clip: clip, started: make(chan struct{})}
	var video, audio, nv int
	for i := range clip.Frames {
		f := &clip.Frames[i]
		if f.Video {
			nv++
			video += 5 + 4 + seiNALUSize
			for _, n := range f.NALUs {
				video += 4 + len(n)
			}
		} else {
			audio += 2 + len(f.Payload)
		}
	}
	want := float64(targetBps) * clip.Duration.Seconds() / 8
	if extra := want - float64(video+audio); nv > 0 && extra > 0 {
		if per := int(extra/float64(nv)) - 4; per >= 2 {
			p.fillerLen = per
		}
	}
	return p
}

// run publishes to rawURL until ctx ends or a write fails.
func (p *publisher) run(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	ictx, cancel := context.WithTimeout(ctx, publishTimeout)
	err = c.Initialize(ictx)
	cancel()
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	nc := c.NetConn()
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	// The server sends acknowledgements; nothing else needs reading.
	go io.Copy(io.Discard, nc) //nolint:errcheck // ends when nc closes

	vt := &gortmplib.Track{Codec: &codecs.H264{SPS: p.clip.Video.SPS, PPS: p.clip.Video.PPS}}
	tracks := []*gortmplib.Track{vt}
	var at *gortmplib.Track
	if a := p.clip.Audio; a != nil {
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(a.AudioConfig); err != nil {
			return fmt.Errorf("clip audio config: %w", err)
		}
		at = &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: &asc}}
		tracks = append(tracks, at)
	}
	nc.SetWriteDeadline(time.Now().Add(publishTimeout))
	w := &gortmplib.Writer{Conn: c, Tracks: tracks}
	if err := w.Initialize(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	close(p.started)

	var filler []byte
	if p.fillerLen > 0 {
		filler = appendFiller(nil, p.fillerLen)
	}
	sei := make([]byte, 0, 2*seiNALUSize)
	nalus := make([][]byte, 0, 16)
	timer := time.NewTimer(0)
	defer timer.Stop()
	start := time.Now()
	idrs := 0
	for loop := time.Duration(0); ; loop += p.clip.Duration {
		for i := range p.clip.Frames {
			f := &p.clip.Frames[i]
			if d := time.Until(start.Add(loop + f.DTS)); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return nil
				}
			} else if ctx.Err() != nil {
				return nil
			}
			t0 := time.Now()
			storeMax(&p.maxLate, int64(t0.Sub(start.Add(loop+f.DTS))))
			nc.SetWriteDeadline(t0.Add(publishTimeout))
			if !f.Video {
				if at == nil {
					continue
				}
				if err := w.WriteMPEG4Audio(at, loop+f.PTS, f.Payload); err != nil {
					return p.writeErr(ctx, err)
				}
				storeMax(&p.maxWrite, int64(time.Since(t0)))
				p.bytes.Add(int64(2 + len(f.Payload)))
				continue
			}
			// The SEI goes before the first slice, the filler after the
			// last NAL unit.
			nalus = nalus[:0]
			seiAt := -1
			relabel := false
			if p.keyEvery > 1 && isIDR(f.NALUs) {
				relabel = idrs%p.keyEvery != 0
				idrs++
			}
			for _, n := range f.NALUs {
				if relabel && len(n) > 0 && n[0]&0x1f == naluTypeIDR {
					n = append([]byte{n[0]&^0x1f | 1}, n[1:]...)
				}
				if seiAt < 0 && len(n) > 0 && isVCL(n[0]&0x1f) {
					seiAt = len(nalus)
					nalus = append(nalus, nil)
				}
				nalus = append(nalus, n)
			}
			if seiAt < 0 {
				seiAt = len(nalus)
				nalus = append(nalus, nil)
			}
			if filler != nil {
				nalus = append(nalus, filler)
			}
			size := 5
			for _, n := range nalus {
				size += 4 + len(n)
			}
			size += seiNALUSize
			nalus[seiAt] = appendSEI(sei[:0], time.Now().UnixNano())
			if err := w.WriteH264(vt, loop+f.PTS, loop+f.DTS, nalus); err != nil {
				return p.writeErr(ctx, err)
			}
			storeMax(&p.maxWrite, int64(time.Since(t0)))
			p.bytes.Add(int64(size))
		}
	}
}

func (p *publisher) writeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("publish: %w", err)
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// isIDR reports whether an access unit holds an IDR slice.
func isIDR(nalus [][]byte) bool {
	for _, n := range nalus {
		if len(n) > 0 && n[0]&0x1f == naluTypeIDR {
			return true
		}
	}
	return false
}
