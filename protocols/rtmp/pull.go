package rtmp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/origin"
)

// Errors of an origin pull: those of package origin, shared with the
// other pull client, so that errors.Is works whatever the protocol.
var (
	ErrConnectFailed = origin.ErrConnectFailed
	ErrLost          = origin.ErrLost
	ErrStalled       = origin.ErrStalled
	ErrOriginStatus  = origin.ErrOriginStatus
	ErrOriginClosed  = origin.ErrOriginClosed
	ErrNoKeyframe    = origin.ErrNoKeyframe
)

// Defaults of PullOptions.
const (
	DefaultStallTimeout    = origin.DefaultStallTimeout
	DefaultConnectTimeout  = origin.DefaultConnectTimeout
	DefaultKeyframeTimeout = origin.DefaultKeyframeTimeout
)

// PullOptions configure an origin pull.
type PullOptions struct {
	// StallTimeout ends the pull when no media arrives for this long
	// (default 2 s).
	StallTimeout time.Duration
	// ConnectTimeout bounds the TCP connect, the RTMP handshake, the
	// connect and play commands and the wait for the codec configuration
	// (default 5 s).
	ConnectTimeout time.Duration
	// Dialer opens the TCP connection; nil means a net.Dialer with TCP
	// keepalive. Set its LocalAddr to choose the source address.
	Dialer *net.Dialer
	// KeyframeTimeout ends the pull when the origin sends media but none
	// that the hub takes (no keyframe to start from, after a start or a
	// source switch) for this long (default 10 s, never less than
	// StallTimeout): an origin that sends video with no keyframe fails
	// over like one that sends nothing.
	KeyframeTimeout time.Duration
	// OnMedia, if set, is called once, from the pull's goroutine, when the
	// stream has taken the first media unit (the first keyframe).
	OnMedia func()
	// Logger receives the summary of undecodable media the origin sent
	// (a pull passes its own, which names the stream); nil means
	// slog.Default().
	Logger *slog.Logger
}

func (o *PullOptions) defaults() {
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.KeyframeTimeout <= 0 {
		o.KeyframeTimeout = DefaultKeyframeTimeout
	}
	o.KeyframeTimeout = max(o.KeyframeTimeout, o.StallTimeout)
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{KeepAlive: 15 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// PullConn is a playing connection to an origin whose codec configuration
// is known: the result of DialPull, consumed by Run.
type PullConn struct {
	url    string
	opts   PullOptions
	client *gortmplib.Client
	conn   *originConn
	reader *gortmplib.Reader
	rtt    time.Duration
	sink   *pullSink // bound to the reader by Preroll or Run
	bad    badMedia  // undecodable messages, dropped
}

// DialPull connects to an RTMP origin and plays rawURL
// ("rtmp://host[:port]/app/stream[?query]"): TCP connect, handshake,
// connect (app and tcUrl "rtmp://host[:port]/app"), createStream and play
// (the stream name with the query string, as nginx-rtmp, SRS and liveedge
// expect), then it reads until the codec configuration is known. Errors
// wrap ErrConnectFailed.
//
// What the origin sends goes through a chunk guard (see chunkGuard) that
// bounds what gortmplib holds for it: budgetConnect until the play is
// established (or the origin's first media header, if the guard sees it
// first), budgetMedia from then on. An origin that goes over fails the
// pull with an error that wraps ErrChunkBudget and says so.
func DialPull(ctx context.Context, rawURL string, opts PullOptions) (*PullConn, error) {
	opts.defaults()
	u, err := clientURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	start := time.Now()
	var guard *chunkGuard
	// gortmplib reads from the conn its dial function returns, and uses
	// DialTLSContext for both schemes when it is set (DialContext is then
	// unused).
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		g, err := dialOrigin(ctx, opts.Dialer, network, addr, u.Scheme == "rtmps", nil)
		if err != nil {
			return nil, err
		}
		guard = g // a new one on each attempt (authentication redials)
		return g, nil
	}
	c := &gortmplib.Client{URL: u, Publish: false, DialTLSContext: dial}
	if err := c.Initialize(ctx); err != nil {
		if strings.HasPrefix(err.Error(), "bad result") {
			// The origin answered connect or play with an error status.
			err = fmt.Errorf("%w: %w", ErrOriginStatus, err)
		} else if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			// The connection was closed when ctx ended: say so rather
			// than "use of closed network connection".
			err = fmt.Errorf("no answer within the connect timeout (%v): %w (%v)",
				time.Since(start).Round(time.Millisecond), context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	rtt := time.Since(start)
	// The play is established (the guard may have raised the budget
	// already, at the first media header).
	guard.setBudget(budgetMedia)
	nc := c.NetConn()
	// The codec configuration must arrive within what is left of the
	// connect timeout; closing the connection unblocks the read when ctx
	// ends first.
	deadline, _ := ctx.Deadline()
	nc.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Unix(1, 0)) })
	oc := &originConn{Conn: c}
	r := &gortmplib.Reader{Conn: oc}
	err = r.Initialize()
	stop()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: reading the codec configuration: %w", ErrConnectFailed, netErr(err, oc))
	}
	return &PullConn{url: rawURL, opts: opts, client: c, conn: oc, reader: r, rtt: rtt,
		bad: badMedia{log: opts.Logger.With("proto", "rtmp", "origin", RedactURL(rawURL))}}, nil
}

