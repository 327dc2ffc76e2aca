package rtsp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

// pullLeakCheck fails the test if it leaves goroutines behind. It runs
// after every cleanup the test registers later.
func pullLeakCheck(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// pullRequireTools skips the test when a tool is missing, unless
// LIVEEDGE_E2E=require makes that a failure.
func pullRequireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("LIVEEDGE_E2E") == "require" {
				t.Fatalf("%s not found and LIVEEDGE_E2E=require: %v", tool, err)
			}
			t.Skipf("%s not found: %v", tool, err)
		}
	}
}

// pullRequireEncoders skips the test when ffmpeg lacks an encoder, unless
// LIVEEDGE_E2E=require makes that a failure.
func pullRequireEncoders(t *testing.T, encoders ...string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output()
	if err != nil {
		t.Fatalf("ffmpeg -encoders: %v", err)
	}
	for _, e := range encoders {
		if !strings.Contains(string(out), " "+e+" ") {
			if os.Getenv("LIVEEDGE_E2E") == "require" {
				t.Fatalf("ffmpeg has no %s encoder and LIVEEDGE_E2E=require", e)
			}
			t.Skipf("ffmpeg has no %s encoder", e)
		}
	}
}

// pullServer is an RTSP origin for the tests: a gortsplib server with
// streams fed by the test (pullServer.stream) or published to it with
// ANNOUNCE/RECORD (ffmpeg), played to any reader.
type pullServer struct {
	t          *testing.T
	srv        *gortsplib.Server
	addr       string
	user, pass string       // when set, readers must authenticate
	hold       atomic.Bool  // drop what publishers send (an origin that stalls)
	announced  chan string  // paths publishers announced
	readers    atomic.Int32 // PLAYs served

	mu         sync.Mutex
	streams    map[string]*gortsplib.ServerStream
	publishers map[*gortsplib.ServerSession]string
}

func newPullServer(t *testing.T) *pullServer { return newPullServerUDP(t, false) }

// newPullServerUDP starts the test origin; with udp it also serves RTP
// over UDP, on a free even port pair it looks for.
func newPullServerUDP(t *testing.T, udp bool) *pullServer {
	t.Helper()
	s := &pullServer{
		t:          t,
		announced:  make(chan string, 4),
		streams:    map[string]*gortsplib.ServerStream{},
		publishers: map[*gortsplib.ServerSession]string{},
	}
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		var addr string
		s.srv = &gortsplib.Server{
			Handler:     s,
			RTSPAddress: "127.0.0.1:0",
			AuthMethods: []auth.VerifyMethod{auth.VerifyMethodBasic, auth.VerifyMethodDigestMD5},
			Listen: func(network, address string) (net.Listener, error) {
				ln, err := net.Listen(network, address)
				if err == nil {
					addr = ln.Addr().String()
				}
				return ln, err
			},
		}
		if udp {
			port := 20000 + 2*rand.IntN(20000)
			s.srv.UDPRTPAddress = fmt.Sprintf("127.0.0.1:%d", port)
			s.srv.UDPRTCPAddress = fmt.Sprintf("127.0.0.1:%d", port+1)
		}
		if err = s.srv.Start(); err == nil {
			s.addr = addr
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.srv.Close()
		s.mu.Lock()
		streams := s.streams
		s.streams = map[string]*gortsplib.ServerStream{}
		s.mu.Unlock()
		for _, st := range streams {
			st.Close()
		}
	})
	return s
}

func (s *pullServer) url(path string) string { return "rtsp://" + s.addr + "/" + path }

// stream creates a stream the test feeds.
func (s *pullServer) stream(path string, desc *description.Session) *gortsplib.ServerStream {
	s.t.Helper()
	st := &gortsplib.ServerStream{Server: s.srv, Desc: desc}
	if err := st.Initialize(); err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.streams[path] = st
	s.mu.Unlock()
	return st
}

