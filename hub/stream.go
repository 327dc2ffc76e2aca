package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/cache"
)

var errStreamGone = errors.New("stream removed")

// Stream is one live stream: its producer, its subscribers, its codec
// configuration and its ring of units.
type Stream struct {
	h    *Hub
	name string
	log  *slog.Logger
	ring *cache.Ring[*Unit]

	mu              sync.Mutex
	producer        *Producer
	producers       int
	tracks          *Tracks
	ready           chan struct{} // closed once the stream has tracks
	endc            chan struct{} // closed by end, wakes viewers waiting in subscribe
	subs            map[*Subscriber]struct{}
	waiting         int // viewers waiting in subscribe
	ended           bool
	grace           *time.Timer
	tl              timeline
	created         time.Time
	clients         int                       // viewers under the limits (non-internal subscribers)
	lastMedia       time.Time                 // when the stream last took a unit
	badParamsLogged time.Time                 // when bad in-band parameter sets were last logged
	bytesIn         uint64                    // media bytes the stream took
	lastProd        Session                   // the session of the latest producer
	out             map[string]*atomic.Uint64 // bytes written to viewers, by protocol
	rates           rates

	events streamEvents
}

func newStream(h *Hub, name string) *Stream {
	return &Stream{
		created: time.Now(),
		h:       h,
		name:    name,
		log:     h.log.With("stream", name),
		ring:    cache.NewRing[*Unit](h.p.GOP),
		ready:   make(chan struct{}),
		endc:    make(chan struct{}),
		subs:    map[*Subscriber]struct{}{},
	}
}

// Name returns "app/stream".
func (s *Stream) Name() string { return s.name }

func (s *Stream) attachProducer(sess Session) (*Producer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, errStreamGone
	}
	if old := s.producer; old != nil {
		if s.h.p.Conflict == ConflictRefuse {
			return nil, ErrStreamBusy
		}
		s.log.Info("producer taken over", "old", old.sess.Remote, "new", sess.Remote, "proto", sess.Protocol)
		old.cancel()
	}
	if s.grace != nil {
		s.grace.Stop()
		s.grace = nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{s: s, sess: sess, ctx: ctx, cancel: cancel}
	p.id = s.h.sess.add(SessionInfo{Stream: s.name, Protocol: sess.Protocol, Remote: sess.Remote, Publisher: true}, cancel)
	s.producer = p
	s.lastProd = sess
	s.producers++
	// The new producer's media starts a new GOP on a rebased timeline.
	s.tl.rebase = true
	s.ring.ResetGOP()
	return p, nil
}

func (s *Stream) detachProducer(p *Producer) {
	s.mu.Lock()
	if s.producer != p {
		s.mu.Unlock()
		return
	}
	s.producer = nil
	if !s.ended && len(s.subs) > 0 {
		// Keep the viewers for a while: a publisher reconnecting under the
		// same name continues the same stream.
		s.grace = time.AfterFunc(s.h.p.ProducerGrace, func() {
			s.mu.Lock()
			stale := s.producer == nil && !s.ended
			s.mu.Unlock()
			if stale {
				s.log.Info("no producer within grace period, ending stream")
				s.h.endStream(s)
			}
		})
	}
	s.mu.Unlock()
	s.h.removeIfIdle(s)
}

// endStream removes the stream from the hub and ends it.
func (h *Hub) endStream(s *Stream) {
	h.mu.Lock()
	if h.streams[s.name] == s {
		delete(h.streams, s.name)
	}
	h.mu.Unlock()
	s.end()
}

// end tells the producer to stop and closes the ring; viewers drain and
// get ErrStreamEnded.
func (s *Stream) end() {
	s.mu.Lock()
	s.ended = true
	p := s.producer
	if s.grace != nil {
		s.grace.Stop()
	}
	select {
	case <-s.endc: // already ended (Hub.Close racing the grace timer)
	default:
		close(s.endc)
	}
	s.mu.Unlock()
	if p != nil {
		p.cancel()
	}
	s.ring.Close()
	s.emit(Event{Type: StreamEnded, Stream: s.name, Producer: s.lastProducer()})
}

func (s *Stream) lastProducer() Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastProd
}

func (s *Stream) subscribe(ctx context.Context, sess Session, start time.Time) (*Subscriber, error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, errStreamGone
	}
	hasProducer := s.producer != nil
	ready, endc := s.ready, s.endc
	s.waiting++
	s.mu.Unlock()

	if !hasProducer && s.h.p.Sourcer != nil {
		s.h.p.Sourcer.Want(s.name)
	}

	timer := time.NewTimer(s.h.p.StartTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-ready:
	case <-endc:
		err = ErrStreamEnded
	case <-timer.C:
		err = ErrNotFound
	case <-ctx.Done():
		err = ctx.Err()
	}

	// The bitrate cap per IP sums the streams of the IP's sessions: one
	// check and registration at a time.
	if limit := s.h.maxBitratePerIP.Load(); err == nil && !sess.Internal && limit > 0 {
		s.h.ipMu.Lock()
		defer s.h.ipMu.Unlock()
		err = s.h.checkBitratePerIP(s, sess.Remote, limit)
	}

	s.mu.Lock()
	s.waiting--
	if err == nil && s.ended {
		err = ErrStreamEnded
	}
	if err == nil && !sess.Internal {
		err = s.admitViewerLocked()
	}
	if err != nil {
		s.mu.Unlock()
		s.h.removeIfIdle(s)
		return nil, err
	}
	sub := &Subscriber{s: s, sess: sess, joined: time.Now(), start: start, out: s.outCounterLocked(sess.Protocol)}
	sub.cursor, sub.waitKey = s.ring.Join()
	sub.closed, sub.cancel = context.WithCancel(context.Background())
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	if !sess.Internal {
		sub.id = s.h.sess.add(SessionInfo{Stream: s.name, Protocol: sess.Protocol, Remote: sess.Remote}, sub.Close)
	}
	return sub, nil
}

