package hub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveedge/liveedge/cache"
)

// Subscriber is one viewer's position in a stream. Its methods are called
// from the viewer's goroutine, except Close.
type Subscriber struct {
	s      *Stream
	sess   Session
	joined time.Time
	start  time.Time      // when the viewer asked, for its time to first frame
	id     uint64         // in the hub's session registry; 0 for internal ones
	first  bool           // the first units were returned
	out    *atomic.Uint64 // the stream's bytes out of the subscriber's protocol

	cursor      uint64
	waitKey     bool
	behindSince time.Time

	dropped atomic.Uint64
	skips   atomic.Uint64

	closed    context.Context // done once the viewer is closed
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// Stream returns the stream's name.
func (sub *Subscriber) Stream() string { return sub.s.name }

// Tracks returns the stream's current codec configuration.
func (sub *Subscriber) Tracks() *Tracks {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	return sub.s.tracks
}

// Dropped returns how many units the viewer skipped because it fell behind.
func (sub *Subscriber) Dropped() uint64 { return sub.dropped.Load() }

// Skips returns how many times the viewer skipped to a newer keyframe.
func (sub *Subscriber) Skips() uint64 { return sub.skips.Load() }

// Close unregisters the viewer. It is safe to call more than once and from
// any goroutine; a blocked Next returns.
func (sub *Subscriber) Close() {
	sub.closeOnce.Do(func() {
		sub.cancel()
		if sub.id != 0 {
			sub.s.h.sess.remove(sub.id)
		}
		sub.s.unsubscribe(sub)
	})
}

// Done is closed once the viewer is closed: by its owner, or kicked
// through the hub. An output that serves the viewer without reading this
// subscription watches it to end the viewer.
func (sub *Subscriber) Done() <-chan struct{} { return sub.closed.Done() }

// AfterClose arranges for f to run in its own goroutine once the viewer is
// closed, like Done but without a goroutine waiting meanwhile. stop
// cancels it, and reports whether it did so before f started.
func (sub *Subscriber) AfterClose(f func()) (stop func() bool) {
	return context.AfterFunc(sub.closed, f)
}

// Position returns the viewer's cursor: the sequence number of the next
// unit it will get.
func (sub *Subscriber) Position() uint64 { return sub.cursor }

// Seek moves the cursor to pos, a position another reader of the same
// stream reached (an output that wrote units on the viewer's behalf).
func (sub *Subscriber) Seek(pos uint64) {
	sub.cursor = pos
	sub.waitKey = false
}

// Poll is Next without waiting: it returns no units when the viewer is
// at live.
func (sub *Subscriber) Poll(dst []*Unit) ([]*Unit, error) {
	return sub.next(nil, dst)
}

// Next returns the next units for the viewer, appended to dst[:0] (at most
// cap(dst)), waiting for them if needed. A viewer that fell behind skips to
// the newest keyframe; one that stays behind for the slow-viewer timeout
// gets ErrSlowViewer. ErrStreamEnded means the stream is over.
func (sub *Subscriber) Next(ctx context.Context, dst []*Unit) ([]*Unit, error) {
	return sub.next(ctx, dst)
}

// next waits for units unless ctx is nil.
func (sub *Subscriber) next(ctx context.Context, dst []*Unit) ([]*Unit, error) {
	ring := sub.s.ring
	for {
		select {
		case <-sub.closed.Done(): // closed (kicked) while not waiting
			return nil, ErrStreamEnded
		default:
		}
		units, next, wait, err := ring.Fetch(sub.cursor, dst)
		switch {
		case errors.Is(err, cache.ErrLagged):
			now := time.Now()
			if sub.behindSince.IsZero() {
				sub.behindSince = now
			} else if now.Sub(sub.behindSince) > sub.s.h.p.SlowViewerTimeout {
				sub.s.h.counters.slow.Add(1)
				return nil, ErrSlowViewer
			}
			c, wk := ring.Resync()
			if c > sub.cursor {
				sub.dropped.Add(c - sub.cursor)
				sub.s.h.counters.dropped.Add(c - sub.cursor)
			}
			sub.skips.Add(1)
			sub.s.h.counters.skips.Add(1)
			sub.cursor, sub.waitKey = c, wk
			continue
		case errors.Is(err, cache.ErrClosed):
			return nil, ErrStreamEnded
		}
		if wait != nil {
			sub.behindSince = time.Time{}
			if ctx == nil {
				return units, nil
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-sub.closed.Done():
				return nil, ErrStreamEnded
			}
		}
		sub.cursor = next
		if sub.waitKey {
			i := 0
			for i < len(units) && !units[i].Key {
				i++
			}
			if i == len(units) {
				continue
			}
			sub.waitKey = false
			units = units[i:]
		}
		if !sub.first && len(units) > 0 {
			sub.first = true
			if !sub.sess.Internal {
				sub.s.h.ObserveFirstFrame(sub.sess.Protocol, time.Since(sub.start))
			}
		}
		return units, nil
	}
}
