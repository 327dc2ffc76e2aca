package hub

import "sync"

// EventType says what happened to a stream.
type EventType int

// Event types.
const (
	// StreamStarted: the stream got its first codec configuration from a
	// producer; viewers can play it.
	StreamStarted EventType = iota + 1
	// StreamEnded: a stream that had started is gone (its producer left
	// and none came back within the grace period, it was closed, or the
	// hub closed).
	StreamEnded
	// NoViewers: the last viewer of a live stream left. More may come; a
	// consumer that wants "no viewers for a while" waits and checks
	// Hub.Stream.
	NoViewers
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case StreamStarted:
		return "stream_started"
	case StreamEnded:
		return "stream_ended"
	case NoViewers:
		return "no_viewers"
	}
	return "unknown"
}

// Event is a change in a stream's life, given to Params.Events.
type Event struct {
	Type   EventType
	Stream string // "app/stream"
	// Producer is the session of the stream's (last) producer; zero for
	// NoViewers.
	Producer Session
}

// streamEvents orders one stream's events: StreamStarted at most once,
// then StreamEnded at most once and only after it; NoViewers only in
// between. Its lock is never held together with the stream's.
type streamEvents struct {
	mu      sync.Mutex
	started bool // StreamStarted was given
	ended   bool // the stream's end was announced (StreamEnded given if started)
}

// emit gives ev to Params.Events, unless the stream's order forbids it.
// The caller holds none of the hub's or the stream's locks.
func (s *Stream) emit(ev Event) {
	f := s.h.p.Events
	if f == nil {
		return
	}
	e := &s.events
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ev.Type {
	case StreamStarted:
		if e.started || e.ended {
			return
		}
		e.started = true
	case StreamEnded:
		if e.ended {
			return
		}
		e.ended = true
		if !e.started {
			return
		}
	case NoViewers:
		if !e.started || e.ended {
			return
		}
	}
	f(ev)
}