// closeStream ends a stream: its readers are disconnected.
func (s *pullServer) closeStream(path string) {
	s.mu.Lock()
	st := s.streams[path]
	delete(s.streams, path)
	s.mu.Unlock()
	if st != nil {
		st.Close()
	}
}

func (s *pullServer) lookup(path string) *gortsplib.ServerStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[strings.Trim(path, "/")]
}

func (s *pullServer) authorized(conn *gortsplib.ServerConn, req *base.Request) bool {
	return s.user == "" || conn.VerifyCredentials(req, s.user, s.pass)
}

func (s *pullServer) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	st := s.lookup(ctx.Path)
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (s *pullServer) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	path := strings.Trim(ctx.Path, "/")
	st := &gortsplib.ServerStream{Server: s.srv, Desc: ctx.Description}
	if err := st.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, err
	}
	s.mu.Lock()
	s.streams[path] = st
	s.publishers[ctx.Session] = path
	s.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *pullServer) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	st := s.lookup(ctx.Path)
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (s *pullServer) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	s.readers.Add(1)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *pullServer) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	path := strings.Trim(ctx.Path, "/")
	st := s.lookup(path)
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		if !s.hold.Load() {
			st.WritePacketRTP(m, pkt) //nolint:errcheck
		}
	})
	select {
	case s.announced <- path:
	default:
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *pullServer) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	path, ok := s.publishers[ctx.Session]
	delete(s.publishers, ctx.Session)
	s.mu.Unlock()
	if ok {
		s.closeStream(path)
	}
}

// pullClipDesc describes the demo clip as an RTSP origin announces it;
// without sprop the H.264 parameter sets are only in-band.
func pullClipDesc(t *testing.T, clip *demo.Clip, sprop bool) *description.Session {
	t.Helper()
	h := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	if sprop {
		h.SPS, h.PPS = clip.Video.SPS, clip.Video.PPS
	}
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(clip.Audio.AudioConfig); err != nil {
		t.Fatal(err)
	}
	a := &format.MPEG4Audio{PayloadTyp: 97, Config: &asc, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
	return &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{h}},
		{Type: description.MediaTypeAudio, Formats: []format.Format{a}},
	}}
}

// pullFeedClip writes the demo clip to st as RTP, in real time and in a
// loop, until ctx ends. With inband, keyframes carry SPS and PPS.
func pullFeedClip(ctx context.Context, t *testing.T, st *gortsplib.ServerStream, clip *demo.Clip, inband bool) {
	desc := st.Desc
	vf := desc.Medias[0].Formats[0].(*format.H264)
	af := desc.Medias[1].Formats[0].(*format.MPEG4Audio)
	venc, err := vf.CreateEncoder()
	if err != nil {
		t.Error(err)
		return
	}
	aenc, err := af.CreateEncoder()
	if err != nil {
		t.Error(err)
		return
	}
	const vbase, abase = 123456, 654321
	rate := time.Duration(af.Config.SampleRate)
	start := time.Now()
	for l := 0; ; l++ {
		off := time.Duration(l) * clip.Duration
		for _, f := range clip.Frames {
			wait := time.NewTimer(time.Until(start.Add(off + f.DTS)))
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-wait.C:
			}
			var pkts []*rtp.Packet
			medi := desc.Medias[0]
			if f.Video {
				au := f.NALUs
				if inband && pullDemoKey(au) {
					au = append([][]byte{clip.Video.SPS, clip.Video.PPS}, au...)
				}
				pkts, err = venc.Encode(au)
				for _, p := range pkts {
					p.Timestamp = vbase + uint32((off+f.PTS)*90000/time.Second)
				}
			} else {
				medi = desc.Medias[1]
				pkts, err = aenc.Encode([][]byte{f.Payload})
				for _, p := range pkts {
					p.Timestamp = abase + uint32((off+f.DTS)*rate/time.Second)
				}
			}
			if err != nil {
				t.Error(err)
				return
			}
			for _, p := range pkts {
				st.WritePacketRTPWithNTP(medi, p, time.Now()) //nolint:errcheck
			}
		}
	}
}

