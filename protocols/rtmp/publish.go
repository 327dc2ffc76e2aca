package rtmp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/liveedge/liveedge/hub"
)

// publish feeds the hub from an RTMP publisher until it leaves, is taken
// over, or the server closes.
func (s *Server) publish(log *slog.Logger, nc net.Conn, sc *gortmplib.ServerConn, name string, sess hub.Session) {
	p, err := s.p.Hub.Publish(name, sess)
	if err != nil {
		log.Warn("publish refused", "err", err)
		if errors.Is(err, hub.ErrLimit) {
			writeStatus(sc, "error", "NetStream.Publish.Failed", "server busy")
		} else {
			writeStatus(sc, "error", "NetStream.Publish.BadName", "stream is already being published")
		}
		return
	}
	defer p.Close()

	stop := make(chan struct{})
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		select {
		case <-p.Done():
			nc.Close() // taken over or shutting down: unblock the read
		case <-s.ctx.Done():
			nc.Close()
		case <-stop:
		}
	}()
	defer func() { close(stop); <-watcher }()

	if err := sc.AcceptAction(); err != nil {
		return
	}
	// originConn ends the track detection once the announced tracks are
	// configured, as for a pull, instead of after two seconds of media
	// (which a publisher reconnecting under the same name would cost its
	// viewers), and remembers read errors (see badMedia).
	rc := &originConn{Conn: sc}
	r := &gortmplib.Reader{Conn: rc}
	if err := r.Initialize(); err != nil {
		log.Warn("publish failed: no usable tracks", "err", err)
		return
	}
	if err := bindTracks(r, p); err != nil {
		log.Warn("publish refused", "err", err)
		writeStatus(sc, "error", "NetStream.Publish.Failed", err.Error())
		return
	}
	log.Info("publishing")
	nc.SetWriteDeadline(time.Time{})
	start := time.Now()
	bad := badMedia{log: log}
	for {
		nc.SetReadDeadline(time.Now().Add(s.p.ReadTimeout))
		if err = r.Read(); err != nil {
			if rc.err == nil {
				bad.drop(err) // a message read whole but not decodable
				continue
			}
			break
		}
	}
	select {
	case <-p.Done():
		err = hub.ErrReplaced
	default:
	}
	log.Info("publisher left", "reason", err, "duration", time.Since(start).Round(time.Millisecond),
		"bytes", sc.BytesReceived(), "undecodable", bad.total)
}

// mediaSink is what bindTracks feeds: a *hub.Producer, or a wrapper of one.
type mediaSink interface {
	SetTracks(video, audio *hub.Track) error
	WriteVideo(pts, dts time.Duration, nalus [][]byte) error
	WriteAudio(pts time.Duration, payload []byte) error
}

// bindTracks maps the reader's tracks to hub tracks and routes their data
// to the producer. The first video and the first audio track are relayed.
func bindTracks(r *gortmplib.Reader, p mediaSink) error {
	var video, audio *hub.Track
	var unsupported []string
	for _, t := range r.Tracks() {
		var err error
		switch c := t.Codec.(type) {
		case *codecs.H264:
			if video != nil {
				continue
			}
			if video, err = hub.NewH264Track(c.SPS, c.PPS); err != nil {
				return err
			}
			r.OnDataH264(t, func(pts, dts time.Duration, au [][]byte) { p.WriteVideo(pts, dts, au) }) //nolint:errcheck
		case *codecs.H265:
			if video != nil {
				continue
			}
			if video, err = hub.NewH265Track(c.VPS, c.SPS, c.PPS); err != nil {
				return err
			}
			r.OnDataH265(t, func(pts, dts time.Duration, au [][]byte) { p.WriteVideo(pts, dts, au) }) //nolint:errcheck
		case *codecs.MPEG4Audio:
			if audio != nil {
				continue
			}
			asc, err := c.Config.Marshal()
			if err != nil {
				return fmt.Errorf("AAC: %w", err)
			}
			if audio, err = hub.NewAACTrack(asc); err != nil {
				return err
			}
			r.OnDataMPEG4Audio(t, func(pts time.Duration, au []byte) { p.WriteAudio(pts, au) }) //nolint:errcheck
		case *codecs.Opus:
			if audio != nil {
				continue
			}
			ch := 2
			if c.IDHeader != nil {
				ch = int(c.IDHeader.ChannelCount)
			}
			audio = hub.NewOpusTrack(ch)
			r.OnDataOpus(t, func(pts time.Duration, pkt []byte) { p.WriteAudio(pts, pkt) }) //nolint:errcheck
		default:
			unsupported = append(unsupported, fmt.Sprintf("%T", t.Codec)[len("*codecs."):])
		}
	}
	if len(unsupported) > 0 {
		return fmt.Errorf("%w: %v", hub.ErrUnsupportedCodec, unsupported)
	}
	if video == nil && audio == nil {
		return hub.ErrNoTracks
	}
	if err := p.SetTracks(video, audio); err != nil {
		return err
	}
	return nil
}
