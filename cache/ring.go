// Package cache holds the per-stream media stores shared by every output:
// the ring of recent units with its GOP cache, read by each viewer through
// its own cursor.
package cache

import (
	"errors"
	"sync"
	"time"
)

// ErrLagged is returned by Fetch when the cursor has fallen behind what the
// ring keeps (or behind live by more than the lag bound while a newer
// keyframe exists). The reader resynchronises with Resync.
var ErrLagged = errors.New("reader fell behind")

// Item is a unit the ring stores. Items are immutable once appended.
type Item interface {
	// IsKey reports whether a reader may start on this item: a video
	// keyframe, or any unit of a stream that has no video.
	IsKey() bool
	// Size is the payload size in bytes, for the byte bound.
	Size() int
	// Time is the item's decode time on the stream's timeline.
	Time() time.Duration
}

// Limits bound the GOP cache. A zero field means "no bound" for that field,
// except that the frame bound can never exceed the ring's capacity.
type Limits struct {
	MaxBytes    int
	MaxDuration time.Duration
	MaxFrames   int
	// MaxLag is how far behind live a reader may fall before Fetch tells it
	// to skip to the newest keyframe; items older than both the current GOP
	// and MaxLag are released.
	MaxLag time.Duration
}

// Stats is a snapshot of the ring's state.
type Stats struct {
	GOPItems int
	GOPBytes int
	GOPValid bool
	Items    int
	Bytes    int
}

// Ring is a single-producer, many-reader store of the most recent items of
// one stream. It keeps every item since the newest keyframe (the GOP cache)
// within Limits, plus whatever lies within MaxLag of live, and nothing more.
// Readers hold a cursor (a sequence number) and never block the producer.
type Ring[T Item] struct {
	limits Limits
	mask   uint64

	mu       sync.RWMutex
	buf      []T
	tail     uint64 // oldest retained sequence number
	head     uint64 // next sequence number to be written
	gopStart uint64 // sequence number of the newest keyframe, valid if gopValid
	gopValid bool
	gopBytes int
	bytes    int
	headTime time.Duration
	notify   chan struct{}
	closed   bool
}

// NewRing returns a ring whose capacity is the smallest power of two that
// holds twice limits.MaxFrames items (at least 64).
func NewRing[T Item](limits Limits) *Ring[T] {
	frames := limits.MaxFrames
	if frames <= 0 {
		frames = 2048
		limits.MaxFrames = frames
	}
	size := 64
	for size < 2*frames {
		size <<= 1
	}
	return &Ring[T]{
		limits: limits,
		mask:   uint64(size - 1),
		buf:    make([]T, size),
		notify: make(chan struct{}),
	}
}

// Append adds an item, updates the GOP cache and wakes waiting readers.
// It never blocks on a reader.
func (r *Ring[T]) Append(it T) {
	var zero T
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	size := it.Size()
	if r.head-r.tail == uint64(len(r.buf)) {
		// Full: the oldest item goes, even if it belongs to the GOP.
		r.evictTail(zero)
	}
	r.buf[r.head&r.mask] = it
	r.head++
	r.bytes += size
	r.headTime = it.Time()

	if it.IsKey() {
		r.gopStart = r.head - 1
		r.gopValid = true
		r.gopBytes = size
	} else if r.gopValid {
		r.gopBytes += size
		frames := int(r.head - r.gopStart)
		start := r.buf[r.gopStart&r.mask]
		if (r.limits.MaxBytes > 0 && r.gopBytes > r.limits.MaxBytes) ||
			frames > r.limits.MaxFrames ||
			(r.limits.MaxDuration > 0 && it.Time()-start.Time() > r.limits.MaxDuration) {
			// An oversized GOP is dropped whole: new readers wait for the
			// next keyframe rather than starting mid-GOP.
			r.gopValid = false
			r.gopBytes = 0
		}
	}
	r.trim(zero)

	ch := r.notify
	r.notify = make(chan struct{})
	r.mu.Unlock()
	close(ch)
}

