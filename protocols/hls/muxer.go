package hls

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/liveedge/liveedge/hub"
)

var errNotReady = errors.New("hls: no playlist in time")

// viewerWindow is how long a client address counts as a viewer after its
// last request.
const viewerWindow = 10 * time.Second

// streamMuxer is one stream's HLS: an internal hub subscriber feeding a
// gohlslib muxer. The muxer is replaced when the stream's codec
// configuration changes.
type streamMuxer struct {
	s    *Server
	name string
	set  Settings
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	// ready is closed when the first muxer has a playlist, done when the
	// feed ended (err says why).
	ready     chan struct{}
	readyOnce sync.Once
	done      chan struct{}
	err       error

	gz  gzipCache // the last playlist, gzipped
	seq sequence  // media sequence numbers served, across muxer restarts

	active   atomic.Int64 // unix nanoseconds of the last request start or end
	inflight atomic.Int64 // requests being served

	mu      sync.Mutex
	mx      *gohlslib.Muxer
	mxDir   string    // mx's directory under Params.Dir, "" in memory
	num     numbering // renumbers mx's playlists (see sequence)
	vari    Variant
	closed  bool
	viewers map[netip.Addr]time.Time

	// Owned by the feed goroutine.
	video, audio *gohlslib.Track
	tracks       *hub.Tracks
	encErrs      int
	lastEncLog   time.Time
	inMemory     bool // hls.dir failed this muxer: segments stay in memory
}

func newStreamMuxer(s *Server, name string, set Settings) *streamMuxer {
	ctx, cancel := context.WithCancel(s.ctx)
	m := &streamMuxer{s: s, name: name, set: set, log: s.log.With("stream", name),
		ctx: ctx, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{}),
		vari: set.Variant, viewers: map[netip.Addr]time.Time{}}
	m.active.Store(time.Now().UnixNano())
	return m
}

// touch records a request start (a valid ip) or end.
func (m *streamMuxer) touch(ip netip.Addr) {
	now := time.Now()
	m.active.Store(now.UnixNano())
	if ip.IsValid() {
		m.inflight.Add(1)
		m.mu.Lock()
		m.viewers[ip] = now
		m.mu.Unlock()
	} else {
		m.inflight.Add(-1)
	}
}

// idle reports whether the muxer served no request for IdleClose. A
// request still being served counts as activity, but only up to the
// longest wait a request may have (the first playlist's), so requests
// stuck in a muxer that gets no media do not keep it open for ever.
func (m *streamMuxer) idle(now time.Time) bool {
	since := now.Sub(time.Unix(0, m.active.Load()))
	if m.inflight.Load() > 0 {
		return since > m.s.p.IdleClose+m.readyBound()
	}
	return since > m.s.p.IdleClose
}

// readyBound is how long a first request waits for the first playlist once
// the stream has started.
func (m *streamMuxer) readyBound() time.Duration {
	return m.s.p.StartTimeout + 3*m.set.SegmentDuration + 5*time.Second
}

func (m *streamMuxer) pruneViewers(now time.Time) {
	m.mu.Lock()
	for ip, t := range m.viewers {
		if now.Sub(t) > viewerWindow {
			delete(m.viewers, ip)
		}
	}
	m.mu.Unlock()
}

func (m *streamMuxer) viewerCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.viewers)
}

func (m *streamMuxer) variant() Variant {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.vari
}

func (m *streamMuxer) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// close stops the feed; the feed goroutine then closes the muxer (a
// gohlslib muxer must not be closed while it is written to), and requests
// waiting in it return.
func (m *streamMuxer) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
}

