package rtsp

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
)

// outViewer is one RTSP session playing a stream. Its goroutine (run)
// reads the stream's shared RTP frames through its own cursor and writes
// them to the session's own ServerStream; gortsplib's writer goroutine of
// the session does the socket writes. The viewer is closed by the
// session's OnSessionClose (or by Server.Close), which waits for run.
type outViewer struct {
	srv       *Server
	name      string
	log       *slog.Logger
	ss        *gortsplib.ServerSession
	transport gortsplib.Transport
	created   time.Time

	pres   *hub.Subscriber // the viewer's registration with the hub
	feed   *outFeed
	desc   *outDesc
	stream *gortsplib.ServerStream

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	playConn *gortsplib.ServerConn // PLAY answered on this connection, not yet started
	started  bool
	closed   bool
	reason   string // why run ended, if it ended the session

	overflow atomic.Bool // the session's write queue dropped a packet

	// Owned by run: RTP packets put in the session's queue, and written
	// from it to the socket as of the last look.
	queued, written uint64

	sent, sentBytes, skips atomic.Uint64
}

// newViewer registers a viewer with the hub and makes its stream. On error
// nothing is left behind.
func (s *Server) newViewer(name string, ss *gortsplib.ServerSession, r outRequest, tr gortsplib.Transport) (_ *outViewer, err error) {
	pres, err := s.p.Hub.Subscribe(s.ctx, name, hub.Session{Protocol: "rtsp", Remote: r.remote()})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pres.Close()
		}
	}()
	f, err := s.acquireFeed(s.ctx, name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.releaseFeed(f)
		}
	}()
	d, err := outDescribe(f.tracks.Load())
	if err != nil {
		return nil, err
	}
	st := &gortsplib.ServerStream{Server: s.rs, Desc: d.session}
	if err := st.Initialize(); err != nil {
		return nil, err
	}
	v := &outViewer{srv: s, name: name, ss: ss, transport: tr, created: time.Now(),
		log:  s.log.With("stream", name, "remote", r.remote(), "transport", tr.String()),
		pres: pres, feed: f, desc: d, stream: st, done: make(chan struct{})}
	v.ctx, v.cancel = context.WithCancel(s.ctx)
	return v, nil
}

// armPlay records that PLAY was accepted on sc.
func (v *outViewer) armPlay(sc *gortsplib.ServerConn) {
	v.mu.Lock()
	if !v.started {
		v.playConn = sc
	}
	v.mu.Unlock()
}

// startIfArmed starts the viewer's goroutine after the response to its
// PLAY (on sc).
func (v *outViewer) startIfArmed(sc *gortsplib.ServerConn) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.started || v.closed || v.playConn != sc {
		return false
	}
	v.started = true
	v.playConn = nil
	v.log.Info("rtsp playing")
	go v.run()
	return true
}

// close stops the goroutine and releases the stream, the hub registration
// and the feed. Only the first call does anything.
func (v *outViewer) close(reason string) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.closed = true
	started := v.started
	v.mu.Unlock()
	v.cancel()
	if started {
		<-v.done
	}
	v.stream.Close()
	v.pres.Close()
	v.srv.releaseFeed(v.feed)
	lvl := slog.LevelInfo
	if reason == outReasonSlow || reason == outReasonTimeout {
		lvl = slog.LevelWarn
	}
	v.log.Log(context.Background(), lvl, "rtsp viewer left", "reason", reason,
		"duration", time.Since(v.created).Round(time.Millisecond).String(),
		"sent_packets", v.sent.Load(), "sent_bytes", v.sentBytes.Load(), "skips", v.skips.Load())
}

// Reasons a viewer ends.
const (
	outReasonSlow    = "too far behind (slow viewer)"
	outReasonTimeout = "write timeout (slow viewer)"
	outReasonEnded   = "stream ended"
)