// trim releases items that are older than the GOP and further than MaxLag
// behind live. Called with mu held.
func (r *Ring[T]) trim(zero T) {
	for r.tail < r.head {
		if r.gopValid && r.tail >= r.gopStart {
			return
		}
		if !r.gopValid && r.tail == r.head-1 {
			return // keep the newest item so readers can wait on it
		}
		it := r.buf[r.tail&r.mask]
		if r.limits.MaxLag > 0 && r.headTime-it.Time() <= r.limits.MaxLag {
			return
		}
		r.evictTail(zero)
	}
}

func (r *Ring[T]) evictTail(zero T) {
	i := r.tail & r.mask
	r.bytes -= r.buf[i].Size()
	r.buf[i] = zero
	if r.gopValid && r.tail == r.gopStart {
		r.gopValid = false
		r.gopBytes = 0
	}
	r.tail++
}

// Join returns the cursor a new reader starts from: the newest keyframe when
// the GOP cache holds one, atomically with the call (no gap, no duplicate).
// When it does not, the cursor is live and waitKey is true: the reader must
// skip items until the first one for which IsKey is true.
func (r *Ring[T]) Join() (cursor uint64, waitKey bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.gopValid {
		return r.gopStart, false
	}
	return r.head, true
}

// Resync returns where a lagging reader continues: the newest keyframe if
// the GOP cache holds one, else live with waitKey set.
func (r *Ring[T]) Resync() (cursor uint64, waitKey bool) {
	return r.Join()
}

// Fetch appends to dst the items from cursor on (at most cap(dst) of them,
// or 64 if dst has no capacity) and returns them with the next cursor. When
// there is nothing new, it returns no items and a channel that is closed
// when there is. ErrLagged means the reader must call Resync. ErrClosed
// means the ring is closed and drained.
func (r *Ring[T]) Fetch(cursor uint64, dst []T) ([]T, uint64, <-chan struct{}, error) {
	dst = dst[:0]
	max := cap(dst)
	if max == 0 {
		max = 64
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if cursor < r.tail {
		return dst, cursor, nil, ErrLagged
	}
	if cursor >= r.head {
		if r.closed {
			return dst, cursor, nil, ErrClosed
		}
		return dst, r.head, r.notify, nil
	}
	if r.limits.MaxLag > 0 && r.gopValid && cursor < r.gopStart &&
		r.headTime-r.buf[cursor&r.mask].Time() > r.limits.MaxLag {
		return dst, cursor, nil, ErrLagged
	}
	for cursor < r.head && len(dst) < max {
		dst = append(dst, r.buf[cursor&r.mask])
		cursor++
	}
	return dst, cursor, nil, nil
}

// ErrClosed is returned by Fetch once the ring is closed and the reader has
// read everything.
var ErrClosed = errors.New("ring closed")

// Close wakes every reader; Fetch returns ErrClosed once a reader reaches
// the end. Items stay readable until then.
func (r *Ring[T]) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	ch := r.notify
	r.mu.Unlock()
	close(ch)
}

// ResetGOP forgets the GOP cache, so that new readers wait for the next
// keyframe. A producer change calls it: the new producer's media must not
// be preceded by the old one's GOP.
func (r *Ring[T]) ResetGOP() {
	var zero T
	r.mu.Lock()
	r.gopValid = false
	r.gopBytes = 0
	r.trim(zero)
	r.mu.Unlock()
}

// Stats returns a snapshot of the ring's counters.
func (r *Ring[T]) Stats() Stats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := Stats{
		GOPValid: r.gopValid,
		Items:    int(r.head - r.tail),
		Bytes:    r.bytes,
	}
	if r.gopValid {
		s.GOPItems = int(r.head - r.gopStart)
		s.GOPBytes = r.gopBytes
	}
	return s
}

// Head returns the next sequence number to be written.
func (r *Ring[T]) Head() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.head
}
