package rtsp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

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

// Transports of PullOptions.Transport.
const (
	PullTransportTCP  = "tcp"  // RTP interleaved in the RTSP connection (the default)
	PullTransportUDP  = "udp"  // RTP and RTCP on UDP port pairs
	PullTransportAuto = "auto" // UDP, then TCP if no packet arrives within 3 s
)

// PullOptions configure an origin pull.
type PullOptions struct {
	// StallTimeout ends the pull when no media arrives for this long
	// (default 2 s).
	StallTimeout time.Duration
	// ConnectTimeout bounds the TCP connect, OPTIONS, DESCRIBE, SETUP and
	// PLAY and, when the SDP does not carry the H.264/H.265 parameter
	// sets, the wait for them in-band (default 5 s).
	ConnectTimeout time.Duration
	// Dialer opens the TCP connection; nil means a net.Dialer with TCP
	// keepalive. Its LocalAddr (IP) and Control also apply to the UDP
	// sockets of the UDP transport.
	Dialer *net.Dialer
	// KeyframeTimeout ends the pull when the origin sends media but none
	// that the hub takes (no keyframe to start from) for this long
	// (default 10 s, never less than StallTimeout).
	KeyframeTimeout time.Duration
	// OnMedia, if set, is called once, from Run's goroutine, when the
	// stream has taken the first media unit (the first keyframe).
	OnMedia func()
	// Transport is "" or "tcp" (the default: one TCP connection passes
	// NAT and firewalls and loses nothing, which suits an edge pulling
	// across networks), "udp", or "auto" (UDP, falling back to TCP).
	Transport string
	// Logger receives the few lines a pull logs (skipped tracks, packet
	// loss summaries); nil means slog.Default().
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

// pullQueueSize bounds the decoded units waiting for Run. When it is full
// the RTP readers wait (TCP: backpressure to the origin).
const pullQueueSize = 256

// pullLossLogEvery is the shortest interval between two packet loss
// summaries.
const pullLossLogEvery = 10 * time.Second

// PullConn is a playing RTSP session whose codec configuration is known:
// the result of DialPull, consumed by Run.
type PullConn struct {
	opts   PullOptions
	log    *slog.Logger
	client *gortsplib.Client
	udp    atomic.Bool // media arrives over UDP (until a switch to TCP)
	rtt    time.Duration

	video, audio   *pullTrack
	vtrack, atrack *hub.Track
	pending        []pullUnit // read by DialPull while waiting for parameter sets

	units     chan pullUnit
	closing   chan struct{} // closed first by Close: releases blocked RTP readers
	closeOnce sync.Once
	dead      chan struct{} // closed when the client has ended
	deadErr   error         // the client's error, set before dead closes

	connBytes  uint64        // RTSP connection bytes (gortsplib counter)
	udpBytes   atomic.Uint64 // RTP bytes received over UDP
	lost       atomic.Uint64 // RTP packets lost
	rtpErrors  atomic.Uint64 // RTP/RTCP packets gortsplib could not decode
	transports atomic.Uint64 // switches from UDP to TCP
}

// DialPull connects to an RTSP origin and plays rawURL
// ("rtsp://[user:pass@]host[:port]/path[?query]", or rtsps): TCP connect,
// OPTIONS, DESCRIBE, SETUP of the first H.264/H.265 and the first
// AAC/Opus media, PLAY. Credentials in the URL answer the origin's Basic
// or Digest challenge. It returns once the codec configuration is known:
// at once when the SDP carries it, otherwise when the video parameter
// sets arrive in-band. Other tracks are skipped with one log line; an
// origin without any track the hub relays is an error wrapping
// hub.ErrNoTracks. Errors wrap ErrConnectFailed. The caller must Run or
// Close the connection: until then the origin's media is queued (up to
// pullQueueSize units, then the origin is made to wait).
func DialPull(ctx context.Context, rawURL string, opts PullOptions) (*PullConn, error) {
	opts.defaults()
	u, err := pullParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	c := &PullConn{
		opts:    opts,
		log:     opts.Logger.With("origin", RedactURL(rawURL)),
		units:   make(chan pullUnit, pullQueueSize),
		closing: make(chan struct{}),
		dead:    make(chan struct{}),
	}
	cl := &gortsplib.Client{
		Scheme: u.Scheme,
		Host:   u.Host,
		// The watchdog in Run detects stalls; gortsplib's own read
		// timeout must not fire before it, nor end a request before the
		// connect timeout does.
		ReadTimeout:       max(opts.ConnectTimeout, 2*opts.StallTimeout),
		WriteTimeout:      opts.ConnectTimeout,
		DialContext:       opts.Dialer.DialContext,
		ListenPacket:      pullListenPacket(opts.Dialer),
		UserAgent:         "liveedge",
		BytesReceived:     &c.connBytes, //nolint:staticcheck // Stats() is not safe after Close
		OnPacketsLost:     func(n uint64) { c.lost.Add(n) },
		OnDecodeError:     func(error) { c.rtpErrors.Add(1) },
		OnTransportSwitch: func(error) { c.transports.Add(1); c.udp.Store(false) },
	}
	switch opts.Transport {
	case "", PullTransportTCP:
		v := gortsplib.TransportTCP
		cl.Transport = &v
	case PullTransportUDP:
		v := gortsplib.TransportUDP
		cl.Transport = &v
		c.udp.Store(true)
	case PullTransportAuto:
		c.udp.Store(true)
	default:
		return nil, fmt.Errorf("%w: unknown transport %q (want tcp, udp or auto)", ErrConnectFailed, opts.Transport)
	}
	c.client = cl

	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	start := time.Now()
	if err := cl.Start2(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	go func() {
		// Owned by the PullConn: Close waits for it.
		c.deadErr = cl.Wait()
		close(c.dead)
	}()
	// Ending ctx closes the client, which ends any request in progress.
	stop := pullAfterFunc(ctx, c.Close)
	fail := func(err error) (*PullConn, error) {
		stop()
		c.Close()
		// A request cut short by the end of ctx fails with whatever
		// closing the client caused: say why it was closed.
		if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within the connect timeout (%v): %w (%v)",
					time.Since(start).Round(time.Millisecond), context.DeadlineExceeded, err)
			} else {
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			}
		}
		return nil, fmt.Errorf("%w: %w", ErrConnectFailed, pullCause(err))
	}

	desc, _, err := cl.Describe(u)
	if err != nil {
		return fail(fmt.Errorf("DESCRIBE: %w", err))
	}
	c.rtt = time.Since(start)

	var skipped []string
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			continue
		}
		for _, f := range m.Formats {
			t, why := pullNewTrack(m, f)
			switch {
			case t == nil:
				skipped = append(skipped, fmt.Sprintf("%s (%s)", pullDescribeFormat(m, f), why))
			case t.video && c.video == nil && (c.audio == nil || c.audio.media != m):
				c.video = t
			case !t.video && c.audio == nil && (c.video == nil || c.video.media != m):
				c.audio = t
			default:
				skipped = append(skipped, fmt.Sprintf("%s (one %s track is relayed)", pullDescribeFormat(m, f), m.Type))
			}
		}
	}
	if c.video == nil && c.audio == nil {
		return fail(fmt.Errorf("%w: %s", hub.ErrNoTracks, strings.Join(skipped, ", ")))
	}
	if len(skipped) > 0 {
		c.log.Info("skipping origin tracks the hub does not relay", "skipped", strings.Join(skipped, ", "))
	}

	for _, t := range []*pullTrack{c.video, c.audio} {
		if t == nil {
			continue
		}
		if _, err := cl.Setup(desc.BaseURL, t.media, 0, 0); err != nil {
			return fail(fmt.Errorf("SETUP %s: %w", pullDescribeFormat(t.media, t.format), err))
		}
		c.listen(t)
	}
	if _, err := cl.Play(nil); err != nil {
		return fail(fmt.Errorf("PLAY: %w", err))
	}

	if c.video != nil {
		c.vtrack = c.video.track
	}
	if c.audio != nil {
		c.atrack = c.audio.track
	}
	if c.video != nil && c.vtrack == nil {
		if err := c.waitParams(ctx); err != nil {
			return fail(err)
		}
	}
	if !stop() {
		// ctx ended just now: the client was closed.
		return fail(ctx.Err())
	}
	return c, nil
}