// dialOrigin opens a pull's connection to an origin with the chunk guard
// in front of it: after TLS for rtmps, done as gortmplib's own dial does it
// (tls.Client, with the host as the server name unless conf names one).
func dialOrigin(ctx context.Context, d *net.Dialer, network, addr string, useTLS bool, conf *tls.Config) (*chunkGuard, error) {
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if useTLS {
		if conf == nil {
			conf = &tls.Config{}
		} else {
			conf = conf.Clone()
		}
		if conf.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				nc.Close()
				return nil, err
			}
			conf.ServerName = host
		}
		nc = tls.Client(nc, conf)
	}
	return newOriginGuard(nc), nil
}

// SetOnMedia replaces PullOptions.OnMedia; call it before Run.
func (c *PullConn) SetOnMedia(f func()) { c.opts.OnMedia = f }

// RTT returns how long the connect and play commands took.
func (c *PullConn) RTT() time.Duration { return c.rtt }

// BytesIn returns the bytes received from the origin so far.
func (c *PullConn) BytesIn() uint64 { return c.client.BytesReceived() }

// Close closes the connection. Run returns once it is closed.
func (c *PullConn) Close() { c.client.Close() }

// Preroll reads from the origin, before Run, until its first video
// keyframe (or, for audio alone, its first frame) and keeps it and what
// follows for Run: a switch to this connection (a failback) then starts
// on a keyframe at once, while the current source keeps playing until
// then. It fails when no keyframe arrives within the keyframe timeout,
// when ctx ends, or when the connection fails.
func (c *PullConn) Preroll(ctx context.Context) error {
	if c.sink != nil {
		return errors.New("preroll after start")
	}
	c.sink = &pullSink{last: time.Now()}
	c.sink.accepted = c.sink.last
	if err := bindTracks(c.reader, c.sink); err != nil {
		return fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	nc := c.client.NetConn()
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for !c.sink.keyed {
		if err := c.read(nc); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return fmt.Errorf("%w: %w", ErrConnectFailed, err)
		}
	}
	nc.SetReadDeadline(time.Time{})
	return nil
}

// read reads one message within the stall and keyframe deadlines.
func (c *PullConn) read(nc net.Conn) error {
	k := c.sink
	stall, key := c.opts.StallTimeout, c.opts.KeyframeTimeout
	deadline := k.last.Add(stall)
	if d := k.accepted.Add(key); d.Before(deadline) {
		deadline = d
	}
	nc.SetReadDeadline(deadline)
	err := c.reader.Read()
	if err != nil && c.conn.err == nil {
		// A message read whole but not decodable (a truncated access
		// unit): dropped; the stall and keyframe watchdogs still apply.
		c.bad.drop(err)
		err = nil
	}
	if err == nil {
		return k.overdue(stall, key)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if err = k.overdue(stall, key); err == nil {
			err = ErrStalled
		}
	}
	return err
}

