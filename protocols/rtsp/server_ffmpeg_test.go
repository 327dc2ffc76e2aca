package rtsp

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"bytes"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/liveedge/liveedge/hub"
)

// srvRequireTools skips a test that needs external tools when they are
// missing (or in -short mode), unless LIVEEDGE_E2E=require.
func srvRequireTools(t *testing.T, tools ...string) {
	t.Helper()
	require := os.Getenv("LIVEEDGE_E2E") == "require"
	if testing.Short() && !require {
		t.Skip("test with external tools skipped in -short mode")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if require {
				t.Fatalf("%s is required (LIVEEDGE_E2E=require) but not installed", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

type srvProbe struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Packets []struct {
		CodecType string `json:"codec_type"`
		Flags     string `json:"flags"`
	} `json:"packets"`
}

// srvFFprobe plays u with ffprobe over transport and returns the streams
// and the first n packets.
func srvFFprobe(t *testing.T, u, transport string, n int) srvProbe {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-hide_banner", "-v", "error",
		"-rtsp_transport", transport, "-timeout", "10000000",
		"-show_streams", "-show_packets", "-read_intervals", "%+#"+itoa(n), "-of", "json", u).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v: %s", u, err, msg)
	}
	var r srvProbe
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func itoa(n int) string { return strconv.Itoa(n) }

// srvH265AUs encodes a short test pattern with libx265 and splits it into
// access units.
func srvH265AUs(t *testing.T) [][][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.h265")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size=320x240:rate=25", "-t", "2", "-c:v", "libx265",
		"-x265-params", "keyint=25:min-keyint=25:bframes=0:log-level=error", "-f", "hevc", path).CombinedOutput()
	if err != nil {
		t.Skipf("ffmpeg cannot encode H.265 here: %v: %s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nalus := srvSplitAnnexB(b)
	var aus [][][]byte
	var cur [][]byte
	hasVCL := false
	for _, n := range nalus {
		typ := h265.NALUType((n[0] >> 1) & 0x3f)
		vcl := typ < 32
		firstSlice := vcl && len(n) > 2 && n[2]&0x80 != 0
		if hasVCL && (!vcl || firstSlice) {
			aus = append(aus, cur)
			cur, hasVCL = nil, false
		}
		cur = append(cur, n)
		hasVCL = hasVCL || vcl
	}
	if hasVCL {
		aus = append(aus, cur)
	}
	return aus
}

// TestServerH265FFprobe plays an H.265 stream with ffprobe over TCP and
// UDP: the SDP carries the parameter sets, and the first video packet is a
// keyframe.
func TestServerH265FFprobe(t *testing.T) {
	srvRequireTools(t, "ffmpeg", "ffprobe")
	aus := srvH265AUs(t)
	var vps, sps, pps []byte
	for _, n := range aus[0] {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			vps = n
		case h265.NALUType_SPS_NUT:
			sps = n
		case h265.NALUType_PPS_NUT:
			pps = n
		}
	}
	track, err := hub.NewH265Track(vps, sps, pps)
	if err != nil {
		t.Fatal(err)
	}
	e := srvTestStart(t, nil)
	p, err := e.hub.Publish("live/hevc", hub.Session{Protocol: "test", Remote: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTracks(track, nil); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer p.Close()
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			ts := time.Duration(i) * 40 * time.Millisecond
			if err := p.WriteVideo(ts, ts, aus[i%len(aus)]); err != nil {
				return
			}
			if i == len(aus)/2 {
				close(started)
			}
			select {
			case <-tick.C:
			case <-e.ctx.Done():
				return
			case <-p.Done():
				return
			}
		}
	}()
	<-started
	for _, tr := range []string{"tcp", "udp"} {
		t.Run(tr, func(t *testing.T) {
			r := srvFFprobe(t, e.url("live/hevc"), tr, 30)
			if len(r.Streams) != 1 || r.Streams[0].CodecName != "hevc" || r.Streams[0].Width != 320 || r.Streams[0].Height != 240 {
				t.Fatalf("streams %+v, want one hevc 320x240", r.Streams)
			}
			if len(r.Packets) < 20 {
				t.Fatalf("%d packets", len(r.Packets))
			}
			if !strings.HasPrefix(r.Packets[0].Flags, "K") {
				t.Fatalf("first packet %+v is not a keyframe", r.Packets[0])
			}
		})
	}
}

// srvSplitAnnexB splits an Annex B byte stream at its start codes.
func srvSplitAnnexB(b []byte) [][]byte {
	var out [][]byte
	sc := []byte{0, 0, 1}
	i := bytes.Index(b, sc)
	for i >= 0 {
		start := i + 3
		j := bytes.Index(b[start:], sc)
		end := len(b)
		if j >= 0 {
			end = start + j
		}
		n := bytes.TrimRight(b[start:end], "\x00") // a 4-byte start code's leading zero
		if len(n) > 0 {
			out = append(out, n)
		}
		if j < 0 {
			break
		}
		i = start + j
	}
	return out
}
