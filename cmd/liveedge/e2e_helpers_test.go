package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the real binary against real clients (ffmpeg,
// ffprobe). Without the tools they skip, unless LIVEEDGE_E2E=require.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "liveedge-e2e")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "liveedge")
	out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building liveedge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() && os.Getenv("LIVEEDGE_E2E") != "require" {
		t.Skip("end-to-end test skipped in -short mode")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("LIVEEDGE_E2E") == "require" {
				t.Fatalf("%s is required (LIVEEDGE_E2E=require) but not installed", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// clipPath is the pre-encoded H.264 + AAC clip the tests publish.
func clipPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../protocols/demo/clip.flv")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// server is a running liveedge process.
type server struct {
	cmd  *exec.Cmd
	rtmp string // host:port
	conf string // the configuration file

	http string // host:port of the HTTP listener, once logged; see httpAddr
	rtsp string // host:port of the RTSP listener, once logged; see rtspAddr

	mu   sync.Mutex
	logs []string
	done chan struct{}
	err  error
}

var listenRe = regexp.MustCompile(`msg=listening proto=(\w+) addr=(\S+)`)

// startServer runs liveedge with the given YAML config (listeners on
// 127.0.0.1:0) and waits for its RTMP listener.
func startServer(t *testing.T, cfg string, env ...string) *server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "liveedge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &server{done: make(chan struct{}), conf: path}
	s.cmd = exec.Command(binPath, "--config", path)
	s.cmd.Env = append(os.Environ(), env...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs = append(s.logs, line)
			if m := listenRe.FindStringSubmatch(line); m != nil && m[1] == "http" {
				s.http = m[2]
			}
			if m := listenRe.FindStringSubmatch(line); m != nil && m[1] == "rtsp" {
				s.rtsp = m[2]
			}
			s.mu.Unlock()
			if m := listenRe.FindStringSubmatch(line); m != nil && m[1] == "rtmp" {
				select {
				case addr <- m[2]:
				default:
				}
			}
		}
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", strings.Join(s.logLines(), "\n"))
		}
	})
	select {
	case a := <-addr:
		s.rtmp = a
	case <-s.done:
		t.Fatalf("liveedge exited: %v\n%s", s.err, strings.Join(s.logLines(), "\n"))
	case <-time.After(20 * time.Second):
		t.Fatal("liveedge did not start listening")
	}
	return s
}

func (s *server) logLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logs...)
}

// waitLog waits until a log line matches re.
func (s *server) waitLog(t *testing.T, re string, timeout time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, l := range s.logLines() {
			if rx.MatchString(l) {
				return l
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no log line matching %q within %v", re, timeout)
	return ""
}

// stop sends SIGTERM and requires an exit within 5 s.
func (s *server) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(6 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("liveedge did not exit within 5 s of SIGTERM")
	}
}

func (s *server) url(path string) string { return "rtmp://" + s.rtmp + "/" + path }

// httpAddr waits for the HTTP listener's address.
func (s *server) httpAddr(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		a := s.http
		s.mu.Unlock()
		if a != "" {
			return a
		}
	}
	t.Fatal("liveedge did not log an HTTP listener")
	return ""
}

const baseConfig = `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
http: {listen: ""}
admin: {listen: ""}
`

// publish publishes the test clip in a loop until the test ends.
func publish(t *testing.T, url string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-stream_loop", "-1", "-i", clipPath(t), "-c", "copy", "-f", "flv", url)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	return cmd
}

type probePacket struct {
	CodecType string `json:"codec_type"`
	PTS       int64  `json:"pts"`
	DTS       int64  `json:"dts"`
	Flags     string `json:"flags"`
}

type probeStream struct {
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
}

type probeResult struct {
	Streams []probeStream `json:"streams"`
	Packets []probePacket `json:"packets"`
}

// probe plays url with ffprobe and returns its streams and the first n
// packets it read.
func probe(t *testing.T, url string, n int) (probeResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-hide_banner", "-v", "error",
		"-rw_timeout", "15000000",
		"-show_streams", "-show_packets", "-read_intervals", "%+#"+strconv.Itoa(n),
		"-of", "json", url).Output()
	var r probeResult
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return r, fmt.Errorf("ffprobe %s: %v: %s", url, err, msg)
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("ffprobe output: %v", err)
	}
	return r, nil
}

// checkPlayback asserts codec, resolution, a minimum frame count and that
// the first video packet is a keyframe.
func checkPlayback(t *testing.T, r probeResult, minVideo int) {
	t.Helper()
	var video, audio *probeStream
	for i := range r.Streams {
		switch r.Streams[i].CodecType {
		case "video":
			video = &r.Streams[i]
		case "audio":
			audio = &r.Streams[i]
		}
	}
	if video == nil || video.CodecName != "h264" || video.Width != 640 || video.Height != 360 {
		t.Fatalf("video stream = %+v, want h264 640x360", video)
	}
	if audio == nil || audio.CodecName != "aac" {
		t.Fatalf("audio stream = %+v, want aac", audio)
	}
	nv := 0
	var lastDTS int64 = -1
	for _, p := range r.Packets {
		if p.CodecType != "video" {
			continue
		}
		if nv == 0 && !strings.HasPrefix(p.Flags, "K") {
			t.Fatalf("first video packet is not a keyframe: %+v", p)
		}
		if p.DTS < lastDTS {
			t.Fatalf("video DTS went backwards: %d after %d", p.DTS, lastDTS)
		}
		lastDTS = p.DTS
		nv++
	}
	if nv < minVideo {
		t.Fatalf("got %d video packets, want at least %d", nv, minVideo)
	}
}
