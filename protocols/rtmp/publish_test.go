package rtmp

import (
	"context"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

// TestPublishDropsUndecodableMedia: a publisher that sends, among good
// frames, access units whose AVCC length runs past the message (truncated
// NAL units) keeps publishing: the bad messages are dropped and counted,
// every good frame reaches the stream.
func TestPublishDropsUndecodableMedia(t *testing.T) {
	env, clip, c, track, w := h264Publisher(t, "live/bad")
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	var want uint64
	bad := 0
	for i, f := range clip.Frames {
		if !f.Video {
			continue
		}
		if err := w.WriteH264(track, f.PTS, f.DTS, f.NALUs); err != nil {
			t.Fatal(err)
		}
		for _, n := range f.NALUs {
			want += uint64(len(n))
		}
		if i%10 == 5 {
			// A NAL unit announced as 256 bytes, 2 bytes long.
			if err := c.Write(&message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000,
				Codec: message.CodecH264, Type: message.VideoTypeAU, DTS: f.DTS, AU: []byte{0, 0, 1, 0, 0x41, 0x9a}}); err != nil {
				t.Fatal(err)
			}
			bad++
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, ok := env.hub.Stream("live/bad")
		if ok && in.Producer != nil && in.BytesIn == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d bad messages: stream present %v, producer %v, %d of %d bytes in", bad, ok,
				ok && in.Producer != nil, in.BytesIn, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublishStartsWithoutWaiting: a publisher whose onMetaData announces
// its tracks is live as soon as their configurations arrived, not after
// two seconds of media (what gortmplib's track detection waits for
// otherwise): a publisher reconnecting under the same name costs its
// viewers that much less. Media is paced in real time.
func TestPublishStartsWithoutWaiting(t *testing.T) {
	env, clip, _, track, w := h264Publisher(t, "live/fast")
	start := time.Now()
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	for _, f := range clip.Frames {
		if !f.Video {
			continue
		}
		time.Sleep(time.Until(start.Add(f.DTS))) // real-time pacing
		if in, ok := env.hub.Stream("live/fast"); ok && in.Video != nil {
			if d := time.Since(start); d > time.Second {
				t.Fatalf("the stream was live %v after the publisher started, want < 1s", d)
			} else {
				t.Logf("live %v after the publisher started", d.Round(time.Millisecond))
			}
			return
		}
		if err := w.WriteH264(track, f.PTS, f.DTS, f.NALUs); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the stream never went live")
}

// h264Publisher connects a gortmplib publisher of name to a new server
// and returns it with a writer for the demo clip's H.264 track, not yet
// initialized (the caller times that).
func h264Publisher(t *testing.T, name string) (*testEnv, *demo.Clip, *gortmplib.Client, *gortmplib.Track, *gortmplib.Writer) {
	t.Helper()
	env := newTestEnv(t, Params{}, hub.Params{StartTimeout: 5 * time.Second})
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	c := &gortmplib.Client{URL: env.url(name), Publish: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	track := &gortmplib.Track{Codec: &codecs.H264{SPS: clip.Video.SPS, PPS: clip.Video.PPS}}
	return env, clip, c, track, &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{track}}
}