// listen decodes the RTP packets of t into c.units. It runs on gortsplib's
// reader goroutines: the connection's with TCP, the media's with UDP.
func (c *PullConn) listen(t *pullTrack) {
	emit := func(u pullUnit) {
		select {
		case c.units <- u:
		case <-c.closing:
		}
	}
	cl := c.client
	cl.OnPacketRTP(t.media, t.format, func(pkt *rtp.Packet) {
		if c.udp.Load() {
			c.udpBytes.Add(uint64(pkt.MarshalSize()))
		}
		pts, ok := cl.PacketPTS2(t.media, pkt)
		if !ok {
			return // the first packet of the track does not start a unit yet
		}
		t.decode(pkt, pts, emit)
	})
}

// waitParams reads units until the video parameter sets have arrived
// in-band, and keeps the unit that completed them for Run.
func (c *PullConn) waitParams(ctx context.Context) error {
	var ps pullParamSets
	for {
		select {
		case u := <-c.units:
			if !u.video {
				continue // the hub drops audio before the first video keyframe anyway
			}
			if tr := ps.add(c.video.codec, u.nalus); tr != nil {
				c.vtrack = tr
				c.pending = append(c.pending, u)
				return nil
			}
		case <-c.dead:
			return fmt.Errorf("waiting for the %s parameter sets: %w", c.video.codec, c.deadErr)
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ctx.Err()
			}
			return fmt.Errorf("%s parameter sets neither in the SDP nor in-band within the connect timeout (%v): %w",
				c.video.codec, c.opts.ConnectTimeout, context.DeadlineExceeded)
		}
	}
}