func pullDemoKey(au [][]byte) bool { return hub.IsKeyframe(hub.CodecH264, au) }

// pullEdge is a pull running into a fresh edge hub.
type pullEdge struct {
	hub   *hub.Hub
	res   chan error
	media chan struct{}
	start time.Time
}

// pullStart runs Pull from url into the stream edge/s of a new hub.
func pullStart(t *testing.T, url string, opts PullOptions) *pullEdge {
	t.Helper()
	h := hub.New(hub.Params{StartTimeout: 5 * time.Second})
	p, err := h.Publish("edge/s", hub.Session{Protocol: "pull", Remote: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e := &pullEdge{hub: h, res: make(chan error, 1), media: make(chan struct{}), start: time.Now()}
	opts.OnMedia = func() { close(e.media) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.res <- Pull(ctx, url, p, opts)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		p.Close()
		h.Close()
	})
	return e
}

// waitMedia waits for the first unit and returns how long it took.
func (e *pullEdge) waitMedia(t *testing.T) time.Duration {
	t.Helper()
	select {
	case <-e.media:
		return time.Since(e.start)
	case err := <-e.res:
		t.Fatalf("pull ended before media: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no media within 10 s")
	}
	return 0
}

// waitEnd waits for the pull to end within d and returns its error.
func (e *pullEdge) waitEnd(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-e.res:
		return err
	case <-time.After(d):
		t.Fatalf("pull did not end within %v", d)
	}
	return nil
}

// pullWant is what pullReadUnits expects of the tracks.
type pullWant struct {
	video, audio  hub.Codec
	width, height int
	reordered     bool // B-frames: some video units have PTS > DTS
}

