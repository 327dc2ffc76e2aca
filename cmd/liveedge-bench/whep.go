package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/liveedge/liveedge/internal/whepclient"
)

// whepKind plays WebRTC over WHEP with the repository's pion client
// (internal/whepclient), one PeerConnection per viewer: POST the offer to
// /<app>/<stream>/whep, apply the answer, then receive H.264 over RTP on
// loopback. The client rebuilds each access unit from its RTP packets;
// TTFF is the dial start (PeerConnection creation) to the last packet of
// the first complete keyframe (SPS, PPS and an IDR slice); key-first
// whether that was the first complete frame at all. A viewer whose first
// frames are not decodable sends a PLI, as a browser would, and its TTFF
// includes the round trip. Latency is the publisher clock (SEI) to the
// last packet of a frame.
//
// Each pion peer costs the bench process CPU (SRTP, RTCP, its goroutines):
// the runs are smaller than RTMP's, and the server's CPU is measured from
// its own pid as for every kind. The server drops filler-data NAL units
// when it packetizes (they carry no picture), so a peer receives the
// clip's own bitrate, not the publisher's padded one (recv/peer counts
// the H.264 bytes of complete frames, without RTP and SRTP overhead).
type whepKind struct{}

func (whepKind) name() string     { return "WHEP" }
func (whepKind) listener() string { return "http" }

const (
	whepSetupTimeout = 10 * time.Second       // offer to connected
	whepCloseTimeout = 2 * time.Second        // the DELETE that ends a session
	whepPLIInterval  = 300 * time.Millisecond // between two keyframe requests of one viewer
)

// DESIGN.md targets for WHEP.
const (
	targetWHEPCPUPerPeer = 0.3 // % of a core
	targetWHEPRSSPerPeer = 300 // KiB
	targetWHEPTTFFp95    = 200 // ms, ICE and DTLS included
	targetWHEPLatencyP99 = 20  // ms
)

func (whepKind) configExtra() string { return loopbackWebRTC() }

// loopbackWebRTC is the webrtc section of every bench server with an http
// listener: the media port on loopback only, a free UDP port on 127.0.0.1
// (host candidates from that address), client candidates accepted only
// from 127.0.0.0/8, and no ICE-TCP (the bench's peers use UDP). Without
// it the server binds the default port 8189 (UDP and TCP) on every
// address, which another server on the machine may hold.
func loopbackWebRTC() string {
	port := 8189
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		port = c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
	}
	return fmt.Sprintf("webrtc: {udp_port: %d, udp_host: 127.0.0.1, tcp_port: 0, remote_candidates: {allow: [127.0.0.0/8]}}\n", port)
}

func (whepKind) defaults() kindDefaults {
	// Smaller than RTMP's: 50 pion peers already take a good share of
	// the bench's CPU. Batches of 10, so that a peer's ICE and DTLS are
	// not queued behind 49 others in the bench process.
	return kindDefaults{runs: "10@2M,50@2M", warmup: 2 * time.Second, baseline: 3 * time.Second,
		settle: 3 * time.Second, window: 8 * time.Second, drain: time.Second, solo: 5, batch: 10}
}

func (whepKind) targetsLine() string {
	return fmt.Sprintf("targets (DESIGN.md, WHEP): cpu/peer ≤%.1f%%, TTFF p95 ≤%dms (ICE + DTLS included), latency p99 ≤%dms, key-first 100%%, ≤%dKiB/peer, 0 stalls; * = misses its target",
		targetWHEPCPUPerPeer, targetWHEPTTFFp95, targetWHEPLatencyP99, targetWHEPRSSPerPeer)
}

