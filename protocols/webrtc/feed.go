package webrtc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
)

// frame is one access unit (video) or audio frame in RTP form: the
// payloads of its packets and its RTP timestamp on the stream's clock.
// Frames are made once per stream and shared, immutable, by every peer;
// a peer adds only its own header (SSRC, payload type, sequence number,
// rebased timestamp).
type frame struct {
	video    bool
	key      bool
	dts      time.Duration
	ts       uint32 // 90 kHz (video, from PTS) or 48 kHz (Opus)
	payloads [][]byte
	size     int
}

// IsKey implements cache.Item. Audio frames are never keys: a peer starts
// on a video keyframe.
func (f *frame) IsKey() bool { return f.key }

// Size implements cache.Item.
func (f *frame) Size() int { return f.size }

// Time implements cache.Item.
func (f *frame) Time() time.Duration { return f.dts }

// feed is one stream's RTP packetizer: an internal hub subscriber whose
// units are packetized once, as they arrive, into a ring of frames that
// every peer of the stream reads through its own cursor (the same
// cache.Ring the hub uses, with the same GOP bounds). A new feed's
// subscriber starts on the hub's cached keyframe, so the ring holds a
// decodable GOP a few milliseconds after the feed starts.
type feed struct {
	srv  *Server
	name string
	log  *slog.Logger
	sub  *hub.Subscriber
	ring *cache.Ring[*frame]

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	refs int // guarded by srv.mu

	// Owned by run.
	tracks    *hub.Tracks
	warnedAAC bool
}

// errVideoChanged ends a feed whose stream stopped carrying H.264 video.
var errVideoChanged = errors.New("stream video is no longer H.264")

func newFeed(srv *Server, name string, sub *hub.Subscriber) *feed {
	ctx, cancel := context.WithCancel(srv.ctx)
	return &feed{srv: srv, name: name, log: srv.log.With("stream", name), sub: sub,
		ring: cache.NewRing[*frame](srv.p.GOP), ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// run packetizes units until the stream ends or the feed is stopped; then
// it closes the ring, and the peers reading it end.
func (f *feed) run() {
	defer close(f.done)
	defer f.ring.Close()
	defer f.sub.Close()
	f.log.Debug("webrtc feed started")
	buf := make([]*hub.Unit, 0, 64)
	for {
		units, err := f.sub.Next(f.ctx, buf)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, hub.ErrStreamEnded) {
				f.log.Info("webrtc feed stopped", "err", err)
			}
			return
		}
		for _, u := range units {
			if err := f.push(u); err != nil {
				f.log.Warn("webrtc feed stopped", "err", err)
				return
			}
		}
	}
}

func (f *feed) stop() {
	f.cancel()
	<-f.done
}

// push packetizes one unit into the ring.
func (f *feed) push(u *hub.Unit) error {
	if u.Tracks != f.tracks {
		f.tracks = u.Tracks
		if v := u.Tracks.Video; v == nil || v.Codec != hub.CodecH264 {
			return errVideoChanged
		}
		if a := u.Tracks.Audio; a != nil && a.Codec == hub.CodecAAC && !f.warnedAAC {
			f.warnedAAC = true
			f.log.Info("audio is AAC, which browsers do not decode over WebRTC: WebRTC viewers get video only")
		}
	}
	fr := &frame{video: u.Video, dts: u.DTS}
	switch {
	case u.Video:
		v := u.Tracks.Video
		fr.key = u.Key
		fr.ts = uint32(int64(u.PTS) * 90000 / int64(time.Second))
		fr.payloads = packetizeH264(u.NALUs, u.Key, v.SPS, v.PPS)
	case u.Tracks.Audio != nil && u.Tracks.Audio.Codec == hub.CodecOpus:
		fr.ts = uint32(int64(u.PTS) * 48000 / int64(time.Second))
		fr.payloads = [][]byte{u.Payload} // the hub's unit is immutable: share it
	default:
		return nil // AAC: not sent
	}
	if len(fr.payloads) == 0 {
		return nil
	}
	for _, p := range fr.payloads {
		fr.size += len(p)
	}
	f.ring.Append(fr)
	return nil
}