// pullReadUnits reads n units from edge/s and checks the tracks, that the
// first video unit is a keyframe and that DTS never goes back.
func pullReadUnits(t *testing.T, h *hub.Hub, n int, want pullWant) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := h.Subscribe(ctx, "edge/s", hub.Session{Protocol: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	tr := sub.Tracks()
	if tr == nil || tr.Video == nil || tr.Video.Codec != want.video || tr.Video.Width != want.width || tr.Video.Height != want.height {
		t.Fatalf("video track %+v, want %v %dx%d", tr.Video, want.video, want.width, want.height)
	}
	if tr.Audio == nil || tr.Audio.Codec != want.audio || tr.Audio.SampleRate == 0 {
		t.Fatalf("audio track %+v, want %v", tr.Audio, want.audio)
	}
	got, video, audio, reordered := 0, 0, 0, 0
	var last [2]time.Duration
	buf := make([]*hub.Unit, 0, 64)
	for got < n {
		units, err := sub.Next(ctx, buf)
		if err != nil {
			t.Fatalf("after %d units: %v", got, err)
		}
		for _, u := range units {
			k := 0
			if u.Video {
				k = 1
				if video == 0 && !u.Key {
					t.Fatal("first video unit is not a keyframe")
				}
				if u.PTS < u.DTS {
					t.Fatalf("PTS %v before DTS %v", u.PTS, u.DTS)
				}
				if u.PTS > u.DTS {
					reordered++
				}
				video++
			} else {
				audio++
			}
			if u.DTS < last[k] {
				t.Fatalf("DTS went back: %v after %v (video %v)", u.DTS, last[k], u.Video)
			}
			last[k] = u.DTS
			got++
		}
	}
	if video == 0 || audio == 0 {
		t.Fatalf("%d video and %d audio units, want both", video, audio)
	}
	if want.reordered && reordered == 0 {
		t.Fatalf("no video unit with PTS after DTS among %d: B-frames lost their DTS", video)
	}
}

// pullClipServer serves the demo clip at path and returns a function that
// stops the feed.
func pullClipServer(t *testing.T, s *pullServer, path string, sprop bool) (stop func()) {
	t.Helper()
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	desc := pullClipDesc(t, clip, sprop)
	st := s.stream(path, desc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pullFeedClip(ctx, t, st, clip, !sprop)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func TestPullFromGortsplibOrigin(t *testing.T) {
	pullLeakCheck(t)
	for _, tc := range []struct {
		name      string
		sprop     bool
		transport string
	}{
		{"sdp params tcp", true, ""},
		{"in-band params tcp", false, PullTransportTCP},
		{"sdp params udp", true, PullTransportUDP},
		{"in-band params auto", false, PullTransportAuto},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newPullServerUDP(t, tc.transport == PullTransportUDP || tc.transport == PullTransportAuto)
			stop := pullClipServer(t, s, "live/cam", tc.sprop)
			e := pullStart(t, s.url("live/cam"), PullOptions{StallTimeout: 500 * time.Millisecond, Transport: tc.transport})
			t.Logf("first media after %v", e.waitMedia(t))
			pullReadUnits(t, e.hub, 60, pullWant{hub.CodecH264, hub.CodecAAC, 640, 360, false})

			// The origin stops sending: the pull stalls.
			stop()
			stopped := time.Now()
			err := e.waitEnd(t, 3*time.Second)
			if !errors.Is(err, ErrLost) || !errors.Is(err, ErrStalled) {
				t.Fatalf("err = %v, want lost + stalled", err)
			}
			if d := time.Since(stopped); d < 400*time.Millisecond || d > 1500*time.Millisecond {
				t.Fatalf("stall detected after %v, want about 500 ms", d)
			}
		})
	}
}

func TestPullDialTracks(t *testing.T) {
	pullLeakCheck(t)
	s := newPullServer(t)
	pullClipServer(t, s, "live/cam", false)
	start := time.Now()
	c, err := DialPull(context.Background(), s.url("live/cam"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("dial with in-band parameter sets took %v (rtt %v)", time.Since(start), c.RTT())
	v, a := c.Tracks()
	if v == nil || v.Codec != hub.CodecH264 || v.Width != 640 || v.Height != 360 {
		t.Fatalf("video %+v", v)
	}
	if a == nil || a.Codec != hub.CodecAAC {
		t.Fatalf("audio %+v", a)
	}
	if c.RTT() <= 0 || c.BytesIn() == 0 {
		t.Fatalf("rtt %v bytes %d", c.RTT(), c.BytesIn())
	}
	c.Close()
	c.Close() // idempotent
}

// pullFFmpeg publishes to the test origin with ffmpeg (ANNOUNCE, RECORD)
// and returns once the origin has the stream. stop kills ffmpeg and waits
// for it to exit.
func pullFFmpeg(t *testing.T, s *pullServer, path string, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args = append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)
	args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", s.url(path))
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-exited }) }
	t.Cleanup(stop)
	select {
	case <-s.announced:
	case <-exited:
		t.Fatalf("ffmpeg exited: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("ffmpeg did not publish")
	}
	return stop
}