// SetOnMedia replaces PullOptions.OnMedia; call it before Run.
func (c *PullConn) SetOnMedia(f func()) { c.opts.OnMedia = f }

// RTT returns the time from the start of the connect to the answer to
// DESCRIBE: the TCP connect and the OPTIONS and DESCRIBE round trips (one
// more when the origin asks for credentials).
func (c *PullConn) RTT() time.Duration { return c.rtt }

// BytesIn returns the bytes received from the origin so far: the RTSP
// connection (with TCP, the media too) and the RTP packets over UDP.
func (c *PullConn) BytesIn() uint64 {
	return atomic.LoadUint64(&c.connBytes) + c.udpBytes.Load()
}

// Tracks returns the codec configuration the origin announced (or sent
// in-band before DialPull returned); either may be nil.
func (c *PullConn) Tracks() (video, audio *hub.Track) { return c.vtrack, c.atrack }

// Close tears the session down and closes the connection. It may be
// called any number of times, from any goroutine; Run returns once it is
// closed.
func (c *PullConn) Close() {
	c.closeOnce.Do(func() { close(c.closing) })
	c.client.Close()
	<-c.dead
}

// Run feeds p from the session until the origin closes it, or sends no
// media for the stall timeout (an error wrapping ErrConnectFailed if no
// media had arrived, ErrLost otherwise), or until ctx ends or p is told
// to stop (nil). The session is closed on return.
func (c *PullConn) Run(ctx context.Context, p *hub.Producer) error {
	defer c.Close()
	defer c.logLosses(true)
	if err := p.SetTracks(c.vtrack, c.atrack); err != nil {
		if errors.Is(err, hub.ErrReplaced) {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	media := false
	taken := p.Accepted()
	accepted := time.Now()
	write := func(u pullUnit) error {
		var err error
		if u.video {
			err = p.WriteVideo(u.pts, u.dts, u.nalus)
		} else {
			err = p.WriteAudio(u.pts, u.payload)
		}
		if err != nil {
			return err
		}
		if n := p.Accepted(); n != taken {
			taken, accepted = n, time.Now()
			if !media {
				media = true
				if c.opts.OnMedia != nil {
					c.opts.OnMedia()
				}
			}
		}
		return nil
	}
	var err error
	for _, u := range c.pending {
		if err = write(u); err != nil {
			break
		}
	}
	c.pending = nil

	stall, keyTimeout := c.opts.StallTimeout, c.opts.KeyframeTimeout
	tick := min(stall, keyTimeout) / 4
	timer := time.NewTicker(max(tick, 10*time.Millisecond))
	defer timer.Stop()
	losses := time.NewTicker(pullLossLogEvery)
	defer losses.Stop()
	last := time.Now()
	for err == nil {
		select {
		case u := <-c.units:
			last = time.Now()
			err = write(u)
		case <-timer.C:
			switch {
			case time.Since(last) >= stall:
				err = ErrStalled
			case time.Since(accepted) >= keyTimeout:
				err = ErrNoKeyframe
			}
		case <-losses.C:
			c.logLosses(false)
		case <-c.dead:
			err = c.deadErr
			if err == nil {
				err = io.EOF
			}
		case <-ctx.Done():
			return nil
		case <-p.Done():
			return nil
		}
	}
	if errors.Is(err, hub.ErrReplaced) {
		return nil
	}
	err = pullCause(err)
	if media {
		return fmt.Errorf("%w: %w", ErrLost, err)
	}
	return fmt.Errorf("%w: %w", ErrConnectFailed, err)
}

// Preroll reads from the origin, before Run, until its first video
// keyframe (or, without video, its first frame) and keeps it and what
// follows for Run: a switch to this connection (a failback) then starts
// on a keyframe at once, while the current source keeps playing. It fails
// when no keyframe arrives within the keyframe timeout, when ctx ends or
// when the connection fails.
func (c *PullConn) Preroll(ctx context.Context) error {
	isKey := func(u pullUnit) bool {
		if c.vtrack == nil {
			return true
		}
		return u.video && hub.IsKeyframe(c.vtrack.Codec, u.nalus)
	}
	keep := func(in []pullUnit) []pullUnit {
		for i, u := range in {
			if isKey(u) {
				return in[i:]
			}
		}
		return in[:0]
	}
	c.pending = keep(c.pending)
	t := time.NewTimer(c.opts.KeyframeTimeout)
	defer t.Stop()
	for len(c.pending) == 0 {
		select {
		case u := <-c.units:
			c.pending = keep(append(c.pending, u))
		case <-t.C:
			return fmt.Errorf("%w: %w", ErrConnectFailed, ErrNoKeyframe)
		case <-c.dead:
			err := c.deadErr
			if err == nil {
				err = io.EOF
			}
			return fmt.Errorf("%w: %w", ErrConnectFailed, pullCause(err))
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrConnectFailed, ctx.Err())
		}
	}
	return nil
}

// logLosses logs what went missing since the last summary, if anything.
func (c *PullConn) logLosses(final bool) {
	lost, rtpErr, sw := c.lost.Swap(0), c.rtpErrors.Swap(0), c.transports.Swap(0)
	var dropped uint64
	for _, t := range []*pullTrack{c.video, c.audio} {
		if t != nil {
			dropped += t.dropped.Swap(0)
		}
	}
	if lost == 0 && rtpErr == 0 && dropped == 0 && sw == 0 {
		return
	}
	c.log.Warn("origin packets lost or undecodable", "rtp_lost", lost, "rtp_errors", rtpErr,
		"units_dropped", dropped, "switched_to_tcp", sw > 0, "final", final)
}

// Pull plays rawURL into p: DialPull, then Run.
func Pull(ctx context.Context, rawURL string, p *hub.Producer, opts PullOptions) error {
	c, err := DialPull(ctx, rawURL, opts)
	if err != nil {
		return err
	}
	return c.Run(ctx, p)
}

// Probe checks that an origin serves rawURL: TCP connect, OPTIONS and
// DESCRIBE within timeout, and an SDP with a track the hub relays. It does
// not SETUP or PLAY, so it costs the origin no media. It returns the time
// to the DESCRIBE answer. Errors wrap ErrConnectFailed.
func Probe(ctx context.Context, rawURL string, timeout time.Duration, dialer *net.Dialer) (time.Duration, error) {
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	u, err := pullParseURL(rawURL)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		DialContext:  dialer.DialContext,
		UserAgent:    "liveedge",
	}
	start := time.Now()
	if err := cl.Start2(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrConnectFailed, err)
	}
	stop := pullAfterFunc(ctx, cl.Close)
	desc, _, err := cl.Describe(u)
	rtt := time.Since(start)
	stop()
	cl.Close()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %v: %w", timeout, ctx.Err())
		}
		return 0, fmt.Errorf("%w: DESCRIBE: %w", ErrConnectFailed, pullCause(err))
	}
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			if t, _ := pullNewTrack(m, f); t != nil {
				return rtt, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: %w", ErrConnectFailed, hub.ErrNoTracks)
}