// Run feeds p from the connection until the origin closes it, sends an
// error status, sends no media for the stall timeout or nothing the hub
// takes for the keyframe timeout (an error wrapping ErrConnectFailed if
// the stream had taken nothing, ErrLost otherwise), or until ctx ends or
// p is told to stop (nil). The connection is closed on return.
func (c *PullConn) Run(ctx context.Context, p *hub.Producer) error {
	nc := c.client.NetConn()
	defer c.client.Close()
	stopped := make(chan struct{})
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		select {
		case <-ctx.Done():
		case <-p.Done():
		case <-stopped:
			return
		}
		nc.Close()
	}()
	defer func() { close(stopped); <-watcher }()

	if c.sink == nil {
		now := time.Now()
		c.sink = &pullSink{p: p, last: now, accepted: now, onMedia: c.opts.OnMedia}
		if err := bindTracks(c.reader, c.sink); err != nil {
			return fmt.Errorf("%w: %w", ErrConnectFailed, err)
		}
	} else if err := c.sink.attach(p, c.opts.OnMedia); err != nil {
		return fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	var err error
	for err == nil {
		err = c.read(nc)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-p.Done():
		return nil
	default:
	}
	err = netErr(err, c.conn)
	if c.sink.media {
		return fmt.Errorf("%w: %w", ErrLost, err)
	}
	return fmt.Errorf("%w: %w", ErrConnectFailed, err)
}

// Pull plays rawURL into p: DialPull, then Run.
func Pull(ctx context.Context, rawURL string, p *hub.Producer, opts PullOptions) error {
	c, err := DialPull(ctx, rawURL, opts)
	if err != nil {
		return err
	}
	return c.Run(ctx, p)
}

// Probe checks that an origin plays rawURL: it connects, plays and waits
// for the codec configuration within timeout, then closes. It returns the
// time the connect and play commands took.
func Probe(ctx context.Context, rawURL string, timeout time.Duration, dialer *net.Dialer) (time.Duration, error) {
	c, err := DialPull(ctx, rawURL, PullOptions{ConnectTimeout: timeout, Dialer: dialer})
	if err != nil {
		return 0, err
	}
	c.Close()
	return c.rtt, nil
}

// clientURL turns "rtmp://host/app/stream?query" into the form the
// gortmplib client splits as an RTMP client should: the app is the first
// path segment (tcUrl "rtmp://host/app"), the rest of the path and the
// query are the stream name given to play.
func clientURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "rtmp" && u.Scheme != "rtmps" {
		return nil, fmt.Errorf("unsupported scheme %q in %s", u.Scheme, redactURL(u))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no host in %s", redactURL(u))
	}
	app, stream, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if app == "" || stream == "" {
		return nil, fmt.Errorf("%s has no app/stream path", redactURL(u))
	}
	key := stream
	if u.RawQuery != "" {
		key += "?" + u.RawQuery
	}
	return &url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: "/" + app, Fragment: key}, nil
}

// redactURL is the URL without credentials, for messages and logs.
func redactURL(u *url.URL) string {
	n := *u
	n.User = nil
	n.RawQuery, n.Fragment, n.RawFragment = "", "", ""
	return n.String()
}

// RedactURL returns rawURL without user info and query, fit for logs. A
// URL without a host whose path starts with "//" is "(invalid URL)" too:
// printed, that path would read as a host and user info ("//@//@" gives
// "//@").
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Host == "" && strings.HasPrefix(u.Path, "//")) {
		return "(invalid URL)"
	}
	return redactURL(u)
}

// netErr replaces the errors of a connection the origin closed, or of a
// status it sent, by what they mean.
func netErr(err error, oc *originConn) error {
	if oc.status != "" {
		return fmt.Errorf("%w: %s", ErrOriginStatus, oc.status)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w: %w", ErrOriginClosed, err)
	}
	return err
}