func (whepKind) tableColumns() []column {
	return []column{
		{"bitrate", func(r *result) float64 { return float64(r.BitrateBps) }, fmtRate, nil},
		{"recv/peer", func(r *result) float64 { return float64(r.RecvBps) }, fmtRate, nil},
		{"cpu/peer", func(r *result) float64 { return float64(r.CPUPerViewer) }, fmtF(3, "%"),
			func(v float64) bool { return v > targetWHEPCPUPerPeer }},
		{"rss/peer", func(r *result) float64 { return float64(r.RSSPerViewer) }, fmtF(1, "KiB"),
			func(v float64) bool { return v > targetWHEPRSSPerPeer }},
		{"ttff p50", func(r *result) float64 { return float64(r.TTFFp50) }, fmtF(1, "ms"), nil},
		{"ttff p95", func(r *result) float64 { return float64(r.TTFFp95) }, fmtF(1, "ms"),
			func(v float64) bool { return v > targetWHEPTTFFp95 }},
		{"key-first", func(r *result) float64 { return float64(r.KeyFirstPct) }, fmtF(1, "%"),
			func(v float64) bool { return v < 100 }},
		{"lat p50", func(r *result) float64 { return float64(r.LatP50) }, fmtF(2, "ms"), nil},
		{"lat p99", func(r *result) float64 { return float64(r.LatP99) }, fmtF(2, "ms"),
			func(v float64) bool { return v > targetWHEPLatencyP99 }},
		{"stalls", func(r *result) float64 { return float64(r.Stalls) }, fmtF(0, ""),
			func(v float64) bool { return v > 0 }},
	}
}

func (whepKind) play(ctx context.Context, addr, stream string, v *viewer) error {
	// Owned by the client's video reader goroutine.
	var received uint64 // payload bytes of complete frames
	sawKey := false
	needKey := make(chan struct{}, 1)
	c, err := whepclient.New(whepclient.Options{OnFrame: func(f whepclient.Frame) {
		for _, n := range f.NALUs {
			received += uint64(len(n))
		}
		v.bytes.Store(received)
		idr, pub, hasPub := nalusInfo(f.NALUs)
		if !sawKey && !(idr && f.IsIDR()) {
			// Not decodable: ask for a keyframe, as a browser's decoder
			// would (play sends the PLI, at most every whepPLIInterval).
			v.undecodable()
			select {
			case needKey <- struct{}{}:
			default:
			}
			return
		}
		sawKey = true
		v.frame(f.At, true, pub, hasPub)
	}})
	if err != nil {
		return err
	}
	// Close waits for the reader goroutine: every v.frame happens before
	// play returns.
	defer c.Close()
	c.Start()
	offer, err := c.Offer()
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	v.mark("offer")
	sctx, cancel := context.WithTimeout(ctx, whepSetupTimeout)
	defer cancel()
	res, err := whepclient.Post(sctx, "http://"+addr+"/"+stream+"/whep", "", offer)
	if err != nil {
		return fmt.Errorf("whep: %w", err)
	}
	v.requests.Add(1)
	if res.Status != http.StatusCreated {
		return fmt.Errorf("whep: status %d: %.80s", res.Status, res.Body)
	}
	v.mark("answer")
	if res.Location != "" {
		defer func() {
			// End the session on the server at once rather than after its
			// peer timeout.
			dctx, cancel := context.WithTimeout(context.Background(), whepCloseTimeout)
			defer cancel()
			whepclient.Do(dctx, http.MethodDelete, "http://"+addr+res.Location, "", nil) //nolint:errcheck
		}()
	}
	if err := c.Answer(res.Body); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	select {
	case <-c.Connected():
		v.mark("connected")
	case <-c.Ended():
		return fmt.Errorf("peer connection failed")
	case <-sctx.Done():
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("not connected within %v", whepSetupTimeout)
	}
	var lastPLI time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.Ended():
			return fmt.Errorf("peer connection ended")
		case <-needKey:
			if time.Since(lastPLI) >= whepPLIInterval {
				lastPLI = time.Now()
				c.SendPLI() //nolint:errcheck // a lost PLI is sent again on the next frame
			}
		}
	}
}
