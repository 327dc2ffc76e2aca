package rtsp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
)

// outFrame is one access unit (video) or audio frame as RTP packets, made
// once per stream and shared, immutable, by every viewer of the stream. A
// viewer copies a packet's header (12 bytes of struct) to put its own
// sequence number in; it never writes to the shared packet.
type outFrame struct {
	video bool
	key   bool
	dts   time.Duration
	ntp   time.Time // wall-clock time of the frame's PTS, for RTCP sender reports
	pkts  []*rtp.Packet
	size  int
}

// IsKey implements cache.Item: a viewer may start on it (a video keyframe,
// or any frame of a stream without video).
func (f *outFrame) IsKey() bool { return f.key }

// Size implements cache.Item.
func (f *outFrame) Size() int { return f.size }

// Time implements cache.Item.
func (f *outFrame) Time() time.Duration { return f.dts }

// errOutTracksChanged ends a feed whose stream changed codecs: its
// viewers' SDP no longer describes it, they must DESCRIBE again.
var errOutTracksChanged = errors.New("stream codecs changed")

// outFeed is one stream's RTP packetizer: an internal hub subscriber whose
// units are packetized once, as they arrive, into a ring of frames that
// every RTSP viewer of the stream reads through its own cursor (the same
// cache.Ring the hub uses, with the same GOP bounds). Its subscriber
// starts on the hub's cached keyframe, so the ring holds a decodable GOP
// as soon as the feed has run for a moment.
type outFeed struct {
	srv  *Server
	name string
	log  *slog.Logger
	sub  *hub.Subscriber
	ring *cache.Ring[*outFrame]
	sig  outSignature // the codecs of the feed's tracks; another set ends it
	// tracks are the newest tracks the feed packetized (or started with),
	// for new viewers' SDP; the codecs never differ from sig.
	tracks atomic.Pointer[hub.Tracks]

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{} // closed once the first frame is in the ring (or the feed ended)

	// Guarded by srv.mu.
	refs   int
	linger *time.Timer

	// Owned by run.
	pz      *outPacketizer
	epoch   time.Time // wall-clock time of stream time 0
	first   bool
	current bool // a unit of the feed's codecs was seen
}

func newOutFeed(srv *Server, name string, sub *hub.Subscriber, tracks *hub.Tracks) (*outFeed, error) {
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand never fails
	pz, err := newOutPacketizer(tracks, binary.BigEndian.Uint32(b[:4]), binary.BigEndian.Uint32(b[4:]))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(srv.ctx)
	f := &outFeed{srv: srv, name: name, log: srv.log.With("stream", name), sub: sub,
		ring: cache.NewRing[*outFrame](srv.p.GOP), sig: outSignatureOf(tracks),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), ready: make(chan struct{}), pz: pz}
	f.tracks.Store(tracks)
	return f, nil
}

// run packetizes units until the stream ends or the feed is stopped; then
// it closes the ring, and the viewers reading it end.
func (f *outFeed) run() {
	defer close(f.done)
	defer f.ring.Close()
	defer f.sub.Close()
	defer f.markReady()
	f.log.Debug("rtsp feed started")
	buf := make([]*hub.Unit, 0, 64)
	for {
		units, err := f.sub.Next(f.ctx, buf)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, hub.ErrStreamEnded) {
				f.log.Info("rtsp feed stopped", "err", err)
			}
			return
		}
		for _, u := range units {
			if err := f.push(u); err != nil {
				f.log.Warn("rtsp feed stopped", "err", err)
				return
			}
		}
		clear(buf[:cap(buf)])
	}
}

func (f *outFeed) markReady() {
	if !f.first {
		f.first = true
		close(f.ready)
	}
}

func (f *outFeed) stop() {
	f.cancel()
	<-f.done
}

// push packetizes one unit into the ring.
func (f *outFeed) push(u *hub.Unit) error {
	if u.Tracks != f.tracks.Load() {
		if outSignatureOf(u.Tracks) != f.sig {
			if !f.current {
				// The hub's cached GOP began under the previous codecs:
				// those units precede the tracks this feed describes.
				return nil
			}
			return errOutTracksChanged
		}
		f.tracks.Store(u.Tracks) // new parameter sets: new viewers' SDP shows them
	}
	f.current = true
	if u.Video && f.sig.video == 0 || !u.Video && f.sig.audio == 0 {
		return nil
	}
	if f.epoch.IsZero() {
		f.epoch = u.Ingest.Add(-u.DTS)
	}
	pkts, err := f.pz.packetize(u)
	if err != nil {
		f.srv.stats.packetizeErrors.Add(1)
		return nil // one bad unit: skip it (counted)
	}
	if len(pkts) == 0 {
		return nil
	}
	fr := &outFrame{video: u.Video, key: u.Key, dts: u.DTS, ntp: f.epoch.Add(u.PTS), pkts: pkts}
	for _, p := range pkts {
		fr.size += len(p.Payload)
	}
	f.ring.Append(fr)
	f.srv.stats.packetized.Add(uint64(len(pkts)))
	f.markReady()
	return nil
}