// pullSink is the producer as the pull's track binding sees it. It notes
// when media arrives and when the stream last took a unit, for the stall
// and keyframe watchdogs. Before it is attached to a producer (a preroll)
// it keeps the tracks and the units from the first keyframe on.
type pullSink struct {
	p        *hub.Producer // nil while prerolling
	last     time.Time     // when the origin last sent media
	accepted time.Time     // when the stream last took a unit
	taken    uint64        // p.Accepted() after the last write
	media    bool          // the stream took a unit
	onMedia  func()

	video, audio *hub.Track
	keyed        bool // prerolling: a keyframe is staged
	staged       []stagedUnit
}

type stagedUnit struct {
	video    bool
	pts, dts time.Duration
	nalus    [][]byte
	payload  []byte
}

func (s *pullSink) SetTracks(video, audio *hub.Track) error {
	if s.p == nil {
		s.video, s.audio = video, audio
		return nil
	}
	return s.p.SetTracks(video, audio)
}

func (s *pullSink) WriteVideo(pts, dts time.Duration, nalus [][]byte) error {
	s.last = time.Now()
	if s.p == nil {
		if s.keyed || (s.video != nil && hub.IsKeyframe(s.video.Codec, nalus)) {
			s.keyed = true
			s.staged = append(s.staged, stagedUnit{video: true, pts: pts, dts: dts, nalus: nalus})
		}
		return nil
	}
	err := s.p.WriteVideo(pts, dts, nalus)
	s.took()
	return err
}

func (s *pullSink) WriteAudio(pts time.Duration, payload []byte) error {
	s.last = time.Now()
	if s.p == nil {
		if s.keyed || s.video == nil {
			s.keyed = true
			s.staged = append(s.staged, stagedUnit{pts: pts, dts: pts, payload: payload})
		}
		return nil
	}
	err := s.p.WriteAudio(pts, payload)
	s.took()
	return err
}

// took notes whether the stream took the unit just written.
func (s *pullSink) took() {
	n := s.p.Accepted()
	if n == s.taken {
		return
	}
	s.taken = n
	s.accepted = s.last
	if !s.media {
		s.media = true
		if s.onMedia != nil {
			s.onMedia()
		}
	}
}

