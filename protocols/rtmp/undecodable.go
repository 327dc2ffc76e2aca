package rtmp

import (
	"log/slog"
	"time"
)

// badMediaLogEvery bounds the lines about dropped media: one per period.
const badMediaLogEvery = 10 * time.Second

// badMedia counts the media messages of one connection that arrived whole
// but could not be decoded (a truncated or garbled AVCC access unit, say:
// the reader failed while the connection read fine, originConn.err is
// nil). They are dropped, not fatal, and summarised in the log at most
// once per badMediaLogEvery.
type badMedia struct {
	log     *slog.Logger
	n       uint64 // since the last line
	total   uint64
	lastLog time.Time
}

func (b *badMedia) drop(err error) {
	b.n++
	b.total++
	if now := time.Now(); now.Sub(b.lastLog) >= badMediaLogEvery {
		b.log.Warn("undecodable media dropped", "err", err, "count", b.n, "total", b.total)
		b.lastLog, b.n = now, 0
	}
}