// reasonFor is the reason to log for a session that ended with err.
func (v *outViewer) reasonFor(err error) string {
	v.mu.Lock()
	r := v.reason
	v.mu.Unlock()
	if r != "" {
		return r
	}
	if v.srv.ctx.Err() != nil {
		return "server closing"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		v.srv.stats.dropped.Add(1)
		return outReasonTimeout
	}
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// end records why run ends the session, and ends it.
func (v *outViewer) end(reason string) {
	v.mu.Lock()
	if v.reason == "" {
		v.reason = reason
	}
	v.mu.Unlock()
	v.ss.Close()
}

// run sends the stream from the newest cached keyframe on. A viewer that
// falls out of the ring, or whose write queue overflows, skips to the next
// keyframe; one that stays behind for SlowViewerTimeout is disconnected.
func (v *outViewer) run() {
	defer close(v.done)
	ring := v.feed.ring
	cur, waitKey := ring.Join()
	var seq [2]uint16
	seq[0], seq[1] = uint16(rand.Uint32()), uint16(rand.Uint32())
	var pkt rtp.Packet // this viewer's copy of a header; gortsplib sets its SSRC
	var behindSince time.Time
	behind := func() bool {
		v.skips.Add(1)
		v.srv.stats.skips.Add(1)
		now := time.Now()
		if behindSince.IsZero() {
			behindSince = now
			return false
		}
		return now.Sub(behindSince) > v.srv.p.SlowViewerTimeout
	}
	// Only the medias the client set up are written: gortsplib drops the
	// packets of the others, and counting them as queued would make the
	// queue look full (a client that set up video only stalled after a
	// few hundred audio packets).
	setup := v.ss.SetuppedMedias()
	video := v.desc.video
	if !slices.Contains(setup, video) {
		video = nil
	}
	audio := v.desc.audio
	if !slices.Contains(setup, audio) {
		audio = nil
	}
	buf := make([]*outFrame, 0, 64)
	for {
		select {
		case <-v.pres.Done(): // kicked through the hub while busy
			v.end("session closed")
			return
		default:
		}
		frames, next, wait, err := ring.Fetch(cur, buf)
		switch {
		case errors.Is(err, cache.ErrLagged):
			if behind() {
				v.srv.stats.dropped.Add(1)
				v.end(outReasonSlow)
				return
			}
			cur, waitKey = ring.Resync()
			continue
		case errors.Is(err, cache.ErrClosed):
			if v.srv.ctx.Err() == nil {
				v.end(outReasonEnded)
			}
			return
		}
		if wait != nil {
			if !waitKey && !v.overflow.Load() {
				behindSince = time.Time{} // at live, and delivering: caught up
			}
			select {
			case <-wait:
				continue
			case <-v.ctx.Done():
				return
			case <-v.pres.Done(): // kicked through the hub
				v.end("session closed")
				return
			}
		}
		sentTo := next // where the next Fetch starts
		batchBytes := 0
		for i, f := range frames {
			if v.overflow.Swap(false) {
				// The queue dropped packets: what follows cannot be
				// decoded until the next keyframe.
				if behind() {
					v.srv.stats.dropped.Add(1)
					v.end(outReasonSlow)
					return
				}
				waitKey = true
			}
			if waitKey {
				if !f.key {
					continue
				}
				waitKey = false
			}
			var medi *description.Media
			var s *uint16
			if f.video {
				medi, s = video, &seq[0]
			} else {
				medi, s = audio, &seq[1]
			}
			if medi == nil {
				continue
			}
			waited, ok := v.waitRoom(len(f.pkts))
			if !ok {
				if v.ctx.Err() == nil {
					v.srv.stats.dropped.Add(1)
					v.end(outReasonSlow)
				}
				return
			}
			for _, p := range f.pkts {
				pkt.Header = p.Header // a copy: the shared packet is not written to
				pkt.Header.SequenceNumber = *s
				pkt.Payload = p.Payload
				*s++
				if err := v.stream.WritePacketRTPWithNTP(medi, &pkt, f.ntp); err != nil {
					return // the stream is closed: the session is ending
				}
				if !v.overflow.Load() {
					v.queued++
				}
				v.sentBytes.Add(uint64(len(p.Payload)))
				batchBytes += rtpHeaderSize + len(p.Payload)
			}
			v.sent.Add(uint64(len(f.pkts)))
			v.srv.stats.sent.Add(uint64(len(f.pkts)))
			if waited {
				// The viewer could not keep up: fetch again, so that
				// the ring says whether it must skip ahead.
				sentTo = cur + uint64(i) + 1
				break
			}
		}
		// Bytes out of the stream: once per batch, RTP packets as queued
		// for the session's writer (interleaving or UDP headers aside).
		v.pres.CountOut(batchBytes)
		cur = sentTo
		clear(buf[:cap(buf)])
		if v.ctx.Err() != nil {
			return
		}
	}
}

// rtpHeaderSize is the size of an RTP header without CSRCs or extensions,
// as the viewers' packets have.
const rtpHeaderSize = 12

// outPoll is how often a viewer whose write queue is full looks whether
// it has room again (gortsplib's queue has no event for that).
const outPoll = 5 * time.Millisecond

// waitRoom waits until the session's write queue has room for a frame of
// n packets, so that a viewer that cannot keep up falls behind in the
// shared ring (and skips to a keyframe there) instead of overflowing its
// queue mid-frame. It reports whether it had to wait, and false when the
// viewer is closing, or the queue stayed full for SlowViewerTimeout.
func (v *outViewer) waitRoom(n int) (waited, ok bool) {
	limit := v.srv.p.WriteQueueSize * 3 / 4 // room for RTCP and rounding
	n = min(n, limit/2)
	if int(v.queued-v.written)+n <= limit {
		return false, true
	}
	start := time.Now()
	var t *time.Timer
	for {
		v.written = v.sessionWritten()
		if int(v.queued-v.written)+n <= limit {
			if t != nil {
				t.Stop()
			}
			return t != nil, true
		}
		if time.Since(start) > v.srv.p.SlowViewerTimeout {
			return true, false
		}
		if t == nil {
			t = time.NewTimer(outPoll)
		} else {
			t.Reset(outPoll)
		}
		select {
		case <-t.C:
		case <-v.ctx.Done():
			t.Stop()
			return true, false
		}
	}
}

// sessionWritten returns how many RTP packets gortsplib wrote to the
// viewer's socket.
func (v *outViewer) sessionWritten() uint64 {
	var n uint64
	for _, m := range v.ss.Stats().Medias {
		for _, f := range m.Formats {
			n += f.RTPPacketsSent
		}
	}
	return n
}