// admitViewerLocked applies the viewer limits to a new viewer and counts
// it; unsubscribe uncounts it.
func (s *Stream) admitViewerLocked() error {
	h := s.h
	if n := int(h.maxPerStream.Load()); n > 0 && s.clients >= n {
		h.counters.refusedFor("max_viewers_per_stream")
		s.log.Warn("viewer refused: limit reached", "max_viewers_per_stream", n)
		return fmt.Errorf("%w: max_viewers_per_stream %d", ErrLimit, n)
	}
	if n := int(h.maxViewers.Load()); n > 0 {
		if h.counters.viewers.Add(1) > int64(n) {
			h.counters.viewers.Add(-1)
			h.counters.refusedFor("max_viewers")
			s.log.Warn("viewer refused: limit reached", "max_viewers", n)
			return fmt.Errorf("%w: max_viewers %d", ErrLimit, n)
		}
	} else {
		h.counters.viewers.Add(1)
	}
	s.clients++
	return nil
}

func (s *Stream) unsubscribe(sub *Subscriber) {
	s.mu.Lock()
	if _, ok := s.subs[sub]; ok && !sub.sess.Internal {
		s.clients--
		s.h.counters.viewers.Add(-1)
	}
	delete(s.subs, sub)
	// The last viewer left: a viewer's own subscription, or an output's
	// that counts viewers (an HLS muxer closing after its last request).
	none := (!sub.sess.Internal || sub.sess.Viewers != nil) && !s.ended && s.viewersLocked() == 0
	s.mu.Unlock()
	if none {
		s.emit(Event{Type: NoViewers, Stream: s.name})
	}
	s.h.removeIfIdle(s)
}

// viewersLocked counts the viewers as Info does.
func (s *Stream) viewersLocked() int {
	n := 0
	for sub := range s.subs {
		switch {
		case !sub.sess.Internal:
			n++
		case sub.sess.Viewers != nil:
			n += max(sub.sess.Viewers(), 0)
		}
	}
	return n
}

// Info returns a snapshot of the stream.
func (s *Stream) Info() StreamInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	in := StreamInfo{Name: s.name, Viewers: map[string]int{}, Producers: s.producers, Waiting: s.waiting,
		Created: s.created, LastMedia: s.lastMedia, BytesIn: s.bytesIn, BitrateIn: s.bitrateInLocked(now)}
	in.BytesOut, in.BitrateOut = s.outLocked(now)
	if s.producer != nil {
		sess := s.producer.sess
		in.Producer = &sess
	}
	if s.tracks != nil {
		in.Video, in.Audio = s.tracks.Video, s.tracks.Audio
	}
	for sub := range s.subs {
		switch {
		case !sub.sess.Internal:
			in.Viewers[sub.sess.Protocol]++
		case sub.sess.Viewers != nil:
			if n := sub.sess.Viewers(); n > 0 {
				in.Viewers[sub.sess.Protocol] += n
			}
		}
	}
	in.GOP = s.ring.Stats()
	return in
}

// timeline maps each producer's timestamps onto the stream's monotonic
// timeline. A new producer, or a jump in a producer's timestamps, rebases
// it so that the first unit follows the last one sent.
type timeline struct {
	rebase  bool
	started bool
	offset  time.Duration
	lastIn  [2]time.Duration
	haveIn  [2]bool
	lastOut [2]time.Duration
	haveOut [2]bool
	step    [2]time.Duration // each track's last input DTS step (its frame interval)
	maxOut  time.Duration
}

const (
	rebaseGap      = 20 * time.Millisecond
	maxBackwardGap = 500 * time.Millisecond
	maxForwardGap  = 5 * time.Second
)

func (t *timeline) mapDTS(video bool, dts time.Duration) time.Duration {
	k := 0
	if video {
		k = 1
	}
	if t.haveIn[k] && (dts < t.lastIn[k]-maxBackwardGap || dts > t.lastIn[k]+maxForwardGap) {
		t.rebase = true
	}
	if t.rebase || !t.started {
		if t.started {
			// The first unit after the cut follows the last one out by at
			// least rebaseGap, and by its track's frame interval when
			// that is longer: video keeps its cadence across a source
			// switch.
			next := t.maxOut + rebaseGap
			if t.haveOut[k] && t.step[k] > 0 && t.step[k] <= maxBackwardGap {
				next = max(next, t.lastOut[k]+t.step[k])
			}
			t.offset = next - dts
		} else {
			t.offset = -dts
		}
		t.rebase = false
		t.started = true
		t.haveIn = [2]bool{}
	}
	if t.haveIn[k] && dts > t.lastIn[k] {
		t.step[k] = dts - t.lastIn[k]
	}
	t.lastIn[k] = dts
	t.haveIn[k] = true
	out := dts + t.offset
	if out < 0 {
		out = 0
	}
	if t.haveOut[k] && out <= t.lastOut[k] {
		out = t.lastOut[k] + time.Millisecond
	}
	t.lastOut[k] = out
	t.haveOut[k] = true
	if out > t.maxOut {
		t.maxOut = out
	}
	return out
}
