package rtmp

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
)

// hevcAUs reads the test HEVC elementary stream: parameter sets and access
// units (one slice per picture).
func hevcAUs(t *testing.T) (vps, sps, pps []byte, aus [][][]byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/clip.h265")
	if err != nil {
		t.Fatal(err)
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	for _, n := range nalus {
		switch typ := (n[0] >> 1) & 0x3f; {
		case typ == 32:
			vps = n
		case typ == 33:
			sps = n
		case typ == 34:
			pps = n
		case typ < 32:
			aus = append(aus, [][]byte{n})
		}
	}
	if vps == nil || sps == nil || pps == nil || len(aus) == 0 {
		t.Fatal("testdata/clip.h265 lacks parameter sets or pictures")
	}
	return vps, sps, pps, aus
}

// TestEnhancedRTMPRelay publishes H.265 + Opus over enhanced RTMP and plays
// them back through liveedge with an independent client.
func TestEnhancedRTMPRelay(t *testing.T) {
	e := newTestEnv(t, Params{}, hub.Params{GOP: cache.Limits{MaxFrames: 2048}})
	vps, sps, pps, aus := hevcAUs(t)

	pub := &gortmplib.Client{URL: e.url("live/hevc"), Publish: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	vt := &gortmplib.Track{Codec: &codecs.H265{VPS: vps, SPS: sps, PPS: pps}}
	at := &gortmplib.Track{Codec: &codecs.Opus{IDHeader: &opus.IDHeader{Version: 1, ChannelCount: 2,
		PreSkip: 312, InputSampleRate: 48000}}}
	w := &gortmplib.Writer{Conn: pub, Tracks: []*gortmplib.Track{vt, at}}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	opusPkt := []byte{0xfc, 0x01, 0x02, 0x03}
	// The publisher sends at 4x real time until the test ends.
	stop := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				wrote <- nil
				return
			case <-time.After(10 * time.Millisecond):
			}
			ts := time.Duration(n) * 40 * time.Millisecond
			if err := w.WriteH265(vt, ts, ts, aus[n%len(aus)]); err != nil {
				wrote <- err
				return
			}
			if err := w.WriteOpus(at, ts, opusPkt); err != nil {
				wrote <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-wrote; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, ok := e.hub.Stream("live/hevc")
		if ok && in.Video != nil && in.Audio != nil && in.GOP.GOPValid {
			if in.Video.Codec != hub.CodecH265 || in.Audio.Codec != hub.CodecOpus || in.Video.Width != 320 {
				t.Fatalf("tracks = %+v / %+v", in.Video, in.Audio)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream not ready: %+v", in)
		}
		time.Sleep(10 * time.Millisecond)
	}

	c := dialPlayer(t, e.url("live/hevc"), 0)
	r := &gortmplib.Reader{Conn: c}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	var gotKey, gotOpus bool
	for _, tr := range r.Tracks() {
		switch tc := tr.Codec.(type) {
		case *codecs.H265:
			if !bytes.Equal(tc.SPS, sps) || !bytes.Equal(tc.VPS, vps) || !bytes.Equal(tc.PPS, pps) {
				t.Fatal("H265 parameter sets changed in transit")
			}
			first := true
			r.OnDataH265(tr, func(_, _ time.Duration, au [][]byte) {
				if (au[0][0]>>1)&0x3f >= 32 {
					return // sequence header
				}
				if first && !hub.IsKeyframe(hub.CodecH265, au) {
					t.Error("first H265 unit is not a keyframe")
				}
				first = false
				gotKey = true
			})
		case *codecs.Opus:
			if tc.IDHeader == nil || tc.IDHeader.ChannelCount != 2 {
				t.Fatalf("Opus header = %+v", tc.IDHeader)
			}
			r.OnDataOpus(tr, func(_ time.Duration, pkt []byte) {
				if !bytes.Equal(pkt, opusPkt) {
					t.Errorf("Opus packet = %x", pkt)
				}
				gotOpus = true
			})
		default:
			t.Fatalf("unexpected track %T", tc)
		}
	}
	c.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	for !(gotKey && gotOpus) {
		if err := r.Read(); err != nil {
			t.Fatal(err)
		}
	}
}