// pullAfterFunc calls f on its own goroutine when ctx ends. The returned
// stop function prevents that, or waits until f has returned; it reports
// whether it prevented it.
func pullAfterFunc(ctx context.Context, f func()) (stop func() bool) {
	done := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		defer close(done)
		f()
	})
	return func() bool {
		if cancel() {
			return true
		}
		<-done
		return false
	}
}

// pullParseURL checks an origin URL and parses it the way gortsplib wants.
func pullParseURL(rawURL string) (*base.URL, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %s: %w", RedactURL(rawURL), pullStripURL(err))
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, fmt.Errorf("unsupported scheme %q in %s", u.Scheme, RedactURL(rawURL))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no host in %s", RedactURL(rawURL))
	}
	return u, nil
}

// pullStripURL keeps the reason of a url.Error, which quotes the URL
// (and so its credentials).
func pullStripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// pullCause replaces gortsplib's errors by what they mean to the source
// manager.
func pullCause(err error) error {
	var status liberrors.ErrClientBadStatusCode
	switch {
	case errors.As(err, &status):
		return fmt.Errorf("%w: %d %s (%w)", ErrOriginStatus, status.Code, status.Message, err)
	case errors.As(err, new(liberrors.ErrClientTCPTimeout)), errors.As(err, new(liberrors.ErrClientUDPTimeout)):
		return fmt.Errorf("%w (%w)", ErrStalled, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("%w: %w", ErrOriginClosed, err)
	}
	return err
}

// pullListenPacket opens the UDP sockets of the UDP transport with the
// dialer's local IP and socket options.
func pullListenPacket(d *net.Dialer) func(network, address string) (net.PacketConn, error) {
	return func(network, address string) (net.PacketConn, error) {
		if a, ok := d.LocalAddr.(*net.TCPAddr); ok && a != nil && a.IP != nil {
			if host, port, err := net.SplitHostPort(address); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
				address = net.JoinHostPort(a.IP.String(), port)
			}
		}
		lc := net.ListenConfig{Control: d.Control}
		return lc.ListenPacket(context.Background(), network, address)
	}
}

// pullSecretParams are query parameters RedactURL hides.
var pullSecretParams = map[string]bool{
	"token": true, "password": true, "passwd": true, "pass": true, "pwd": true,
	"secret": true, "key": true, "sign": true, "signature": true, "auth": true,
}

// RedactURL returns rawURL fit for logs: the password of the user info
// and the values of secret query parameters (token, password, secret,
// key, sign, signature, auth) replaced by "xxxxx". The user name, the
// path and the other parameters (expires…) stay, to tell origins apart.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(invalid URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, ok := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil {
				name = k
			}
			if ok && pullSecretParams[strings.ToLower(name)] {
				parts[i] = k + "=xxxxx"
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
