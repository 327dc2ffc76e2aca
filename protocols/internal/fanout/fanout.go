// Package fanout writes a stream's shared, pre-encoded bytes to many
// players over TCP. Each stream gets a few shared goroutines (shards) that
// write every batch of units to every player that keeps up, with one
// non-blocking writev per player: one wake-up per batch per shard instead
// of one per player. A player whose socket cannot take a whole batch leaves
// the fast path at an exact unit boundary and goes on with blocking writes
// on its own goroutine; once it has caught up it joins again.
//
// What differs between protocols is only how a batch of units becomes
// bytes (a Format): RTMP chunks, or FLV tags in HTTP chunk framing.
package fanout

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/liveedge/liveedge/hub"
)

// ErrStopped is what the fast path's players are handed back with when it
// stops (the pool closing, or its subscription ending).
var ErrStopped = errors.New("fan-out stopped")

// Format makes the bytes of a batch of units for a player. Every result
// is shared by all the players of a batch and must not change afterwards.
type Format struct {
	// Unit returns a unit's shared bytes (typically Unit.Encoded).
	Unit func(*hub.Unit) []byte
	// Headers returns what a player that got units produced under prev
	// (nil: nothing yet) needs before units produced under next.
	Headers func(prev, next *hub.Tracks) []byte
	// Frame, if set, wraps each non-empty batch of n bytes: pre is written
	// before the batch and post after it (HTTP chunk framing). Each player
	// on the fast path gets the same batch, so the shard frames it once.
	Frame func(n int) (pre, post []byte)
}

// Append appends to bufs the bytes of units for a player that got units
// produced under cur, and returns them, the tracks after the batch and its
// size in bytes (framing included). An empty batch appends nothing.
func (f *Format) Append(bufs net.Buffers, cur *hub.Tracks, units []*hub.Unit) (net.Buffers, *hub.Tracks, int) {
	start := len(bufs)
	if f.Frame != nil {
		bufs = append(bufs, nil) // the frame's pre, once the size is known
	}
	n := 0
	for _, u := range units {
		if u.Tracks != cur {
			if h := f.Headers(cur, u.Tracks); len(h) > 0 {
				bufs = append(bufs, h)
				n += len(h)
			}
			cur = u.Tracks
		}
		b := f.Unit(u)
		bufs = append(bufs, b)
		n += len(b)
	}
	if n == 0 {
		return bufs[:start], cur, 0
	}
	if f.Frame != nil {
		pre, post := f.Frame(n)
		bufs[start] = pre
		bufs = append(bufs, post)
		n += len(pre) + len(post)
	}
	return bufs, cur, n
}

// Params configure a Pool.
type Params struct {
	Hub *hub.Hub
	// Protocol names the shards' internal subscriptions.
	Protocol string
	Format   Format
	// Shards is the number of writer goroutines per stream (default
	// GOMAXPROCS, at most 4).
	Shards int
}

// Pool holds the fast paths of one output's streams, one per stream while
// it has players.
type Pool struct {
	p      Params
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	fanouts map[string]*fanout

	// joins and handoffs count players entering and leaving the fast path.
	joins, handoffs atomic.Uint64
}

