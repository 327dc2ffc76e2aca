package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"golang.org/x/sys/unix"

	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/protocols/demo"
)

// Faults: an origin sending corrupt media, a resolution change
// mid-stream, a publisher reconnecting under the same name, the HLS
// directory becoming unwritable or full. Each test asserts a clear log
// line, that the stream recovers or ends cleanly, and that other streams
// and viewers are unaffected (measured).

// withAdmin turns the admin listener of a configuration on: /metrics for
// the goroutine count.
func withAdmin(cfg string) string {
	return strings.Replace(cfg, `admin: {listen: ""}`, `admin: {listen: "127.0.0.1:0", secret: "`+adminSecret+`"}`, 1)
}

var goroutinesRe = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

// resources returns the server's open descriptors and goroutines.
func resources(t *testing.T, s *server, a *adminClient) (fds, goroutines int) {
	t.Helper()
	code, b := a.do(t, http.MethodGet, "/metrics", true)
	m := goroutinesRe.FindSubmatch(b)
	if code != http.StatusOK || m == nil {
		t.Fatalf("/metrics = %d without go_goroutines", code)
	}
	g, _ := strconv.Atoi(string(m[1]))
	return fdCount(t, s.cmd.Process.Pid), g
}

// waitResources waits until the server is back to at most the given
// descriptors and goroutines (plus slack), and returns what it measured.
func waitResources(t *testing.T, s *server, a *adminClient, fds, goroutines, slack int) (int, int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, g := resources(t, s, a)
		if f <= fds+slack && g <= goroutines+slack {
			return f, g
		}
		if time.Now().After(deadline) {
			t.Fatalf("server holds %d fds and %d goroutines, %d and %d before", f, g, fds, goroutines)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// corruptPublisher publishes the demo clip's video in real time over a
// Go RTMP client and injects faults: every 7th frame is followed by an
// access unit whose AVCC length runs past its message (a truncated NAL
// unit), every 11th frame goes out with its slice data garbled (framing
// intact: a broken picture), and after two seconds a sequence header
// with an unparsable SPS is sent. With badFirst the very first sequence
// header is the unparsable one.
type corruptPublisher struct {
	mu                         sync.Mutex
	frames, truncated, garbled int
	badHeaders                 int
	err                        error
	done                       chan struct{}
	cancel                     context.CancelFunc
}

// garbageSPS is an SPS NAL unit header followed by bytes that do not
// parse as one (an exp-Golomb run longer than the unit).
var garbageSPS = []byte{0x67, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}

func badAvcC(pps []byte) *mp4.AVCDecoderConfiguration {
	return &mp4.AVCDecoderConfiguration{
		AnyTypeBox:                 mp4.AnyTypeBox{Type: mp4.BoxTypeAvcC()},
		ConfigurationVersion:       1,
		Profile:                    66,
		Level:                      30,
		Reserved:                   0b111111,
		LengthSizeMinusOne:         3,
		Reserved2:                  0b111,
		NumOfSequenceParameterSets: 1,
		SequenceParameterSets:      []mp4.AVCParameterSet{{Length: uint16(len(garbageSPS)), NALUnit: garbageSPS}},
		NumOfPictureParameterSets:  1,
		PictureParameterSets:       []mp4.AVCParameterSet{{Length: uint16(len(pps)), NALUnit: pps}},
	}
}

func publishCorrupt(t *testing.T, rawURL string, badFirst bool) *corruptPublisher {
	t.Helper()
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	// gortmplib takes the stream key from the fragment (nginx wants app
	// "live" and key "bad", not app "live/bad").
	app, key, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	u.Path, u.Fragment = "/"+app, key
	c := &gortmplib.Client{URL: u, Publish: true}
	ictx, icancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer icancel()
	if err := c.Initialize(ictx); err != nil {
		t.Fatal(err)
	}
	track := &gortmplib.Track{Codec: &codecs.H264{SPS: clip.Video.SPS, PPS: clip.Video.PPS}}
	var ptsDelta time.Duration
	video := func(dts time.Duration, typ message.VideoType, key bool, au []byte, cfg *mp4.AVCDecoderConfiguration) error {
		return c.Write(&message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000,
			Codec: message.CodecH264, IsKeyFrame: key, Type: typ, DTS: dts, PTSDelta: ptsDelta, AU: au, AVCConfig: cfg})
	}
	if badFirst {
		if err := video(0, message.VideoTypeConfig, true, nil, badAvcC(clip.Video.PPS)); err != nil {
			t.Fatal(err)
		}
	} else {
		w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{track}}
		if err := w.Initialize(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &corruptPublisher{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.done)
		defer c.Close()
		rnd := rand.New(rand.NewPCG(1, 2))
		start := time.Now()
		n, sentBadHeader := 0, badFirst
		for loop := 0; ; loop++ {
			off := time.Duration(loop) * clip.Duration
			for _, f := range clip.Frames {
				if !f.Video {
					continue
				}
				dts := off + f.DTS
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(start.Add(dts))): // real-time pacing
				}
				au := f.NALUs
				key := h264.IsRandomAccess(au)
				n++
				garble := n%11 == 0 && !key
				if garble {
					au = make([][]byte, len(f.NALUs))
					for i, nalu := range f.NALUs {
						b := append([]byte(nil), nalu...)
						for j := 2; j < len(b); j++ {
							if rnd.IntN(8) == 0 {
								b[j] = byte(rnd.Uint32())
							}
						}
						au[i] = b
					}
				}
				avcc, err := h264.AVCC(au).Marshal()
				if err == nil {
					ptsDelta = f.PTS - f.DTS
					err = video(dts, message.VideoTypeAU, key, avcc, nil)
					ptsDelta = 0
				}
				if err == nil && n%7 == 0 {
					// A NAL unit announced as 256 bytes, 2 bytes long.
					err = video(dts, message.VideoTypeAU, false, []byte{0, 0, 1, 0, 0x41, 0x9a}, nil)
					p.count(&p.truncated)
				}
				if err == nil && !sentBadHeader && dts >= 2*time.Second {
					err = video(dts, message.VideoTypeConfig, true, nil, badAvcC(clip.Video.PPS))
					sentBadHeader = true
					p.count(&p.badHeaders)
				}
				if err != nil {
					p.mu.Lock()
					p.err = err
					p.mu.Unlock()
					return
				}
				p.count(&p.frames)
				if garble {
					p.count(&p.garbled)
				}
			}
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *corruptPublisher) count(n *int) {
	p.mu.Lock()
	*n++
	p.mu.Unlock()
}

func (p *corruptPublisher) stop() {
	p.cancel()
	<-p.done
}

func (p *corruptPublisher) state() (frames, truncated, garbled, badHeaders int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frames, p.truncated, p.garbled, p.badHeaders, p.err
}

// TestFaultCorruptOrigin: an nginx origin relays a stream whose video
// carries truncated NAL units, garbled slices and an unparsable sequence
// header. The edge pulling it logs the dropped media, keeps the pull and
// its viewer (no reconnect), the live/demo viewer's cadence does not
// change, and the server ends with the descriptors and goroutines it had.
// A stream whose first sequence header is unparsable is refused cleanly.
func TestFaultCorruptOrigin(t *testing.T) {
	requireTools(t)
	o := nginxtest.Start(t)
	s := startServer(t, withAdmin(baseConfig)+`
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
  - match: "live/*"
    mode: on_demand
    idle_close: 1s
    start_timeout: 3s
    origins: ["rtmp://`+o.RTMP+`/live/$stream"]
`)
	a := newAdminClient(t, s)
	demoV := watch(t, s.url("live/demo"))
	demoV.waitFrames(t, 25, 10*time.Second)
	fds0, g0 := resources(t, s, a)

	pub := publishCorrupt(t, o.URL("bad"), false)
	if err := o.WaitPublishing("bad", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	demoV.reset()
	bad := watch(t, s.url("live/bad"))
	bad.waitFrames(t, 100, 15*time.Second) // four seconds, across the bad header and ~15 truncated units
	t.Logf("dropped: %s", s.waitLog(t, `msg="undecodable media dropped" stream=live/bad .*err="unable to decode AVCC`, 2*time.Second))
	frames, truncated, garbled, badHeaders, err := pub.state()
	if err != nil {
		t.Fatalf("corrupt publisher: %v", err)
	}
	st := bad.state()
	demoSt := demoV.state()
	t.Logf("origin sent %d frames, %d truncated units, %d garbled frames, %d bad sequence headers; "+
		"the bad stream's viewer got %d frames, max gap %v; the demo viewer's max gap %v",
		frames, truncated, garbled, badHeaders, st.frames, st.maxGap, demoSt.maxGap)
	if badHeaders != 1 || truncated < 10 {
		t.Fatalf("the faults were not all injected: %d bad headers, %d truncated units", badHeaders, truncated)
	}
	if st.err != nil || st.backward > 0 {
		t.Fatalf("bad stream's viewer: err %v, DTS back %d times", st.err, st.backward)
	}
	if st.maxGap > 500*time.Millisecond {
		t.Fatalf("bad stream's viewer: gap %v (the pull restarted?)", st.maxGap)
	}
	if demoSt.err != nil || demoSt.maxGap > 300*time.Millisecond {
		t.Fatalf("demo viewer: err %v, max gap %v, want < 300ms", demoSt.err, demoSt.maxGap)
	}
	lines := s.logLines()
	if n := countLines(lines, `msg="pull started" stream=live/bad`); n != 1 {
		t.Fatalf("%d pulls of live/bad started, want 1 (no reconnect)", n)
	}
	if n := countLines(lines, `stream=live/bad.*(msg="origin down"|msg=failover)`); n != 0 {
		t.Fatalf("the pull of live/bad failed %d times", n)
	}
	if n := countLines(lines, `undecodable media dropped`); n > 1 {
		t.Fatalf("%d lines about dropped media in a few seconds, want one summary per 10 s", n)
	}

	// A stream whose first sequence header does not parse: the edge
	// refuses the pull with a reason and the viewer is told the stream
	// is not there; nothing else changes.
	publishCorrupt(t, o.URL("badhdr"), true)
	if err := o.WaitPublishing("badhdr", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := probe(t, s.url("live/badhdr"), 10); err == nil {
		t.Fatal("a stream with an unparsable SPS was played")
	}
	line := s.waitLog(t, `msg="origin down" stream=live/badhdr.*`, time.Second)
	t.Logf("refused: %s", line)
	s.waitLog(t, `play refused.*stream=live/badhdr`, time.Second)

	// The bad streams end: the pulls close, the resources go back.
	pub.stop()
	bad.c.Close()
	<-bad.done
	s.waitLog(t, `msg="pull ended" stream=live/bad `, 5*time.Second)
	demoSt = demoV.state()
	if demoSt.err != nil || demoSt.maxGap > 300*time.Millisecond {
		t.Fatalf("demo viewer: err %v, max gap %v over the whole test, want < 300ms", demoSt.err, demoSt.maxGap)
	}
	fds1, g1 := waitResources(t, s, a, fds0, g0, 2)
	t.Logf("server: %d fds and %d goroutines before, %d and %d after; demo viewer max gap %v over the test",
		fds0, g0, fds1, g1, demoSt.maxGap)
}

// makeClip encodes a small H.264 + AAC FLV clip of the given size.
func makeClip(t *testing.T, dir, size string, seconds int) string {
	t.Helper()
	p := filepath.Join(dir, size+".flv")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25", "-f", "lavfi", "-i", "sine=f=440:r=44100",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "48k", "-f", "flv", p).CombinedOutput()
	if err != nil {
		t.Fatalf("encoding %s: %v\n%s", size, err, out)
	}
	return p
}

// resViewer plays a stream with a Go RTMP client and records the
// resolution of every sequence header and of the frames after it.
type resViewer struct {
	mu      sync.Mutex
	configs []string // the resolutions of the sequence headers, in order
	frames  map[string]int
	cur     string
	lastDTS time.Duration
	back    int
	err     error
	done    chan struct{}
}

func watchResolution(t *testing.T, rawURL string) *resViewer {
	t.Helper()
	u, _ := url.Parse(rawURL)
	c := &gortmplib.Client{URL: u}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	v := &resViewer{frames: map[string]int{}, done: make(chan struct{})}
	r := &gortmplib.Reader{Conn: c}
	c.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := r.Initialize(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	for _, tr := range r.Tracks() {
		switch tc := tr.Codec.(type) {
		case *codecs.H264:
			// (The reader replays the header it detected the track
			// from to the callback, which records it.)
			v.cur = spsSize(tc.SPS)
			r.OnDataH264(tr, func(_, dts time.Duration, au [][]byte) { v.unit(dts, au) })
		case *codecs.MPEG4Audio:
			r.OnDataMPEG4Audio(tr, func(time.Duration, []byte) {})
		}
	}
	go func() {
		defer close(v.done)
		for {
			c.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := r.Read(); err != nil {
				v.mu.Lock()
				v.err = err
				v.mu.Unlock()
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-v.done
	})
	return v
}

func spsSize(sps []byte) string {
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return "bad SPS"
	}
	return fmt.Sprintf("%dx%d", s.Width(), s.Height())
}

func (v *resViewer) unit(dts time.Duration, au [][]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	// A sequence header arrives as an access unit of SPS and PPS.
	if len(au) == 2 && len(au[0]) > 0 && h264.NALUType(au[0][0]&0x1f) == h264.NALUTypeSPS {
		v.cur = spsSize(au[0])
		v.configs = append(v.configs, v.cur)
		return
	}
	if dts < v.lastDTS {
		v.back++
	}
	v.lastDTS = dts
	v.frames[v.cur]++
}

func (v *resViewer) state() (configs []string, frames map[string]int, back int, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := map[string]int{}
	for k, n := range v.frames {
		f[k] = n
	}
	return append([]string(nil), v.configs...), f, v.back, v.err
}

// probeFrames decodes n video frames of url with ffprobe and counts them
// by resolution; at the timeout it returns what was decoded.
func probeFrames(t *testing.T, rawURL string, n int, timeout time.Duration) (map[string]int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-hide_banner", "-v", "error", "-rw_timeout", "10000000",
		"-select_streams", "v", "-show_entries", "frame=width,height", "-of", "csv=p=0",
		"-read_intervals", "%+#"+strconv.Itoa(n), rawURL).Output()
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Split(strings.TrimSpace(l), ","); len(f) >= 2 {
			got[f[0]+"x"+f[1]]++
		}
	}
	if err != nil && len(got) == 0 {
		return got, fmt.Errorf("ffprobe %s: %v", rawURL, err)
	}
	return got, nil
}

// TestFaultResolutionChange: the publisher switches between 640x360 and
// 320x180 every 4 s on one RTMP connection (a new sequence header each
// time). RTMP viewers get each new header once and decode both sizes;
// HTTP-FLV decoders see both; HLS restarts its muxer, an HLS viewer
// plays on across the changes and a new one gets the new size; the change
// is logged.
func TestFaultResolutionChange(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	dir := t.TempDir()
	big, small := makeClip(t, dir, "640x360", 4), makeClip(t, dir, "320x180", 4)
	list := filepath.Join(dir, "list.txt")
	os.WriteFile(list, []byte("file '"+big+"'\nfile '"+small+"'\n"), 0o644)
	both := filepath.Join(dir, "both.flv")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
		"-i", list, "-c", "copy", "-f", "flv", both).CombinedOutput(); err != nil {
		t.Fatalf("concat: %v\n%s", err, out)
	}

	s := startServer(t, strings.Replace(baseConfig, `http: {listen: ""}`, `http: {listen: "127.0.0.1:0"}`, 1)+`
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	httpAddr := s.httpAddr(t)
	demoV := watch(t, s.url("live/demo"))
	ctx, cancel := context.WithCancel(context.Background())
	pub := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
		"-i", both, "-c", "copy", "-f", "flv", s.url("live/rc"))
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); pub.Wait() })
	s.waitLog(t, `msg=publishing .*stream=live/rc`, 15*time.Second)
	rv := watchResolution(t, s.url("live/rc"))
	demoV.waitFrames(t, 10, 5*time.Second)
	demoV.reset()

	// An HLS viewer across the changes: each change restarts the muxer,
	// whose media sequence numbers go on from the last ones served (they
	// used to start again, and ffmpeg waited for them for good after the
	// second change: 75 frames in 12 s).
	hls := "http://" + httpAddr + "/live/rc/index.m3u8"
	hlsAcross := make(chan map[string]int, 1)
	go func() {
		f, _ := probeFrames(t, hls, 250, 12*time.Second)
		hlsAcross <- f
	}()

	// HTTP-FLV: ten seconds of decoded frames span at least two changes.
	flvFrames, err := probeFrames(t, "http://"+httpAddr+"/live/rc.flv", 250, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("HTTP-FLV decoded frames by size: %v", flvFrames)
	if flvFrames["640x360"] < 25 || flvFrames["320x180"] < 25 || len(flvFrames) != 2 {
		t.Fatalf("HTTP-FLV decoded %v, want both sizes and only them", flvFrames)
	}
	s.waitLog(t, `msg=tracks stream=live/rc video="H264 320x180"`, time.Second)
	s.waitLog(t, `msg=tracks stream=live/rc video="H264 640x360"`, time.Second)

	// HLS: the muxer restarts on the change; a viewer arriving after it
	// decodes the new size.
	across := <-hlsAcross
	t.Logf("HLS viewer playing across the changes for up to 12 s decoded %v", across)
	if across["640x360"] < 50 || across["320x180"] < 50 || across["640x360"]+across["320x180"] < 175 {
		t.Fatalf("HLS viewer across the changes decoded %v in 12 s, want both sizes and at least 175 frames", across)
	}
	n := countLines(s.logLines(), `msg=tracks stream=live/rc `)
	var want string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		lines := s.logLines()
		if countLines(lines, `msg=tracks stream=live/rc `) > n {
			want = regexp.MustCompile(`msg=tracks stream=live/rc video="H264 (\d+x\d+)"`).FindAllStringSubmatch(strings.Join(lines, "\n"), -1)[n][1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no resolution change within 10 s")
		}
	}
	s.waitLog(t, `msg="codec configuration changed, muxer restarted" proto=hls stream=live/rc`, 2*time.Second)
	// The restarted muxer's media playlist tells players of the
	// discontinuity: its discontinuity sequence counts the restarts.
	_, mv := httpGet(t, hls)
	var media string
	for _, l := range strings.Split(mv, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			media = l
			break
		}
	}
	if media == "" {
		t.Fatalf("no media playlist in %q", mv)
	}
	_, pl := httpGet(t, "http://"+httpAddr+"/live/rc/"+media)
	m := regexp.MustCompile(`(?m)^#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)$`).FindStringSubmatch(pl)
	if m == nil || m[1] == "0" {
		t.Fatalf("media playlist after a muxer restart has no discontinuity sequence above 0:\n%s", pl)
	}
	t.Logf("media playlist after the restart: EXT-X-DISCONTINUITY-SEQUENCE:%s", m[1])
	hlsFrames, err := probeFrames(t, hls, 25, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("HLS viewer after the change to %s decoded %v", want, hlsFrames)
	if hlsFrames[want] < 20 {
		t.Fatalf("HLS viewer after the change to %s decoded %v", want, hlsFrames)
	}

	configs, frames, back, err := rv.state()
	t.Logf("RTMP viewer: sequence headers %v, frames by size %v", configs, frames)
	if err != nil || back > 0 {
		t.Fatalf("RTMP viewer: err %v, DTS back %d times", err, back)
	}
	if len(configs) < 3 || frames["640x360"] < 25 || frames["320x180"] < 25 {
		t.Fatalf("RTMP viewer: headers %v, frames %v, want both sizes after at least two changes", configs, frames)
	}
	for i := 1; i < len(configs); i++ {
		if configs[i] == configs[i-1] {
			t.Fatalf("RTMP viewer got the %s header twice in a row: %v", configs[i], configs)
		}
	}
	if st := demoV.state(); st.err != nil || st.maxGap > 300*time.Millisecond {
		t.Fatalf("demo viewer: err %v, max gap %v, want < 300ms", st.err, st.maxGap)
	} else {
		t.Logf("demo viewer max gap during the changes: %v", st.maxGap)
	}
}

// TestFaultPublisherReconnect: the publisher is killed and starts again
// under the same name within a second. The viewer stays connected (the
// hub's producer grace), its DTS stays monotonic and the gap is bounded.
// A second, concurrent publisher is refused with a clear error while the
// first keeps going.
func TestFaultPublisherReconnect(t *testing.T) {
	requireTools(t, "ffmpeg")
	s := startServer(t, baseConfig)
	pub := publish(t, s.url("live/re"))
	s.waitLog(t, `msg=publishing .*stream=live/re`, 15*time.Second)
	v := watch(t, s.url("live/re"))
	v.waitFrames(t, 25, 10*time.Second)

	v.reset()
	pub.Process.Kill()
	killed := time.Now()
	s.waitLog(t, `msg="publisher left" .*stream=live/re`, 5*time.Second)
	publish(t, s.url("live/re"))
	restarted := time.Since(killed)
	if restarted > time.Second {
		t.Fatalf("the publisher restarted %v after the kill, want < 1s", restarted)
	}
	// The gap is the new ffmpeg's start, its handshake and first
	// keyframe: the stream takes it as soon as its tracks are configured
	// (it used to wait for two seconds of media).
	gap := v.checkSwitch(t, 1800*time.Millisecond)
	lines := s.logLines()
	if n := countLines(lines, `msg=publishing .*stream=live/re`); n != 2 {
		t.Fatalf("%d publish sessions, want 2", n)
	}
	if n := countLines(lines, `no producer within grace period|player left.*stream=live/re`); n != 0 {
		t.Fatal("the stream ended or the viewer left across the reconnect")
	}
	t.Logf("publisher killed and restarted %v later: viewer media gap %v, DTS monotonic", restarted.Round(time.Millisecond), gap)

	// A second publisher while the first is live: refused, with a reason
	// both sides can read; the viewer does not notice.
	v.reset()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-i", clipPath(t), "-t", "2", "-c", "copy", "-f", "flv", s.url("live/re")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already being published") {
		t.Fatalf("second publisher: err %v, output %q; want a refusal saying the stream is already being published", err, out)
	}
	s.waitLog(t, `publish refused.*stream=live/re.*already has a publisher`, 2*time.Second)
	v.waitFrames(t, 25, 5*time.Second)
	st := v.state()
	if st.err != nil || st.backward > 0 || st.maxGap > 300*time.Millisecond {
		t.Fatalf("viewer during the refused publish: err %v, DTS back %d, max gap %v", st.err, st.backward, st.maxGap)
	}
	t.Logf("viewer max gap while a second publisher was refused: %v", st.maxGap)
}

// TestFaultHLSDir: hls.dir stops taking writes under two running muxers.
// live/x: its directory is replaced by a regular file (ENOTDIR: works as
// root, where a chmod would not stop writes). live/y: the server's file
// size limit drops to 1 KiB (RLIMIT_FSIZE: every segment write fails with
// EFBIG, as on a full disk; an unprivileged stand-in for ENOSPC). Each
// muxer logs the failure and goes on in memory; HLS plays on, the RTMP
// viewer of the same stream sees no gap, the server keeps running.
func TestFaultHLSDir(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	dir := t.TempDir()
	s := startServer(t, strings.Replace(baseConfig, `http: {listen: ""}`, `http: {listen: "127.0.0.1:0"}`, 1)+
		"hls: {dir: \""+dir+"\"}\n")
	httpAddr := s.httpAddr(t)
	publish(t, s.url("live/x"))
	publish(t, s.url("live/y"))
	s.waitLog(t, `msg=publishing .*stream=live/x`, 15*time.Second)
	s.waitLog(t, `msg=publishing .*stream=live/y`, 15*time.Second)
	vx := watch(t, s.url("live/x"))
	vx.waitFrames(t, 25, 10*time.Second)

	hls := func(name string) string { return "http://" + httpAddr + "/" + name + "/index.m3u8" }
	for _, name := range []string{"live/x", "live/y"} {
		if _, err := probe(t, hls(name), 10); err != nil {
			t.Fatal(err)
		}
	}
	muxerDir := func(name string) string {
		m, _ := filepath.Glob(filepath.Join(dir, "liveedge-"+strings.ReplaceAll(name, "/", "~")+"-*"))
		if len(m) != 1 {
			t.Fatalf("muxer directories of %s: %v", name, m)
		}
		return m[0]
	}
	xDir := muxerDir("live/x")
	muxerDir("live/y")
	vx.reset()

	// Unwritable: the muxer's directory becomes a file.
	if err := os.RemoveAll(xDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(xDir, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	line := s.waitLog(t, `msg="hls.dir write failed, keeping this stream's segments in memory" proto=hls stream=live/x .*not a directory`, 10*time.Second)
	t.Logf("unwritable: %s", line)

	// Full: no file may grow past 1 KiB.
	if err := unix.Prlimit(s.cmd.Process.Pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 1024, Max: 1024}, nil); err != nil {
		t.Fatal(err)
	}
	line = s.waitLog(t, `msg="hls.dir write failed, keeping this stream's segments in memory" proto=hls stream=live/y .*file too large`, 10*time.Second)
	t.Logf("full: %s", line)

	// Both still play over HLS, from memory; the RTMP viewer saw nothing.
	for _, name := range []string{"live/x", "live/y"} {
		r, err := probe(t, hls(name), 60)
		if err != nil {
			t.Fatal(err)
		}
		checkPlayback(t, r, 20)
	}
	for _, name := range []string{"live/x", "live/y"} {
		if n := countLines(s.logLines(), `hls.dir write failed.*stream=`+name+` `); n != 1 {
			t.Fatalf("%d lines about hls.dir for %s, want 1", n, name)
		}
	}
	// The failed muxers' directories (and the file in x's way) are gone.
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("hls.dir holds %v (%v), want nothing: the muxers are in memory", ents, err)
	}
	hlsDirFailureHarmless(t, s, vx, "live/x across both failures")
}

// TestFaultHLSDirNoSpace: hls.dir is a small tmpfs that fills up while a
// stream plays (a real ENOSPC, where TestFaultHLSDir's RLIMIT_FSIZE is a
// stand-in). The muxer logs "no space left on device" once and goes on in
// memory; HLS plays on, the stream's RTMP viewer sees no gap, and the
// muxer's files are removed, which gives the space back. Mounting needs
// CAP_SYS_ADMIN; without it the test is skipped.
func TestFaultHLSDirNoSpace(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs for hls.dir (%v); TestFaultHLSDir covers a full disk with RLIMIT_FSIZE", err)
	}
	// Registered before the server's cleanup, so it runs after the server
	// has stopped.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	s := startServer(t, strings.Replace(baseConfig, `http: {listen: ""}`, `http: {listen: "127.0.0.1:0"}`, 1)+
		"hls: {dir: \""+dir+"\"}\n")
	httpAddr := s.httpAddr(t)
	publish(t, s.url("live/full"))
	s.waitLog(t, `msg=publishing .*stream=live/full`, 15*time.Second)
	v := watch(t, s.url("live/full"))
	v.waitFrames(t, 25, 10*time.Second)
	hls := "http://" + httpAddr + "/live/full/index.m3u8"
	if _, err := probe(t, hls, 10); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "liveedge-live~full-*")); len(m) != 1 {
		t.Fatalf("muxer directories in hls.dir: %v", m)
	}
	v.reset()

	// Fill the file system: write until the kernel says ENOSPC.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err = filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling the tmpfs ended with %v, want ENOSPC", err)
	}
	line := s.waitLog(t, `msg="hls.dir write failed, keeping this stream's segments in memory" proto=hls stream=live/full .*no space left on device`, 10*time.Second)
	t.Logf("full: %s", line)

	r, err := probe(t, hls, 60)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 20)
	if n := countLines(s.logLines(), `hls.dir write failed.*stream=live/full `); n != 1 {
		t.Fatalf("%d lines about hls.dir, want 1", n)
	}
	// Only the filler is left: the failed muxer's files are gone.
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "filler" {
		t.Fatalf("hls.dir holds %v (%v), want only the filler", ents, err)
	}
	hlsDirFailureHarmless(t, s, v, "live/full across the full disk")
}

// hlsDirFailureHarmless checks that an RTMP viewer of a stream whose HLS
// muxer lost hls.dir saw no gap and no DTS going back, and that the
// server is still running.
func hlsDirFailureHarmless(t *testing.T, s *server, v *viewer, what string) {
	t.Helper()
	st := v.state()
	if st.err != nil || st.backward > 0 || st.maxGap > 300*time.Millisecond {
		t.Fatalf("RTMP viewer of %s: err %v, DTS back %d, max gap %v", what, st.err, st.backward, st.maxGap)
	}
	t.Logf("RTMP viewer of %s: %d frames, max gap %v", what, st.frames, st.maxGap)
	select {
	case <-s.done:
		t.Fatalf("liveedge exited: %v", s.err)
	default:
	}
}
