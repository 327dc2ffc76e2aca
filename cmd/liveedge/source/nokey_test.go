package source

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/internal/nginxtest"
)

// withoutKeyframes returns the FLV file in without its H.264 keyframes:
// the sequence header stays, so the stream's codec is known, but nothing
// in it can be decoded.
func withoutKeyframes(t *testing.T, in []byte) []byte {
	t.Helper()
	if len(in) < 13 || string(in[:3]) != "FLV" {
		t.Fatal("not an FLV file")
	}
	hdr := int(binary.BigEndian.Uint32(in[5:9]))
	out := append([]byte(nil), in[:hdr+4]...)
	dropped := 0
	for off := hdr + 4; off+11 <= len(in); {
		size := int(in[off+1])<<16 | int(in[off+2])<<8 | int(in[off+3])
		end := off + 11 + size + 4
		if end > len(in) {
			break
		}
		body := in[off+11 : off+11+size]
		if in[off] == 9 && size >= 2 && body[0]>>4 == 1 && body[1] == 1 {
			dropped++
		} else {
			out = append(out, in[off:end]...)
		}
		off = end
	}
	if dropped == 0 {
		t.Fatal("the clip has no keyframe to drop")
	}
	return out
}

// TestNoKeyframeOriginFailsOver: an origin that sends video with no
// keyframe (codec headers and inter frames only) is abandoned after
// keyframe_timeout for the next origin, and the viewer's first video
// unit is the backup's keyframe.
func TestNoKeyframeOriginFailsOver(t *testing.T) {
	nginxtest.Require(t, "ffmpeg")
	clip, err := os.ReadFile(nginxtest.ClipPath(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nokey.flv")
	if err := os.WriteFile(path, withoutKeyframes(t, clip), 0o644); err != nil {
		t.Fatal(err)
	}
	o := nginxtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	// -copyinkf: ffmpeg would otherwise drop inter frames until a keyframe.
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-stream_loop", "-1", "-i", path, "-c", "copy", "-copyinkf", "-f", "flv", o.RawURL("x"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	if err := o.WaitPublishingApp("raw", "x", 10*time.Second); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	e := cfg.NewStream("live/x", config.ModeOnDemand, o.RawURL("x"), config.DemoOrigin)
	e.StallTimeout = config.Duration(time.Second)
	e.KeyframeTimeout = config.Duration(2 * time.Second)
	e.Failback = false
	e.ProbeInterval = 0
	cfg.Streams = []config.Stream{e}
	m, h, logs := startManager(t, cfg, Params{})

	start := time.Now()
	sub := subscribe(t, h, "live/x")
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	var first *hub.Unit
	for first == nil {
		units, err := sub.Next(rctx, nil)
		if err != nil {
			t.Fatalf("no video from the backup: %v", err)
		}
		for _, u := range units {
			if u.Video {
				first = u
				break
			}
		}
	}
	took := time.Since(start)
	if !first.Key {
		t.Fatal("the first video unit is not a keyframe")
	}
	logs.wait(t, `msg="origin down".*reason="no keyframe"`, time.Second)
	logs.wait(t, `msg=failover .*reason="no keyframe"`, time.Second)
	if took < 2*time.Second {
		t.Fatalf("video after %v: before the keyframe timeout, so not from the backup", took)
	}
	// The demo's "origin up" is counted right after its first unit, which
	// the viewer may have seen first.
	if st := waitUp(t, m, "live/x", 2*time.Second); st.Failovers != 1 || st.Origin != config.DemoOrigin {
		t.Fatalf("stats %+v, want 1 failover, on the demo", st)
	}
	t.Logf("first keyframe after %v (keyframe_timeout 2s)", took)
}