func TestPullFFmpegPublisher(t *testing.T) {
	pullRequireTools(t, "ffmpeg")
	pullLeakCheck(t)
	clipFile := t.TempDir() + "/clip.flv"
	if err := os.WriteFile(clipFile, demo.FLV(), 0o644); err != nil {
		t.Fatal(err)
	}
	lavfi := []string{"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
	cases := []struct {
		name          string
		encoders      []string
		args          []string
		video, audio  hub.Codec
		width, height int
		reordered     bool
	}{
		// The demo clip as it is: H.264 and AAC (MPEG4-GENERIC).
		{"clip h264 aac", nil, []string{"-re", "-stream_loop", "-1", "-i", clipFile, "-c", "copy"},
			hub.CodecH264, hub.CodecAAC, 640, 360, false},
		// B-frames (the DTS comes from the extractor) and LATM audio.
		{"h264 b-frames aac latm", []string{"libx264", "aac"}, slices.Concat(lavfi, []string{"-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25",
			"-pix_fmt", "yuv420p", "-c:a", "aac", "-rtpflags", "latm"}), hub.CodecH264, hub.CodecAAC, 320, 240, true},
		// H.265 with B-frames and Opus.
		{"h265 opus", []string{"libx265", "libopus"}, slices.Concat(lavfi, []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "bframes=2:keyint=25:log-level=error",
			"-pix_fmt", "yuv420p", "-c:a", "libopus"}), hub.CodecH265, hub.CodecOpus, 320, 240, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pullRequireEncoders(t, tc.encoders...)
			s := newPullServer(t)
			stop := pullFFmpeg(t, s, "live/ff", tc.args...)

			rtt, err := Probe(context.Background(), s.url("live/ff"), 2*time.Second, nil)
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			t.Logf("probe rtt %v", rtt)

			e := pullStart(t, s.url("live/ff"), PullOptions{StallTimeout: 700 * time.Millisecond})
			t.Logf("first media after %v", e.waitMedia(t))
			pullReadUnits(t, e.hub, 100, pullWant{tc.video, tc.audio, tc.width, tc.height, tc.reordered})
			if n := s.readers.Load(); n != 1 {
				t.Fatalf("origin served %d PLAYs, want 1", n)
			}

			// The origin stops relaying: the pull stalls.
			s.hold.Store(true)
			err = e.waitEnd(t, 3*time.Second)
			if !errors.Is(err, ErrLost) || !errors.Is(err, ErrStalled) {
				t.Fatalf("err = %v, want lost + stalled", err)
			}
			s.hold.Store(false)

			// The publisher goes away: the origin ends the stream.
			e = pullStart(t, s.url("live/ff"), PullOptions{})
			e.waitMedia(t)
			stop()
			err = e.waitEnd(t, 5*time.Second)
			if !errors.Is(err, ErrLost) || !errors.Is(err, ErrOriginClosed) {
				t.Fatalf("err = %v, want lost + origin closed", err)
			}
			t.Logf("publisher gone: %v", err)
		})
	}
}

func TestPullOriginCloses(t *testing.T) {
	pullLeakCheck(t)
	s := newPullServer(t)
	pullClipServer(t, s, "live/cam", true)
	e := pullStart(t, s.url("live/cam"), PullOptions{StallTimeout: 5 * time.Second})
	e.waitMedia(t)
	s.srv.Close()
	start := time.Now()
	err := e.waitEnd(t, 3*time.Second)
	if !errors.Is(err, ErrLost) || !errors.Is(err, ErrOriginClosed) {
		t.Fatalf("err = %v, want lost + origin closed", err)
	}
	t.Logf("origin closed: %v after %v", err, time.Since(start))
}

