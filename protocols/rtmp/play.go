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
	"github.com/liveedge/liveedge/protocols/internal/fanout"
	"github.com/liveedge/liveedge/protocols/internal/tags"
)

const typeCommandAMF0 = 20

// play serves one player: after the play command is accepted, the stream's
// shared pre-chunked bytes are written by this goroutine or, while the
// player keeps up, by the stream's fast path (fanout.go); a second
// goroutine drains what the player sends.
func (s *Server) play(log *slog.Logger, nc net.Conn, sc *gortmplib.ServerConn, name string, sess hub.Session) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	sub, err := s.p.Hub.Subscribe(ctx, name, sess)
	if err != nil {
		log.Info("play refused", "err", err)
		if errors.Is(err, hub.ErrLimit) {
			writeStatus(sc, "error", "NetStream.Play.Failed", "server busy")
		} else {
			writeStatus(sc, "error", "NetStream.Play.StreamNotFound", "stream not found")
		}
		return
	}
	defer sub.Close()
	if err := sc.AcceptAction(); err != nil {
		return
	}
	nc.SetDeadline(time.Time{})
	if tc, ok := nc.(interface{ SetWriteBuffer(int) error }); ok && s.p.SendBuffer > 0 {
		tc.SetWriteBuffer(s.p.SendBuffer) //nolint:errcheck // best effort
	}
	log.Info("playing")

	drained := make(chan struct{})
	go func() {
		defer close(drained)
		defer cancel()
		drain(nc)
	}()

	start := time.Now()
	err = s.fan.Play(ctx, sub, &fanout.Writer{Conn: nc, Timeout: s.p.WriteTimeout})
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
