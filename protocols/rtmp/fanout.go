package rtmp

import (
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/internal/fanout"
)

// format is how players get a batch of units: each unit chunked once per
// stream (hub.FormatRTMP), the headers when the tracks change. The shared
// fast path (protocols/internal/fanout) writes these same bytes to every
// player that keeps up and hands a player whose socket is full back to its
// own goroutine at a unit boundary.
var format = fanout.Format{
	Unit:    func(u *hub.Unit) []byte { return u.Encoded(hub.FormatRTMP, encodeUnit) },
	Headers: headers,
}