// attach ends a preroll: the tracks and the staged units go to p, and
// what follows goes straight to it.
func (s *pullSink) attach(p *hub.Producer, onMedia func()) error {
	s.p, s.onMedia = p, onMedia
	s.taken = p.Accepted()
	if err := p.SetTracks(s.video, s.audio); err != nil {
		return err
	}
	staged := s.staged
	s.staged = nil
	for _, u := range staged {
		var err error
		if u.video {
			err = s.WriteVideo(u.pts, u.dts, u.nalus)
		} else {
			err = s.WriteAudio(u.pts, u.payload)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// overdue returns ErrStalled when no media came for stall, and
// ErrNoKeyframe when the stream took nothing for keyTimeout.
func (s *pullSink) overdue(stall, keyTimeout time.Duration) error {
	if time.Since(s.last) >= stall {
		return ErrStalled
	}
	if time.Since(s.accepted) >= keyTimeout {
		return ErrNoKeyframe
	}
	return nil
}

// fastStartAfter is how much media (by timestamp) the codec detection
// waits for when the origin did not announce its tracks in onMetaData and
// has not sent both a video and an audio configuration.
const fastStartAfter = time.Second

// originConn is the connection as the gortmplib reader sees it: an origin
// pull's client connection, or a publisher's server connection. It ends
// the reader's track detection as soon as the announced tracks are
// configured (the reader otherwise waits for two seconds of media), it
// turns an error or end-of-stream status from the origin into an error,
// and it keeps the error of its last read (nil: a reader error is a
// message that arrived whole but did not decode, see badMedia).
type originConn struct {
	gortmplib.Conn

	detected bool
	pending  message.Message
	status   string // the origin's error status, if it sent one
	err      error  // what the last Read returned

	haveMeta           bool
	wantVideo          bool
	wantAudio          bool
	gotVideo, gotAudio bool
	first, last        time.Duration
	haveFirst          bool
}

func (c *originConn) Read() (message.Message, error) {
	msg, err := c.read()
	c.err = err
	return msg, err
}

func (c *originConn) read() (message.Message, error) {
	if c.pending != nil {
		m := c.pending
		c.pending = nil
		return m, nil
	}
	msg, err := c.Conn.Read()
	if err != nil {
		return nil, err
	}
	if cmd, ok := msg.(*message.CommandAMF0); ok && cmd.Name == "onStatus" {
		if s := failureStatus(cmd); s != "" {
			c.status = s
			return nil, fmt.Errorf("%w: %s", ErrOriginStatus, s)
		}
	}
	if !c.detected {
		c.observe(msg)
	}
	return msg, nil
}

// observe follows the messages read during track detection and queues a
// message that ends it once the tracks are known: a video end-of-sequence
// (or an AAC configuration, for audio only) dated two seconds after the
// first media, which the reader's data callbacks ignore.
func (c *originConn) observe(msg message.Message) {
	media := true
	var dts time.Duration
	switch m := msg.(type) {
	case *message.DataAMF0:
		media = false
		c.metadata(m)
	case *message.Video:
		dts = m.DTS
		if m.Type == message.VideoTypeConfig {
			c.gotVideo = true
		}
	case *message.VideoExSequenceStart:
		dts = c.last
		c.gotVideo = true
	case *message.VideoExCodedFrames:
		dts = m.DTS
	case *message.VideoExFramesX:
		dts = m.DTS
	case *message.Audio:
		dts = m.DTS
		if m.Codec != message.CodecMPEG4Audio || m.AACType == message.AudioAACTypeConfig {
			c.gotAudio = true
		}
	case *message.AudioExSequenceStart:
		dts = c.last
		c.gotAudio = true
	case *message.AudioExCodedFrames:
		dts = m.DTS
		c.gotAudio = true
	default:
		media = false
	}
	if !media {
		return
	}
	if !c.haveFirst {
		c.haveFirst, c.first = true, dts
	}
	c.last = dts
	var done bool
	if c.haveMeta && (c.wantVideo || c.wantAudio) {
		done = c.gotVideo == c.wantVideo && c.gotAudio == c.wantAudio
	} else {
		done = c.gotVideo && c.gotAudio ||
			(c.gotVideo || c.gotAudio) && c.last-c.first >= fastStartAfter
	}
	if !done {
		return
	}
	c.detected = true
	at := c.last + 2*time.Second + time.Millisecond
	if c.gotVideo {
		c.pending = &message.Video{Codec: message.CodecH264, Type: message.VideoTypeEOS, DTS: at}
	} else {
		c.pending = &message.Audio{Codec: message.CodecMPEG4Audio, AACType: message.AudioAACTypeConfig, DTS: at}
	}
}

// metadata reads which tracks onMetaData announces.
func (c *originConn) metadata(m *message.DataAMF0) {
	p := m.Payload
	if len(p) > 0 && p[0] == "@setDataFrame" {
		p = p[1:]
	}
	if len(p) < 2 || p[0] != "onMetaData" {
		return
	}
	var obj amf0.Object
	switch o := p[1].(type) {
	case amf0.Object:
		obj = o
	case amf0.ECMAArray:
		obj = amf0.Object(o)
	default:
		return
	}
	present := func(key string) bool {
		v, ok := obj.Get(key)
		if !ok {
			return false
		}
		switch v := v.(type) {
		case float64:
			return v != 0
		case string:
			return v != ""
		case bool:
			return v
		}
		return v != nil
	}
	c.haveMeta = true
	c.wantVideo = present("videocodecid")
	c.wantAudio = present("audiocodecid")
}

// failureStatus returns the code of an onStatus that ends a play, or "".
func failureStatus(cmd *message.CommandAMF0) string {
	for _, a := range cmd.Arguments {
		var obj amf0.Object
		switch o := a.(type) {
		case amf0.Object:
			obj = o
		case amf0.ECMAArray:
			obj = amf0.Object(o)
		default:
			continue
		}
		level, _ := obj.GetString("level")
		code, _ := obj.GetString("code")
		switch {
		case level == "error":
			if code == "" {
				code = "error"
			}
			return code
		case code == "NetStream.Play.Stop", code == "NetStream.Play.UnpublishNotify",
			code == "NetStream.Play.StreamNotFound", code == "NetStream.Play.Failed":
			return code
		}
	}
	return ""
}