// wait returns the muxer, and the numbering of its playlists, once it has
// a playlist, waiting for the stream to start (the hub's
// start timeout) and then for the first segment, bounded.
func (m *streamMuxer) wait(ctx context.Context) (*gohlslib.Muxer, numbering, error) {
	select {
	case <-m.ready:
	default:
		t := time.NewTimer(m.readyBound())
		defer t.Stop()
		select {
		case <-m.ready:
		case <-m.done:
			return nil, numbering{}, m.err
		case <-t.C:
			return nil, numbering{}, errNotReady
		case <-ctx.Done():
			return nil, numbering{}, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.mx == nil {
		return nil, numbering{}, hub.ErrStreamEnded
	}
	return m.mx, m.num, nil
}

// run subscribes to the stream and feeds the muxer until the stream ends,
// the muxer is closed or the server stops.
func (m *streamMuxer) run() {
	err := m.feed()
	m.close()
	m.mu.Lock()
	mx, dir := m.mx, m.mxDir
	m.mu.Unlock()
	if mx != nil {
		mx.Close()
		m.s.removeDir(dir)
	}
	switch {
	case err == nil || errors.Is(err, context.Canceled):
		err = hub.ErrStreamEnded
	case !errors.Is(err, hub.ErrStreamEnded) && !errors.Is(err, hub.ErrNotFound) && !errors.Is(err, hub.ErrHubClosed):
		m.log.Warn("hls muxer stopped", "err", err)
	}
	m.err = err
	close(m.done)
}

func (m *streamMuxer) feed() error {
	sub, err := m.s.p.Hub.Subscribe(m.ctx, m.name, hub.Session{Protocol: "hls", Internal: true,
		Viewers: m.viewerCount})
	if err != nil {
		m.log.Debug("hls muxer not started", "err", err)
		return err
	}
	defer sub.Close()
	m.log.Info("muxer started", "variant", m.set.Variant.String())
	defer m.log.Info("muxer closed")
	buf := make([]*hub.Unit, 0, 64)
	for {
		units, err := sub.Next(m.ctx, buf)
		if err != nil {
			return err
		}
		for _, u := range units {
			if err := m.write(u); err != nil {
				return err
			}
		}
	}
}

// write hands one unit to the muxer, (re)creating the muxer when the codec
// configuration changes.
func (m *streamMuxer) write(u *hub.Unit) error {
	if u.Tracks != m.tracks {
		if m.tracks == nil || !u.Tracks.Video.Equal(m.tracks.Video) || !u.Tracks.Audio.Equal(m.tracks.Audio) {
			if err := m.restart(u.Tracks); err != nil {
				return err
			}
			if m.tracks != nil {
				m.log.Info("codec configuration changed, muxer restarted")
			}
		}
		m.tracks = u.Tracks
	}
	m.mu.Lock()
	mx := m.mx
	m.mu.Unlock()
	if mx == nil {
		return hub.ErrStreamEnded
	}
	ntp := u.Ingest
	if ntp.IsZero() {
		ntp = time.Now()
	}
	var err error
	switch {
	case u.Video && m.video != nil:
		t := u.Tracks.Video
		au := withParams(t, u)
		pts := ticks(u.PTS, 90000)
		if t.Codec == hub.CodecH265 {
			err = mx.WriteH265(m.video, ntp, pts, au)
		} else {
			err = mx.WriteH264(m.video, ntp, pts, au)
		}
	case !u.Video && m.audio != nil:
		t := u.Tracks.Audio
		if t.Codec == hub.CodecOpus {
			err = mx.WriteOpus(m.audio, ntp, ticks(u.PTS, 48000), [][]byte{u.Payload})
		} else {
			err = mx.WriteMPEG4Audio(m.audio, ntp, ticks(u.PTS, m.audio.ClockRate), [][]byte{u.Payload})
		}
	}
	if err != nil {
		if m.dirFailed(err) {
			// The muxer cannot go on after a failed write: a new one
			// keeps its segments in memory, from the next keyframe.
			return m.restart(u.Tracks)
		}
		m.encodeError(err)
	}
	return nil
}

// dirFailed reports whether err is a failure to write a segment, part or
// playlist file under hls.dir (the disk full, the directory removed or
// read-only), and if so logs it and switches the muxer to memory.
func (m *streamMuxer) dirFailed(err error) bool {
	var pe *fs.PathError
	if m.inMemory || !errors.As(err, &pe) {
		return false
	}
	m.mu.Lock()
	dir := m.mxDir
	m.mu.Unlock()
	if dir == "" {
		return false
	}
	m.log.Error("hls.dir write failed, keeping this stream's segments in memory", "dir", dir, "err", err)
	m.inMemory = true
	return true
}

// encodeError counts muxing problems and logs at most one line in 10 s.
func (m *streamMuxer) encodeError(err error) {
	m.encErrs++
	if now := time.Now(); now.Sub(m.lastEncLog) >= 10*time.Second {
		m.log.Warn("hls muxing problem", "err", err, "count", m.encErrs)
		m.lastEncLog, m.encErrs = now, 0
	}
}

// restart replaces the muxer with one for the given tracks.
func (m *streamMuxer) restart(t *hub.Tracks) error {
	var video, audio *gohlslib.Track
	if v := t.Video; v != nil {
		switch v.Codec {
		case hub.CodecH264:
			video = &gohlslib.Track{Codec: &codecs.H264{SPS: v.SPS, PPS: v.PPS}, ClockRate: 90000}
		case hub.CodecH265:
			video = &gohlslib.Track{Codec: &codecs.H265{VPS: v.VPS, SPS: v.SPS, PPS: v.PPS}, ClockRate: 90000}
		}
	}
	if a := t.Audio; a != nil {
		switch a.Codec {
		case hub.CodecAAC:
			var cfg mpeg4audio.AudioSpecificConfig
			if err := cfg.Unmarshal(a.AudioConfig); err == nil {
				audio = &gohlslib.Track{Codec: &codecs.MPEG4Audio{Config: cfg}, ClockRate: cfg.SampleRate}
			}
		case hub.CodecOpus:
			audio = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: a.Channels}, ClockRate: 48000}
		}
	}
	vari := m.set.Variant
	if vari == MPEGTS && (video != nil && t.Video.Codec != hub.CodecH264 || audio != nil && t.Audio.Codec != hub.CodecAAC) {
		m.log.Warn("MPEG-TS HLS carries H.264 and AAC only; using fMP4 segments")
		vari = FMP4
	}
	dir := ""
	if !m.inMemory {
		dir = m.s.muxerDir(m.name)
	}
	mx := &gohlslib.Muxer{
		Variant:            muxerVariant(vari),
		SegmentCount:       m.set.SegmentCount,
		SegmentMinDuration: m.set.SegmentDuration,
		PartMinDuration:    m.set.PartDuration,
		OnEncodeError:      m.encodeError,
		Directory:          dir,
	}
	for _, tr := range []*gohlslib.Track{video, audio} {
		if tr != nil {
			mx.Tracks = append(mx.Tracks, tr)
		}
	}
	if len(mx.Tracks) == 0 {
		m.s.removeDir(dir)
		return fmt.Errorf("hls: %w", hub.ErrNoTracks)
	}
	if err := mx.Start(); err != nil {
		m.s.removeDir(dir)
		return fmt.Errorf("hls: %w", err)
	}
	m.mu.Lock()
	old, oldDir, closed := m.mx, m.mxDir, m.closed
	if !closed {
		m.mx, m.mxDir, m.vari = mx, dir, vari
		if old != nil {
			m.num = m.seq.restart(vari == LowLatency)
		}
	}
	m.mu.Unlock()
	if old != nil {
		old.Close()
		m.s.removeDir(oldDir)
	}
	if closed {
		mx.Close()
		m.s.removeDir(dir)
		return hub.ErrStreamEnded
	}
	m.video, m.audio = video, audio
	m.s.wg.Add(1)
	go m.watchReady(mx)
	return nil
}