func TestPullConnectFailures(t *testing.T) {
	pullLeakCheck(t)
	s := newPullServer(t)
	pullClipServer(t, s, "live/cam", true)

	// Nothing listens on the port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	// A server that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	conns.Add(1)
	go func() {
		defer conns.Done()
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		conns.Wait()
	})

	// An origin whose only track the hub does not relay.
	s.stream("live/mjpeg", &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{&format.MJPEG{}}},
	}})

	cases := []struct {
		name    string
		url     string
		opts    PullOptions
		within  time.Duration
		want    []error
		message string
	}{
		{"refused", "rtsp://" + dead + "/live/x", PullOptions{}, 2 * time.Second, nil, "refused"},
		{"silent", "rtsp://" + silent.Addr().String() + "/live/x", PullOptions{ConnectTimeout: 500 * time.Millisecond},
			1500 * time.Millisecond, []error{context.DeadlineExceeded}, "connect timeout"},
		{"not found", s.url("live/none"), PullOptions{}, 2 * time.Second, []error{ErrOriginStatus}, "404"},
		{"no supported track", s.url("live/mjpeg"), PullOptions{}, 2 * time.Second, []error{hub.ErrNoTracks}, "video M-JPEG"},
		{"bad scheme", "http://" + s.addr + "/live/cam", PullOptions{}, time.Second, nil, "unsupported scheme"},
		{"bad transport", s.url("live/cam"), PullOptions{Transport: "sctp"}, time.Second, nil, "unknown transport"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			e := pullStart(t, tc.url, tc.opts)
			err := e.waitEnd(t, tc.within+2*time.Second)
			if d := time.Since(start); d > tc.within {
				t.Errorf("failed after %v, want within %v", d, tc.within)
			}
			if !errors.Is(err, ErrConnectFailed) {
				t.Fatalf("err = %v, want ErrConnectFailed", err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Fatalf("err = %v, want it to wrap %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.message)
			}
			t.Logf("%v", err)
		})
	}

	if _, err := Probe(context.Background(), s.url("live/none"), time.Second, nil); !errors.Is(err, ErrConnectFailed) {
		t.Fatalf("probe of a missing path: %v, want ErrConnectFailed", err)
	}
	if _, err := Probe(context.Background(), "rtsp://"+silent.Addr().String()+"/x", 300*time.Millisecond, nil); !errors.Is(err, ErrConnectFailed) {
		t.Fatalf("probe of a silent origin: %v, want ErrConnectFailed", err)
	}
}

