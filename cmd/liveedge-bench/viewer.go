package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A viewerKind is one playback protocol the bench loads the server with.
// Each kind gets its own table. To add one (HTTP-FLV, RTSP, WHEP, HLS):
// implement play for its protocol, reporting every received video frame
// with viewer.frame, and register it in viewerKinds.
type viewerKind interface {
	// name is the protocol's name in the report, e.g. "RTMP".
	name() string
	// listener is the server configuration section ("rtmp", "http",
	// "rtsp") whose listener the viewers connect to; the bench enables it
	// on 127.0.0.1:0 and learns its address from the server's log.
	listener() string
	// play connects one viewer to stream ("app/name") at addr and reports
	// the video frames it receives to v until ctx ends or the connection
	// fails. It must not block past ctx's end for longer than it takes to
	// close a socket.
	play(ctx context.Context, addr, stream string, v *viewer) error
}

// viewerKinds are the kinds -kinds may name.
var viewerKinds = map[string]viewerKind{
	"rtmp": rtmpKind{},
	"flv":  flvKind{},
	"whep": whepKind{},
	"rtsp": rtspKind{},
}

// Thresholds of the per-viewer figures.
const (
	// latencyAfterJoin: latency is recorded only on frames received this
	// long after the viewer started connecting (the cached GOP it starts
	// with is old by design).
	latencyAfterJoin = 3 * time.Second
	// stallGap: a gap between consecutive video frames longer than this is
	// a stall.
	stallGap = 500 * time.Millisecond
)

// viewer is one simulated viewer and what it measured. Its fields are
// written by the viewer's goroutine only; read them after done is closed
// (ready and the atomics may be read at any time).
type viewer struct {
	start time.Time    // dial start
	rec   *atomic.Bool // latency is recorded while set

	ready     chan struct{} // closed at the first video frame, or when play ends without one
	readyOnce sync.Once
	gotFirst  atomic.Bool
	done      chan struct{} // closed when play returned
	exited    atomic.Bool

	phases   []phase // setup steps, in order, for the TTFF breakdown
	ttff     time.Duration
	firstKey bool
	frames   int
	last     time.Time
	stalls   int
	stallAt  []time.Time // when the first stalls ended
	maxGap   time.Duration
	latency  []int32       // microseconds
	noSEI    int           // frames without the bench SEI
	preKey   int           // frames before the first keyframe, not counted as the first frame (see undecodable)
	bytes    atomic.Uint64 // bytes received
	requests atomic.Uint64 // requests sent (HTTP kinds)
	gapLimit time.Duration // a longer gap between frames is a stall (0: stallGap); set by play
	err      error
	failedAt time.Duration // since start, when play ended with an error
}

func newViewer(rec *atomic.Bool, latencyCap int) *viewer {
	return &viewer{rec: rec, ready: make(chan struct{}), done: make(chan struct{}),
		latency: make([]int32, 0, latencyCap), phases: make([]phase, 0, 6)}
}

// phase is a setup step of a viewer and when it ended (since dial start).
type phase struct {
	name string
	at   time.Duration
}

// mark records the end of a setup step (connect, play sent…).
func (v *viewer) mark(name string) {
	v.phases = append(v.phases, phase{name, time.Since(v.start)})
}

func (v *viewer) markReady() { v.readyOnce.Do(func() { close(v.ready) }) }

// frame records one video frame received, complete, at now. key tells
// whether it is a keyframe; pub is the publisher's wall clock (Unix ns)
// from the bench SEI, when hasPub.
func (v *viewer) frame(now time.Time, key bool, pub int64, hasPub bool) {
	if v.frames == 0 {
		v.ttff = now.Sub(v.start)
		v.firstKey = key
		v.gotFirst.Store(true)
		v.markReady()
	} else {
		gap := now.Sub(v.last)
		limit := stallGap
		if v.gapLimit > 0 {
			limit = v.gapLimit
		}
		if gap > limit {
			v.stalls++
			if len(v.stallAt) < 4 {
				v.stallAt = append(v.stallAt, now)
			}
		}
		v.maxGap = max(v.maxGap, gap)
	}
	v.last = now
	v.frames++
	if !hasPub {
		v.noSEI++
		return
	}
	if v.rec.Load() && now.Sub(v.start) >= latencyAfterJoin {
		us := (now.UnixNano() - pub) / 1e3
		v.latency = append(v.latency, int32(min(max(us, 0), 1<<31-1)))
	}
}

// undecodable records a frame that arrived before any keyframe, for a
// kind whose TTFF is the first keyframe (a decoder cannot show what
// precedes it): the frame is not the viewer's first, and the viewer is
// not counted as key-first.
func (v *viewer) undecodable() { v.preKey++ }

// keyFirst reports whether the first video frame the viewer received was
// a keyframe.
func (v *viewer) keyFirst() bool { return v.firstKey && v.preKey == 0 }

// run plays until ctx ends and then marks the viewer done.
func (v *viewer) run(ctx context.Context, kind viewerKind, addr, stream string) {
	v.start = time.Now()
	err := kind.play(ctx, addr, stream, v)
	if ctx.Err() == nil {
		v.err = err
		v.failedAt = time.Since(v.start)
	}
	v.exited.Store(true)
	v.markReady()
	close(v.done)
}
