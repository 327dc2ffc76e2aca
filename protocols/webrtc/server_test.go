package webrtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/internal/whepclient"
	"github.com/liveedge/liveedge/protocols/demo"
)

var loopbackOnly = CandidatePolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("LIVEEDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testServer runs a hub with the demo clip on live/demo and a WebRTC
// server on a free loopback UDP port.
func testServer(t *testing.T, mod func(*Params)) (*Server, *hub.Hub) {
	t.Helper()
	log := testLogger(t)
	h := hub.New(hub.Params{Logger: log, StartTimeout: 300 * time.Millisecond})
	clip, err := demo.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		demo.Run(ctx, h, "live/demo", clip, log) //nolint:errcheck
	}()
	p := Params{Hub: h, Logger: log, UDPHost: "127.0.0.1", Remote: loopbackOnly, PeerTimeout: 3 * time.Second,
		StartDelay: 60 * time.Millisecond}
	if mod != nil {
		mod(&p)
	}
	s, err := New(p)
	if err != nil {
		cancel()
		wg.Wait()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		cancel()
		wg.Wait()
		h.Close()
	})
	return s, h
}

// play connects a client to stream through s.Offer.
func play(t *testing.T, s *Server, stream string) (*whepclient.Client, Answer) {
	t.Helper()
	c, err := whepclient.New(whepclient.Options{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.Start()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	ans, err := s.Offer(context.Background(), Offer{Stream: stream, SDP: offer, Remote: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Answer(ans.SDP); err != nil {
		t.Fatal(err)
	}
	return c, ans
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestPlayStartsOnKeyframe(t *testing.T) {
	s, h := testServer(t, nil)
	// Let the stream have a GOP in its cache.
	time.Sleep(500 * time.Millisecond)
	c, ans := play(t, s, "live/demo")
	if !strings.Contains(ans.SDP, "127.0.0.1") || ans.ID == "" || ans.ETag == "" {
		t.Fatalf("answer: id %q etag %q sdp:\n%s", ans.ID, ans.ETag, ans.SDP)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFrames(ctx, 60); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.VideoCodec != "video/H264" {
		t.Fatalf("codec %q", st.VideoCodec)
	}
	if st.First == nil || !st.First.IsIDR() {
		t.Fatalf("first complete frame is not an IDR with SPS/PPS: %+v", st.First)
	}
	if st.AudioPkts != 0 {
		t.Fatalf("got %d audio packets of an AAC stream", st.AudioPkts)
	}
	t.Logf("TTFF %v, %d frames (%d incomplete)", st.TTFF, st.Frames, st.Incomplete)
	if st.TTFF <= 0 || st.TTFF > 2*time.Second {
		t.Fatalf("TTFF %v", st.TTFF)
	}
	if in, _ := h.Stream("live/demo"); in.Viewers["webrtc"] != 1 {
		t.Fatalf("hub viewers %v, want webrtc: 1", in.Viewers)
	}

	// Frames keep arriving at the stream's pace.
	n := c.Stats().Frames
	time.Sleep(time.Second)
	if got := c.Stats().Frames - n; got < 15 {
		t.Fatalf("%d frames in a second", got)
	}
	// The peer's RTP bytes count as the stream's bytes out: at least a
	// header and a byte for each packet the client got, at a rate near
	// the stream's (video only: the AAC audio is not sent).
	pkts := c.Stats().VideoPkts
	waitFor(t, "bytes out", 2*time.Second, func() bool {
		in, _ := h.Stream("live/demo")
		return in.BytesOut["webrtc"] >= uint64(13*pkts)
	})
	if in, _ := h.Stream("live/demo"); in.BitrateOut["webrtc"] < in.BitrateIn/4 || in.BitrateOut["webrtc"] > in.BitrateIn*2 {
		t.Fatalf("webrtc bitrate out %.0f, stream bitrate in %.0f", in.BitrateOut["webrtc"], in.BitrateIn)
	}

	if err := s.Remove("live/demo", ans.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("live/demo", ans.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("second remove: %v", err)
	}
	if n := s.Peers(""); n != 0 {
		t.Fatalf("%d peers after remove", n)
	}
	waitFor(t, "hub viewer gone", 2*time.Second, func() bool {
		in, _ := h.Stream("live/demo")
		return in.Viewers["webrtc"] == 0
	})
	waitFor(t, "feed stopped", 2*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.feeds) == 0
	})
}

func TestManyPeersShareOneFeed(t *testing.T) {
	s, _ := testServer(t, nil)
	var clients []*whepclient.Client
	for i := 0; i < 3; i++ {
		c, _ := play(t, s, "live/demo")
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range clients {
		if err := c.WaitFrames(ctx, 20); err != nil {
			t.Fatal(err)
		}
		if f := c.Stats().First; f == nil || !f.IsIDR() {
			t.Fatalf("first frame %+v", f)
		}
	}
	s.mu.Lock()
	feeds := len(s.feeds)
	s.mu.Unlock()
	if feeds != 1 || s.Peers("live/demo") != 3 {
		t.Fatalf("%d feeds, %d peers", feeds, s.Peers("live/demo"))
	}
}

func TestPLIResendsKeyframeFromCache(t *testing.T) {
	s, _ := testServer(t, nil)
	c, _ := play(t, s, "live/demo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFrames(ctx, 10); err != nil {
		t.Fatal(err)
	}
	before := len(c.Frames())
	keysBefore := 0
	for _, f := range c.Frames() {
		if f.IsIDR() {
			keysBefore++
		}
	}
	if err := c.SendPLI(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "key resend", 3*time.Second, func() bool { return s.Stats().KeyResends == 1 })
	if err := c.WaitFrames(ctx, before+5); err != nil {
		t.Fatal(err)
	}
	keys := 0
	for _, f := range c.Frames() {
		if f.IsIDR() {
			keys++
		}
	}
	if keys <= keysBefore {
		t.Fatalf("no keyframe after the PLI (%d before, %d after)", keysBefore, keys)
	}
	if st := s.Stats(); st.PLIs != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Timestamps stay monotonic across the re-sent GOP.
	fs := c.Frames()
	for i := 1; i < len(fs); i++ {
		if int32(fs[i].Timestamp-fs[i-1].Timestamp) <= 0 {
			t.Fatalf("timestamp went back at frame %d: %d after %d", i, fs[i].Timestamp, fs[i-1].Timestamp)
		}
	}
}

func TestOfferErrorsLeaveNothing(t *testing.T) {
	s, h := testServer(t, nil)
	c, err := whepclient.New(whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	noVideo := strings.ReplaceAll(good, "m=video", "m=text")
	noH264 := strings.ReplaceAll(good, "H264/90000", "VP8/90000")
	for _, tc := range []struct {
		name, stream, sdp string
		want              error
	}{
		{"garbage", "live/demo", "hello", ErrBadOffer},
		{"empty", "live/demo", "", ErrBadOffer},
		{"no video", "live/demo", noVideo, ErrNoH264},
		{"no h264", "live/demo", noH264, ErrNoH264},
		{"unknown stream", "live/nothing", good, hub.ErrNotFound},
		{"bad name", "nothing", good, hub.ErrInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Offer(context.Background(), Offer{Stream: tc.stream, SDP: tc.sdp})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if n := s.Peers(""); n != 0 {
		t.Fatalf("%d peers", n)
	}
	if in, _ := h.Stream("live/demo"); in.Viewers["webrtc"] != 0 {
		t.Fatalf("viewers %v", in.Viewers)
	}
	s.mu.Lock()
	feeds := len(s.feeds)
	s.mu.Unlock()
	if feeds != 0 {
		t.Fatalf("%d feeds left", feeds)
	}
}

func TestDeadPeerRemoved(t *testing.T) {
	s, _ := testServer(t, func(p *Params) { p.PeerTimeout = 700 * time.Millisecond })
	c, err := whepclient.New(whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	// The client never applies the answer: ICE never connects.
	if _, err := s.Offer(context.Background(), Offer{Stream: "live/demo", SDP: offer}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "dead peer removed", 5*time.Second, func() bool { return s.Peers("") == 0 })
	if st := s.Stats(); st.Dead != 1 || st.Removed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerCloseEndsPeers(t *testing.T) {
	s, _ := testServer(t, nil)
	c, _ := play(t, s, "live/demo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFrames(ctx, 5); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := s.Peers(""); n != 0 {
		t.Fatalf("%d peers after close", n)
	}
	if _, err := s.Offer(context.Background(), Offer{Stream: "live/demo", SDP: "v=0"}); err == nil {
		t.Fatal("offer after close succeeded")
	}
}

// TestKickedPeerRemoved: a peer is a hub session; kicking it through the
// hub removes the peer, and its time to first frame was recorded.
func TestKickedPeerRemoved(t *testing.T) {
	s, h := testServer(t, nil)
	c, _ := play(t, s, "live/demo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFrames(ctx, 5); err != nil {
		t.Fatal(err)
	}
	var id uint64
	for _, ss := range h.Sessions() {
		if ss.Protocol == "webrtc" && ss.Stream == "live/demo" {
			id = ss.ID
		}
	}
	if id == 0 {
		t.Fatalf("no webrtc session in %+v", h.Sessions())
	}
	if n := h.Counters().TTFF["webrtc"].Count; n != 1 {
		t.Fatalf("webrtc TTFF observations: %d", n)
	}
	if err := h.Kick(id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "kicked peer removed", 5*time.Second, func() bool { return s.Peers("") == 0 })
}

// TestICETCP: a client that can only use TCP connects through the ICE-TCP
// port and starts on a keyframe; the answer offers a passive TCP host
// candidate on loopback.
func TestICETCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s, _ := testServer(t, func(p *Params) { p.TCPPort = port })
	if s.TCPAddr() == nil {
		t.Fatal("ICE-TCP not listening")
	}
	c, err := whepclient.New(whepclient.Options{TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Start()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	ans, err := s.Offer(context.Background(), Offer{Stream: "live/demo", SDP: offer})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ans.SDP, fmt.Sprintf("127.0.0.1 %d typ host tcptype passive", port)) {
		t.Fatalf("no passive TCP candidate on port %d in the answer:\n%s", port, ans.SDP)
	}
	if err := c.Answer(ans.SDP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFrames(ctx, 25); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.First == nil || !st.First.IsIDR() {
		t.Fatalf("first frame %+v", st.First)
	}
}

// TestICETCPPortBusy: a TCP port that cannot be opened leaves ICE-TCP off
// and UDP working.
func TestICETCPPortBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, _ := testServer(t, func(p *Params) { p.TCPPort = ln.Addr().(*net.TCPAddr).Port })
	if s.TCPAddr() != nil {
		t.Fatal("ICE-TCP listening on a busy port")
	}
	c, _ := play(t, s, "live/demo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFrames(ctx, 5); err != nil {
		t.Fatal(err)
	}
}

// TestNACKAnsweredFromHistory: a NACK for a recent video packet makes the
// server send it again (from the peer's history of the stream's shared
// payloads); one for a packet beyond the history is not answered. (The
// client's SRTP replay protection drops a copy of a packet it already
// has, so the resend is counted on the server side.)
func TestNACKAnsweredFromHistory(t *testing.T) {
	s, _ := testServer(t, func(p *Params) { p.NACKHistory = 64 })
	c, _ := play(t, s, "live/demo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFrames(ctx, 10); err != nil {
		t.Fatal(err)
	}
	seq, _ := c.LastVideoSeq()
	if err := c.SendNACK(seq, seq-1000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NACK answered", 5*time.Second, func() bool { return s.Stats().Resent >= 1 })
	if st := s.Stats(); st.NACKs != 1 || st.Resent != 1 {
		t.Fatalf("stats %+v, want 1 NACK and exactly 1 packet resent", st)
	}
}

// TestSenderReports: the writer sends an RTCP sender report about once a
// second for the video it sent: its SSRC, counts that grow, an NTP time
// of now, and an RTP time close to the video's (lip sync and the
// receiver's round-trip estimate depend on them).
func TestSenderReports(t *testing.T) {
	s, _ := testServer(t, nil)
	c, _ := play(t, s, "live/demo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFrames(ctx, 5); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two sender reports", 5*time.Second, func() bool {
		srs, _ := c.SenderReports()
		return len(srs) >= 2
	})
	srs, lastTS := c.SenderReports()
	ssrc := c.VideoSSRC()
	a, b := srs[len(srs)-2], srs[len(srs)-1]
	if b.SSRC != ssrc || a.SSRC != ssrc {
		t.Fatalf("reports for SSRC %d, %d, want the video's %d", a.SSRC, b.SSRC, ssrc)
	}
	if b.PacketCount <= a.PacketCount || b.OctetCount <= a.OctetCount {
		t.Fatalf("counts did not grow: %+v then %+v", a, b)
	}
	ntpSecs := func(v uint64) float64 { return float64(v>>32) + float64(v&0xffffffff)/(1<<32) - 2208988800 }
	now := float64(time.Now().UnixNano()) / 1e9
	if d := now - ntpSecs(b.NTPTime); d < 0 || d > 3 {
		t.Fatalf("NTP time %.3f, now %.3f", ntpSecs(b.NTPTime), now)
	}
	// RTP and NTP times advance together (90 kHz), and the RTP time is
	// within a second of the video the client received.
	dNTP := ntpSecs(b.NTPTime) - ntpSecs(a.NTPTime)
	dRTP := float64(int32(b.RTPTime-a.RTPTime)) / 90000
	if math.Abs(dRTP-dNTP) > 0.2 {
		t.Fatalf("RTP time advanced %.3f s while NTP time advanced %.3f s", dRTP, dNTP)
	}
	if d := math.Abs(float64(int32(lastTS-b.RTPTime)) / 90000); d > 1 {
		t.Fatalf("report RTP time %d is %.2f s from the video's %d", b.RTPTime, d, lastTS)
	}
}