// watchReady asks the muxer for its multivariant playlist, which it
// answers once it has content (or is closed), and marks the stream ready.
func (m *streamMuxer) watchReady(mx *gohlslib.Muxer) {
	defer m.s.wg.Done()
	req, _ := http.NewRequest(http.MethodGet, "/index.m3u8", nil)
	var w statusWriter
	mx.Handle(&w, req)
	if w.status == http.StatusOK {
		m.readyOnce.Do(func() { close(m.ready) })
	}
}

// statusWriter discards a response, keeping its status.
type statusWriter struct {
	h      http.Header
	status int
}

func (w *statusWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

func muxerVariant(v Variant) gohlslib.MuxerVariant {
	switch v {
	case MPEGTS:
		return gohlslib.MuxerVariantMPEGTS
	case FMP4:
		return gohlslib.MuxerVariantFMP4
	}
	return gohlslib.MuxerVariantLowLatency
}

// ticks converts a stream time to a clock of rate Hz.
func ticks(d time.Duration, rate int) int64 {
	secs, rem := int64(d/time.Second), int64(d%time.Second)
	return secs*int64(rate) + rem*int64(rate)/int64(time.Second)
}

// withParams returns a keyframe's NAL units with the track's parameter
// sets in front when the unit lacks them (RTMP carries them out of band;
// the muxer wants them in the stream).
func withParams(t *hub.Track, u *hub.Unit) [][]byte {
	if !u.Key {
		return u.NALUs
	}
	spsType, h265 := byte(7), t.Codec == hub.CodecH265
	if h265 {
		spsType = 33
	}
	for _, n := range u.NALUs {
		if len(n) == 0 {
			continue
		}
		typ := n[0] & 0x1f
		if h265 {
			typ = (n[0] >> 1) & 0x3f
		}
		if typ == spsType {
			return u.NALUs
		}
	}
	out := make([][]byte, 0, len(u.NALUs)+3)
	if h265 {
		out = append(out, t.VPS)
	}
	out = append(out, t.SPS, t.PPS)
	return append(out, u.NALUs...)
}
