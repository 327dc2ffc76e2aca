package rtmp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/internal/tags"
)

const typeCommandAMF0 = 20

// play serves one player: after the play command is accepted, this
// goroutine is the connection's only writer and writes the stream's shared
// pre-chunked bytes; a second goroutine drains what the player sends.
func (s *Server) play(log *slog.Logger, nc net.Conn, sc *gortmplib.ServerConn, name string, sess hub.Session) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	sub, err := s.p.Hub.Subscribe(ctx, name, sess)
	if err != nil {
		log.Info("play refused", "err", err)
		writeStatus(sc, "error", "NetStream.Play.StreamNotFound", "stream not found")
		return
	}
	defer sub.Close()
	if err := sc.AcceptAction(); err != nil {
		return
	}
	nc.SetDeadline(time.Time{})
	if tc, ok := nc.(*net.TCPConn); ok && s.p.SendBuffer > 0 {
		tc.SetWriteBuffer(s.p.SendBuffer)
	}
	log.Info("playing")

	drained := make(chan struct{})
	go func() {
		defer close(drained)
		defer cancel()
		drain(nc)
	}()

	start := time.Now()
	err = s.writeLoop(ctx, nc, sub)
	if errors.Is(err, hub.ErrStreamEnded) {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(playStop) //nolint:errcheck // best effort, closing anyway
	}
	nc.Close()
	<-drained
	lvl := slog.LevelInfo
	if errors.Is(err, hub.ErrSlowViewer) {
		lvl = slog.LevelWarn
	}
	log.Log(context.Background(), lvl, "player left", "reason", reason(err),
		"duration", time.Since(start).Round(time.Millisecond), "dropped", sub.Dropped())
}

func reason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return "closed by player"
	case errors.As(err, &ne) && ne.Timeout():
		return "write timeout (slow viewer)"
	case err == nil:
		return "done"
	}
	return err.Error()
}

// drain reads and discards what the player sends (acknowledgements,
// buffer length, pings) until the connection closes.
func drain(nc net.Conn) {
	buf := make([]byte, 512)
	for {
		if _, err := nc.Read(buf); err != nil {
			return
		}
	}
}

// writeLoop sends the stream to one player until it ends or fails. The
// player writes what it lacks itself (the cached GOP on joining, or a
// backlog after its socket filled up), then joins the stream's fast path.
func (s *Server) writeLoop(ctx context.Context, nc net.Conn, sub *hub.Subscriber) error {
	w := &playWriter{s: s, nc: nc, batch: make([]*hub.Unit, 0, 32), bufs: make(net.Buffers, 0, 40)}
	var sh *shard
	var p *player
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			if f, err := s.acquireFanout(sub.Stream()); err == nil {
				defer s.releaseFanout(f)
				sh = f.shard()
				p = &player{raw: raw, handoff: make(chan handoff, 1)}
			}
		}
	}
	for {
		units, err := sub.Poll(w.batch)
		if err != nil {
			return err
		}
		if len(units) > 0 {
			if err := w.write(units); err != nil {
				return err
			}
			continue
		}
		if sh == nil {
			units, err := sub.Next(ctx, w.batch)
			if err != nil {
				return err
			}
			if err := w.write(units); err != nil {
				return err
			}
			continue
		}
		// Fast-path writes never block, and a deadline left from the
		// player's own writes would fail them.
		if !w.deadlineSet.IsZero() {
			nc.SetWriteDeadline(time.Time{})
			w.deadlineSet = time.Time{}
		}
		wait, joined, err := sh.tryJoin(p, sub.Position(), w.cur)
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
		s.joins.Add(1)
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
		s.handoffs.Add(1)
		if h.werr != nil {
			return h.werr
		}
		if h.err != nil {
			sh = nil
		}
		sub.Seek(h.pos)
		w.cur = h.tracks
		if err := w.flush(h.rest); err != nil {
			return err
		}
	}
}

// playWriter is a player's own, blocking, write path.
type playWriter struct {
	s           *Server
	nc          net.Conn
	batch       []*hub.Unit
	bufs        net.Buffers
	cur         *hub.Tracks
	deadlineSet time.Time
}

func (w *playWriter) write(units []*hub.Unit) error {
	w.bufs = w.bufs[:0]
	for _, u := range units {
		if u.Tracks != w.cur {
			if h := headers(w.cur, u.Tracks); len(h) > 0 {
				w.bufs = append(w.bufs, h)
			}
			w.cur = u.Tracks
		}
		w.bufs = append(w.bufs, u.Encoded(hub.FormatRTMP, encodeUnit))
	}
	return w.flush(w.bufs)
}

// flush writes bufs, waiting as long as the player takes data. The write
// deadline is pushed forward at most every WriteTimeout/4: a write fails
// after 3/4 to 4/4 of the timeout without progress.
func (w *playWriter) flush(bufs net.Buffers) error {
	if len(bufs) == 0 {
		return nil
	}
	if now := time.Now(); now.Sub(w.deadlineSet) > w.s.p.WriteTimeout/4 {
		w.nc.SetWriteDeadline(now.Add(w.s.p.WriteTimeout))
		w.deadlineSet = now
	}
	_, err := bufs.WriteTo(w.nc)
	return err
}

// encodeUnit chunks one unit; computed once per unit, shared by players.
func encodeUnit(u *hub.Unit) []byte {
	typ, body := tags.Body(u)
	csid := byte(csidAudio)
	if u.Video {
		csid = csidVideo
	}
	return appendMessage(make([]byte, 0, messageSize(len(body))), csid, typ, tags.Ms(u.DTS), body)
}

// headers returns what a player needs before units produced under next:
// everything for a new player, only what changed for one already playing.
func headers(prev, next *hub.Tracks) []byte {
	if prev == nil {
		return next.Encoded(hub.FormatRTMP, encodeHeaders)
	}
	ts := tags.Ms(next.Start)
	var b []byte
	if next.Video != nil && !next.Video.Equal(prev.Video) {
		b = appendMessage(b, csidVideo, tags.TypeVideo, ts, tags.VideoHeader(next.Video))
	}
	if next.Audio != nil && !next.Audio.Equal(prev.Audio) {
		b = appendMessage(b, csidAudio, tags.TypeAudio, ts, tags.AudioHeader(next.Audio))
	}
	return b
}

func encodeHeaders(t *hub.Tracks) []byte {
	ts := tags.Ms(t.Start)
	b := appendMessage(nil, csidData, tags.TypeData, ts, tags.Metadata(t))
	if t.Video != nil {
		b = appendMessage(b, csidVideo, tags.TypeVideo, ts, tags.VideoHeader(t.Video))
	}
	if t.Audio != nil {
		b = appendMessage(b, csidAudio, tags.TypeAudio, ts, tags.AudioHeader(t.Audio))
	}
	return b
}

// playStop is the onStatus a player gets when its stream ends.
var playStop = func() []byte {
	body, _ := amf0.Data{"onStatus", float64(0), nil, amf0.Object{
		{Key: "level", Value: "status"},
		{Key: "code", Value: "NetStream.Play.Stop"},
		{Key: "description", Value: "stream ended"},
	}}.Marshal()
	return appendMessage(nil, csidData, typeCommandAMF0, 0, body)
}()