// New returns a Pool whose fast paths stop when ctx ends or on Close.
func New(ctx context.Context, p Params) *Pool {
	if p.Shards <= 0 {
		p.Shards = min(runtime.GOMAXPROCS(0), 4)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Pool{p: p, ctx: ctx, cancel: cancel, fanouts: map[string]*fanout{}}
}

// Close stops every fast path and waits for its goroutines; players still
// playing carry on alone.
func (pl *Pool) Close() {
	pl.cancel()
	pl.wg.Wait()
}

// Stats returns how many times players joined and left the fast path.
func (pl *Pool) Stats() (joins, handoffs uint64) {
	return pl.joins.Load(), pl.handoffs.Load()
}

// A fanout is one stream's fast path: its shards.
type fanout struct {
	name   string
	shards []*shard
	refs   int // guarded by Pool.mu
	next   atomic.Uint32
}

// acquire returns the stream's fanout, starting it for the first player.
// Each call must be paired with release.
func (pl *Pool) acquire(name string) (*fanout, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if f := pl.fanouts[name]; f != nil && !f.dead() {
		f.refs++
		return f, nil
	}
	f := &fanout{name: name, refs: 1}
	for i := 0; i < pl.p.Shards; i++ {
		sub, err := pl.p.Hub.Subscribe(pl.ctx, name,
			hub.Session{Protocol: pl.p.Protocol, Remote: "fanout", Internal: true})
		if err != nil {
			f.stop()
			return nil, err
		}
		ctx, cancel := context.WithCancel(pl.ctx)
		sh := &shard{format: &pl.p.Format, sub: sub, ctx: ctx, cancel: cancel, done: make(chan struct{}),
			pos: sub.Position(), moved: make(chan struct{})}
		f.shards = append(f.shards, sh)
		pl.wg.Add(1)
		go func() {
			defer pl.wg.Done()
			sh.run()
		}()
	}
	pl.fanouts[name] = f
	return f, nil
}

func (pl *Pool) release(f *fanout) {
	pl.mu.Lock()
	f.refs--
	last := f.refs == 0
	if last && pl.fanouts[f.name] == f {
		delete(pl.fanouts, f.name)
	}
	pl.mu.Unlock()
	if last {
		f.stop()
	}
}

func (f *fanout) dead() bool {
	for _, sh := range f.shards {
		select {
		case <-sh.done:
			return true
		default:
		}
	}
	return false
}

func (f *fanout) stop() {
	for _, sh := range f.shards {
		sh.cancel()
	}
	for _, sh := range f.shards {
		<-sh.done
	}
}

// shard picks a shard for a new player.
func (f *fanout) shard() *shard {
	return f.shards[int(f.next.Add(1))%len(f.shards)]
}

// Writer is a player's own, blocking write path on its connection.
type Writer struct {
	Conn net.Conn
	// Timeout bounds a write without progress: the deadline is pushed
	// forward at most every Timeout/4, so a write fails after 3/4 to 4/4
	// of it.
	Timeout time.Duration
	// Head, if set, is written before the first bytes (a response head).
	Head []byte
	// Failed is set once a write failed (the connection's framing may be
	// broken).
	Failed bool

	deadlineSet time.Time
	out         net.Buffers
}

// Write writes bufs, waiting as long as the player takes data.
func (w *Writer) Write(bufs net.Buffers) error {
	if w.Head != nil {
		w.out = append(append(w.out[:0], w.Head), bufs...)
		w.Head = nil
	} else {
		w.out = append(w.out[:0], bufs...)
	}
	if len(w.out) == 0 {
		return nil
	}
	if now := time.Now(); now.Sub(w.deadlineSet) > w.Timeout/4 {
		if err := w.Conn.SetWriteDeadline(now.Add(w.Timeout)); err != nil {
			w.Failed = true
			return err
		}
		w.deadlineSet = now
	}
	// WriteTo consumes out (a field: a local would escape, one allocation
	// per write); the shared bytes are not touched.
	if _, err := w.out.WriteTo(w.Conn); err != nil {
		w.Failed = true
		return err
	}
	return nil
}

// Sent reports whether anything was written (the Head went out).
func (w *Writer) Sent() bool { return w.Head == nil }

// readyForFastPath sends a pending Head and clears the write deadline:
// fast-path writes never block, and a deadline left from the player's own
// writes would fail them.
func (w *Writer) readyForFastPath() error {
	if w.Head != nil {
		if err := w.Write(nil); err != nil {
			return err
		}
	}
	if !w.deadlineSet.IsZero() {
		w.Conn.SetWriteDeadline(time.Time{})
		w.deadlineSet = time.Time{}
	}
	return nil
}

// Play writes sub's stream to w's connection until it ends, ctx ends or a
// write fails. The bytes written count as bytes out of the stream
// (Subscriber.CountOut): the player's own writes on sub, the fast path's
// once per batch on its shard's subscription. The player writes what it lacks itself (the cached GOP on
// joining, or a backlog after its socket filled up), then joins the
// stream's fast path. A connection without a raw socket (or a stream whose
// fast path cannot start) is served by the player's own writes only.
func (pl *Pool) Play(ctx context.Context, sub *hub.Subscriber, w *Writer) error {
	batch := make([]*hub.Unit, 0, 32)
	bufs := make(net.Buffers, 0, 40)
	var cur *hub.Tracks
	write := func(units []*hub.Unit) error {
		var n int
		bufs, cur, n = pl.p.Format.Append(bufs[:0], cur, units)
		if n == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err // a player with a backlog stops at a batch boundary
		}
		if err := w.Write(bufs); err != nil {
			return err
		}
		sub.CountOut(n)
		return nil
	}

	var sh *shard
	var p *player
	if sc, ok := w.Conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			if f, err := pl.acquire(sub.Stream()); err == nil {
				defer pl.release(f)
				sh = f.shard()
				p = &player{raw: raw, handoff: make(chan handoff, 1)}
			}
		}
	}
	for {
		units, err := sub.Poll(batch)
		if err != nil {
			return err
		}
		if len(units) > 0 {
			if err := write(units); err != nil {
				return err
			}
			continue
		}
		if sh == nil {
			units, err := sub.Next(ctx, batch)
			if err != nil {
				return err
			}
			if err := write(units); err != nil {
				return err
			}
			continue
		}
		if err := w.readyForFastPath(); err != nil {
			return err
		}
		wait, joined, err := sh.tryJoin(p, sub.Position(), cur)
		switch {
		case err != nil:
			sh = nil // the fast path is gone: carry on alone
			continue
		case wait != nil:
			select {
			case <-wait:
			case <-ctx.Done():
				return ctx.Err()
			case <-sub.Done(): // kicked
				return hub.ErrStreamEnded
			}
			continue
		case !joined:
			continue
		}
		pl.joins.Add(1)
		var h handoff
		select {
		case h = <-p.handoff:
		case <-ctx.Done():
			if !sh.leave(p) {
				<-p.handoff // handed back meanwhile; nothing more to write
			}
			return ctx.Err()
		case <-sub.Done(): // kicked
			if !sh.leave(p) {
				<-p.handoff
			}
			return hub.ErrStreamEnded
		}
		pl.handoffs.Add(1)
		if h.werr != nil {
			w.Failed = true
			return h.werr
		}
		if h.err != nil {
			sh = nil
		}
		sub.Seek(h.pos)
		cur = h.tracks
		if err := w.Write(h.rest); err != nil {
			return err
		}
		sub.CountOut(buffersLen(h.rest))
	}
}

func buffersLen(bufs net.Buffers) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}
