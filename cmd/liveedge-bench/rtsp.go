package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// rtspKind plays RTSP over TCP (RTP interleaved in the RTSP connection)
// with gortsplib's client: DESCRIBE, SETUP of the H.264 media only, PLAY.
// Each access unit is rebuilt from its RTP packets with gortsplib's
// depacketizer and reported when its last packet (the marker) arrives:
// TTFF is the dial start to that moment for the first frame, latency the
// publisher clock (SEI) to it.
type rtspKind struct{}

func (rtspKind) name() string     { return "RTSP" }
func (rtspKind) listener() string { return "rtsp" }

const (
	rtspSetupTimeout = 10 * time.Second // dial to the first frame
	rtspReadTimeout  = 5 * time.Second  // no packet for this long ends the viewer
)

// DESIGN.md targets for RTSP (CPU and memory as RTMP's: the bench has no
// RTSP-specific ones).
const targetRTSPTTFFp95 = 100 // ms

func (rtspKind) defaults() kindDefaults {
	// No 1000-viewer run: each gortsplib client costs the bench more than
	// its own minimal RTMP client, and at 1000 viewers @500k the server
	// and the bench together saturate this 2-core machine.
	return kindDefaults{runs: "100@2M,300@2M"}
}

func (rtspKind) targetsLine() string {
	return fmt.Sprintf("targets (DESIGN.md, RTSP over TCP): TTFF p95 ≤%dms, latency p99 ≤%dms, key-first 100%%, 0 stalls; cpu/rss marked against the RTMP/FLV targets; * = misses its target",
		targetRTSPTTFFp95, targetLatencyP99)
}

func (rtspKind) tableColumns() []column {
	cols := make([]column, len(columns))
	copy(cols, columns)
	for i := range cols {
		if cols[i].head == "ttff p95" {
			cols[i].miss = func(v float64) bool { return v > targetRTSPTTFFp95 }
		}
	}
	return cols
}

func (rtspKind) play(ctx context.Context, addr, stream string, v *viewer) error {
	u, err := base.ParseURL("rtsp://" + addr + "/" + stream)
	if err != nil {
		return err
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{
		Scheme:      u.Scheme,
		Host:        u.Host,
		Transport:   &tcp,
		ReadTimeout: rtspReadTimeout,
		UserAgent:   "liveedge-bench",
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			d := net.Dialer{Timeout: rtspSetupTimeout}
			nc, err := d.DialContext(ctx, network, address)
			if err != nil {
				return nil, err
			}
			return &atomicCountConn{Conn: nc, n: &v.bytes}, nil
		},
	}
	if err := c.Start2(); err != nil {
		return err
	}
	// The packet callbacks run on the client's goroutines: they report to
	// v under mu, and not after closed is set, so that every v.frame
	// happens before play returns.
	var mu sync.Mutex
	closed := false
	defer func() {
		c.Close()
		mu.Lock()
		closed = true
		mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()

	desc, _, err := c.Describe(u)
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	v.mark("describe")
	var h264 *format.H264
	medi := desc.FindFormat(&h264)
	if medi == nil {
		return errors.New("describe: no H.264 media")
	}
	dec, err := h264.CreateDecoder()
	if err != nil {
		return err
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	v.mark("setup")
	c.OnPacketRTP(medi, h264, func(pkt *rtp.Packet) {
		au, err := dec.Decode(pkt)
		if err != nil {
			return // more packets needed, or a fragment without its start
		}
		now := time.Now()
		idr, pub, hasPub := nalusInfo(au)
		mu.Lock()
		if !closed {
			v.frame(now, idr, pub, hasPub)
		}
		mu.Unlock()
	})
	// No mark after PLAY: the first frame can arrive before Play returns;
	// the "first frame" step holds the PLAY round trip.
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	err = c.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// atomicCountConn adds the bytes read from a connection to n.
type atomicCountConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *atomicCountConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(uint64(n))
	return n, err
}