func TestPullInBandTimeout(t *testing.T) {
	pullLeakCheck(t)
	s := newPullServer(t)
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	// The SDP lacks the parameter sets and nothing is sent.
	desc := pullClipDesc(t, clip, false)
	s.stream("live/cam", desc)
	start := time.Now()
	_, err = DialPull(context.Background(), s.url("live/cam"), PullOptions{ConnectTimeout: 600 * time.Millisecond})
	if !errors.Is(err, ErrConnectFailed) || !strings.Contains(err.Error(), "parameter sets") {
		t.Fatalf("err = %v, want ErrConnectFailed for missing parameter sets", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("gave up after %v", d)
	}
}

func TestPullCredentials(t *testing.T) {
	pullLeakCheck(t)
	s := newPullServer(t)
	s.user, s.pass = "cam", "s3cret"
	pullClipServer(t, s, "live/cam", true)
	e := pullStart(t, "rtsp://cam:s3cret@"+s.addr+"/live/cam", PullOptions{})
	e.waitMedia(t)

	_, err := DialPull(context.Background(), "rtsp://cam:wrong@"+s.addr+"/live/cam", PullOptions{})
	if !errors.Is(err, ErrConnectFailed) || !errors.Is(err, ErrOriginStatus) {
		t.Fatalf("wrong password: %v, want ErrConnectFailed + ErrOriginStatus", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestPullCancel(t *testing.T) {
	pullLeakCheck(t)
	s := newPullServer(t)
	pullClipServer(t, s, "live/cam", true)

	// Cancelling the context ends Run without an error.
	h := hub.New(hub.Params{})
	defer h.Close()
	p, err := h.Publish("edge/s", hub.Session{Protocol: "pull"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := DialPull(context.Background(), s.url("live/cam"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	media := make(chan struct{})
	c.SetOnMedia(func() { close(media) })
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- c.Run(ctx, p) }()
	<-media
	cancel()
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not end on cancel")
	}

	// Cancelling during DialPull (a silent origin) ends it at once.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = DialPull(ctx, "rtsp://"+silent.Addr().String()+"/x", PullOptions{ConnectTimeout: 5 * time.Second})
	if !errors.Is(err, ErrConnectFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want connect failed + canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancelled dial took %v", d)
	}

	// A connection that is never run is closed by Close alone.
	c, err = DialPull(context.Background(), s.url("live/cam"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Close must not block on units nobody reads.
	for deadline := time.Now().Add(2 * time.Second); len(c.units) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if len(c.units) == 0 {
		t.Fatal("no unit queued before Run")
	}
	c.Close()
}

func TestPullRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"rtsp://cam.local/live", "rtsp://cam.local/live"},
		{"rtsp://admin:hunter2@cam.local:554/Streaming/101", "rtsp://admin:xxxxx@cam.local:554/Streaming/101"},
		{"rtsp://viewer@cam/x", "rtsp://viewer@cam/x"},
		{"rtsp://o/live/s?expires=10&token=abc&x=1", "rtsp://o/live/s?expires=10&token=xxxxx&x=1"},
		{"rtsps://o/s?Token=abc&signature=zz", "rtsps://o/s?Token=xxxxx&signature=xxxxx"},
		{"::bad", "(invalid URL)"},
	}
	for _, tc := range cases {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPullErrorsAreDistinct guards the shared semantics: the sentinel
// errors must stay distinct and name what happened.
func TestPullErrorsAreDistinct(t *testing.T) {
	errs := []error{ErrConnectFailed, ErrLost, ErrStalled, ErrOriginStatus, ErrOriginClosed}
	for i, a := range errs {
		for j, b := range errs {
			if i != j && errors.Is(a, b) {
				t.Fatalf("%v is %v", a, b)
			}
		}
	}
	err := fmt.Errorf("%w: %w", ErrLost, pullCause(liberrors.ErrClientTCPTimeout{}))
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("%v does not wrap ErrStalled", err)
	}
}

// TestPullFirstMediaTimes measures, against a warm origin (the clip has a
// keyframe every second and the origin caches nothing), how long a pull
// takes to be ready (DialPull), to hand over its first unit, and to
// deliver its first keyframe to a viewer of the edge.
func TestPullFirstMediaTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("timing run")
	}
	pullLeakCheck(t)
	s := newPullServer(t)
	pullClipServer(t, s, "live/cam", true)
	const runs = 7
	var dial, first, key []time.Duration
	for i := 0; i < runs; i++ {
		func() {
			h := hub.New(hub.Params{StartTimeout: 5 * time.Second})
			defer h.Close()
			p, err := h.Publish("edge/s", hub.Session{Protocol: "pull"})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			start := time.Now()
			c, err := DialPull(context.Background(), s.url("live/cam"), PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dial = append(dial, time.Since(start))
			media := make(chan time.Duration, 1)
			c.SetOnMedia(func() { media <- time.Since(start) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ran := make(chan error, 1)
			go func() { ran <- c.Run(ctx, p) }()
			defer func() { cancel(); <-ran }()
			sub, err := h.Subscribe(ctx, "edge/s", hub.Session{Protocol: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			units, err := sub.Next(ctx, nil)
			if err != nil || len(units) == 0 || !units[0].Key {
				t.Fatalf("first unit: %v %v", units, err)
			}
			key = append(key, time.Since(start))
			first = append(first, <-media)
		}()
		// The run ended at a keyframe: start the next one at another
		// phase of the GOP.
		time.Sleep(time.Duration(i*300%1000) * time.Millisecond)
	}
	stats := func(d []time.Duration) string {
		slices.Sort(d)
		return fmt.Sprintf("median %v (min %v, max %v)", d[len(d)/2].Round(100*time.Microsecond),
			d[0].Round(100*time.Microsecond), d[len(d)-1].Round(100*time.Microsecond))
	}
	t.Logf("%d pulls: ready %s; first unit %s; first keyframe at a viewer %s", runs, stats(dial), stats(first), stats(key))
	if slices.Max(key) > 1500*time.Millisecond {
		t.Errorf("a viewer waited %v for the first keyframe of a 1 s GOP", slices.Max(key))
	}
}

func TestPullNewTrack(t *testing.T) {
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(clip.Audio.AudioConfig); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		format format.Format
		codec  hub.Codec
		track  bool   // the configuration is known from the SDP
		skip   string // why it is skipped, if it is
	}{
		{"h264 sprop", &format.H264{PayloadTyp: 96, SPS: clip.Video.SPS, PPS: clip.Video.PPS, PacketizationMode: 1}, hub.CodecH264, true, ""},
		{"h264 no sprop", &format.H264{PayloadTyp: 96, PacketizationMode: 1}, hub.CodecH264, false, ""},
		{"h264 bad sprop", &format.H264{PayloadTyp: 96, SPS: []byte{0x67}, PPS: []byte{0x68}, PacketizationMode: 1}, hub.CodecH264, false, ""},
		{"h264 interleaved", &format.H264{PayloadTyp: 96, PacketizationMode: 2}, 0, false, "PacketizationMode"},
		{"h265 no sprop", &format.H265{PayloadTyp: 96}, hub.CodecH265, false, ""},
		{"aac", &format.MPEG4Audio{PayloadTyp: 97, Config: &asc, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}, hub.CodecAAC, true, ""},
		{"aac latm in-band config", &format.MPEG4AudioLATM{PayloadTyp: 97, CPresent: true}, 0, false, "LATM"},
		{"opus", &format.Opus{PayloadTyp: 111, ChannelCount: 2}, hub.CodecOpus, true, ""},
		{"mjpeg", &format.MJPEG{}, 0, false, "not relayed"},
		{"g711", &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}, 0, false, "not relayed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, why := pullNewTrack(&description.Media{Type: description.MediaTypeVideo}, tc.format)
			if tc.skip != "" {
				if tr != nil || !strings.Contains(why, tc.skip) {
					t.Fatalf("track %v, reason %q; want skipped for %q", tr, why, tc.skip)
				}
				return
			}
			if tr == nil {
				t.Fatalf("skipped: %s", why)
			}
			if tr.codec != tc.codec || (tr.track != nil) != tc.track {
				t.Fatalf("codec %v, track %+v; want %v, known %v", tr.codec, tr.track, tc.codec, tc.track)
			}
			if tc.track && tr.track.Codec != tc.codec {
				t.Fatalf("hub track codec %v", tr.track.Codec)
			}
		})
	}
}

// TestPullPrependsParams checks that a keyframe sent without its
// parameter sets reaches the hub with them, and gets a DTS.
func TestPullPrependsParams(t *testing.T) {
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	f := &format.H264{PayloadTyp: 96, SPS: clip.Video.SPS, PPS: clip.Video.PPS, PacketizationMode: 1}
	tr, why := pullNewTrack(&description.Media{Type: description.MediaTypeVideo}, f)
	if tr == nil {
		t.Fatal(why)
	}
	enc, err := f.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	var got []pullUnit
	n := 0
	for _, fr := range clip.Frames {
		if !fr.Video {
			continue
		}
		if n == 0 && !pullDemoKey(fr.NALUs) {
			t.Fatal("clip does not start with a keyframe")
		}
		pkts, err := enc.Encode(fr.NALUs)
		if err != nil {
			t.Fatal(err)
		}
		pts := int64(fr.PTS * 90000 / time.Second)
		for _, p := range pkts {
			p.Timestamp = uint32(pts)
			tr.decode(p, pts, func(u pullUnit) { got = append(got, u) })
		}
		if n++; n == 10 {
			break
		}
	}
	if len(got) != 10 {
		t.Fatalf("%d units from 10 frames", len(got))
	}
	first := got[0].nalus
	if len(first) < 3 || string(first[0]) != string(clip.Video.SPS) || string(first[1]) != string(clip.Video.PPS) {
		t.Fatalf("keyframe without SPS, PPS in front: %d NALUs", len(first))
	}
	for i, u := range got {
		if u.dts > u.pts || (i > 0 && u.dts < got[i-1].dts) {
			t.Fatalf("unit %d: DTS %v PTS %v after DTS %v", i, u.dts, u.pts, got[max(i-1, 0)].dts)
		}
	}
	if tr.dropped.Load() != 0 {
		t.Fatalf("%d units dropped", tr.dropped.Load())
	}
}
