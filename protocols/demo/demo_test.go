package demo

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
)

func TestDefaultClip(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if c.Video == nil || c.Video.Codec != hub.CodecH264 || c.Video.Width != 640 || c.Video.Height != 360 {
		t.Fatalf("video track = %+v", c.Video)
	}
	if c.Audio == nil || c.Audio.Codec != hub.CodecAAC || c.Audio.SampleRate != 48000 {
		t.Fatalf("audio track = %+v", c.Audio)
	}
	if c.Duration < 9*time.Second || c.Duration > 11*time.Second {
		t.Fatalf("duration = %v", c.Duration)
	}
	for _, f := range c.Frames {
		if f.Video {
			if !hub.IsKeyframe(hub.CodecH264, f.NALUs) {
				t.Fatal("the clip's first video frame is not a keyframe")
			}
			break
		}
	}
}

func TestParseFLVRejectsBadInput(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     nil,
		"not flv":   []byte("GIF89a......."),
		"truncated": clipFLV[:200],
		"no video":  clipFLV[:13],
	} {
		if _, err := ParseFLV(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestRunLoopsWithContinuousTimestamps plays the clip past its loop point
// and checks that the hub sees video timestamps advance by one frame.
func TestRunLoopsWithContinuousTimestamps(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	// A short clip: the last two seconds from a keyframe, so the loop
	// point comes quickly.
	short := &Clip{Video: c.Video, Audio: c.Audio}
	var base time.Duration = -1
	for _, f := range c.Frames {
		if f.DTS < c.Duration-2*time.Second {
			continue
		}
		if base < 0 {
			if !f.Video || !hub.IsKeyframe(hub.CodecH264, f.NALUs) {
				continue
			}
			base = f.DTS
		}
		f.DTS -= base
		f.PTS -= base
		short.Frames = append(short.Frames, f)
	}
	short.Duration = c.Duration - base

	h := hub.New(hub.Params{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, h, "live/demo", short, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	sub, err := h.Subscribe(ctx, "live/demo", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var last time.Duration = -1
	frames := 0
	deadline, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	for frames < 60 { // more than one loop
		units, err := sub.Next(deadline, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range units {
			if !u.Video {
				continue
			}
			if last >= 0 {
				if d := u.DTS - last; d < 30*time.Millisecond || d > 70*time.Millisecond {
					t.Fatalf("video DTS step %v at frame %d", d, frames)
				}
			}
			last = u.DTS
			frames++
		}
	}
	sub.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
