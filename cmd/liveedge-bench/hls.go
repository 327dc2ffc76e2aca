package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// The HLS viewer kinds: "hls" plays LL-HLS (fMP4 parts, blocking playlist
// reload), "hls-ts" classic HLS with MPEG-TS segments. Each client behaves
// like a player on its own HTTP connections: it loads the multivariant
// playlist, the media playlist, the init file, then follows the live edge,
// fetching each part (LL-HLS) or segment (TS) once as it appears. It
// decodes every fetched part or segment far enough to find the video
// frames, and reports each one with the time its part or segment finished
// arriving: TTFF is the playlist request start to the first complete part
// or segment holding a keyframe, latency the publisher clock (SEI) to the
// arrival of the part or segment that holds the frame. That is arrival
// latency; a player adds its own buffer (PART-HOLD-BACK, or three target
// durations for TS) before showing a frame.
func init() {
	viewerKinds["hls"] = hlsKind{}
	viewerKinds["hls-ts"] = hlsKind{ts: true}
}

type hlsKind struct{ ts bool }

const (
	// hlsRequestTimeout bounds one request, a blocking playlist reload
	// included.
	hlsRequestTimeout = 10 * time.Second
	// hlsTSSegment is the segment duration the bench configures for TS
	// (liveedge's default for mpegts), the unit of the TS latency target.
	hlsTSSegment = 2 * time.Second
)

func (k hlsKind) name() string {
	if k.ts {
		return "HLS-TS"
	}
	return "LL-HLS"
}

func (hlsKind) listener() string { return "http" }

// configExtra is the hls section of the bench's server configuration
// (and the http listener's WebRTC port off the default one).
func (k hlsKind) configExtra() string {
	if k.ts {
		return fmt.Sprintf("hls: {variant: mpegts, segment_duration: %v}\n", hlsTSSegment) + loopbackWebRTC()
	}
	return "hls: {variant: lowlatency}\n" + loopbackWebRTC()
}

// warm starts the stream's muxer and waits for its first playlist, so the
// 0-viewer baseline includes the muxing and the viewers join a warm stream.
func (k hlsKind) warm(ctx context.Context, addr, stream string) error {
	c := newHLSClient(ctx, &viewer{})
	defer c.close()
	index := hlsIndexURL(addr, stream)
	body, err := c.get(index)
	if err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	media, err := hlsVariantURL(index, body)
	if err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	// Wait until the playlist holds real (not gap) segments.
	for deadline := time.Now().Add(15 * time.Second); ; {
		pl, err := c.playlist(media)
		if err != nil {
			return fmt.Errorf("warm: %w", err)
		}
		real := 0
		for _, s := range pl.Segments {
			if !s.Gap {
				real++
			}
		}
		if real >= 2 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm: %d segments after 15s", real)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func hlsIndexURL(addr, stream string) string {
	return "http://" + addr + "/" + stream + "/index.m3u8"
}

func (k hlsKind) play(ctx context.Context, addr, stream string, v *viewer) error {
	if k.ts {
		// Segments arrive every segment duration: a gap is a stall when
		// it is well over one.
		v.gapLimit = hlsTSSegment * 3 / 2
	} else {
		v.gapLimit = time.Second
	}
	c := newHLSClient(ctx, v)
	defer c.close()
	index := hlsIndexURL(addr, stream)
	body, err := c.get(index)
	if err != nil {
		return err
	}
	media, err := hlsVariantURL(index, body)
	if err != nil {
		return err
	}
	v.mark("index")
	pl, err := c.playlist(media)
	if err != nil {
		return err
	}
	v.mark("playlist")
	if k.ts {
		return c.playTS(media, pl)
	}
	return c.playLL(media, pl)
}

// hlsClient is one simulated HLS player.
type hlsClient struct {
	ctx context.Context
	v   *viewer
	tr  *http.Transport
	hc  *http.Client
	buf bytes.Buffer // the last response body

	video     int    // fMP4 track ID of the video
	timescale uint32 // of the video track
	ts        tsScanner
}

func newHLSClient(ctx context.Context, v *viewer) *hlsClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &hlsClient{ctx: ctx, v: v, tr: tr, hc: &http.Client{Transport: tr}}
}

func (c *hlsClient) close() { c.tr.CloseIdleConnections() }

// get fetches u; the body stays valid until the next get.
func (c *hlsClient) get(u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(c.ctx, hlsRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.hc.Do(req)
	c.v.requests.Add(1)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	c.buf.Reset()
	n, err := c.buf.ReadFrom(res.Body)
	c.v.bytes.Add(uint64(n))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", hlsShortPath(u), res.Status)
	}
	return c.buf.Bytes(), nil
}

// hlsShortPath is u's file name, for error messages.
func hlsShortPath(u string) string {
	if p, err := url.Parse(u); err == nil {
		u = p.Path
		if p.RawQuery != "" && strings.Contains(p.RawQuery, "_HLS_") {
			u += "?_HLS_…"
		}
	}
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		u = u[i+1:]
	}
	// The muxer's names carry a random prefix; group errors without it.
	if i := strings.IndexByte(u, '_'); i == 12 {
		u = u[i+1:]
	}
	return u
}

func (c *hlsClient) playlist(u string) (*playlist.Media, error) {
	body, err := c.get(u)
	if err != nil {
		return nil, err
	}
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("media playlist: %w", err)
	}
	return &pl, nil
}

// hlsVariantURL returns the first variant's media playlist URL of a
// multivariant playlist.
func hlsVariantURL(base string, body []byte) (string, error) {
	var mv playlist.Multivariant
	if err := mv.Unmarshal(body); err != nil {
		return "", fmt.Errorf("multivariant playlist: %w", err)
	}
	if len(mv.Variants) == 0 {
		return "", errors.New("multivariant playlist without variants")
	}
	return hlsResolve(base, mv.Variants[0].URI)
}

func hlsResolve(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(r).String(), nil
}

// withQuery returns u with the LL-HLS delivery directives set.
func withDirectives(u string, msn, part int) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	q.Set("_HLS_msn", strconv.Itoa(msn))
	q.Set("_HLS_part", strconv.Itoa(part))
	p.RawQuery = q.Encode()
	return p.String()
}

// playLL follows an LL-HLS stream: from the newest independent part, it
// fetches every part as the playlist lists it, waiting for the next one
// with a blocking playlist reload.
func (c *hlsClient) playLL(media string, pl *playlist.Media) error {
	if pl.Map == nil || pl.PartInf == nil {
		return errors.New("not an LL-HLS playlist (no EXT-X-MAP or EXT-X-PART-INF)")
	}
	initURL, err := hlsResolve(media, pl.Map.URI)
	if err != nil {
		return err
	}
	b, err := c.get(initURL)
	if err != nil {
		return err
	}
	if err := c.parseInit(b); err != nil {
		return err
	}
	c.v.mark("init")
	msn, part := llStart(pl)
	for {
		for {
			ref, next, nextPart, ok := llLocate(pl, msn, part)
			if !ok {
				if msn < pl.MediaSequence {
					// Fell out of the playlist: rejoin at the live edge.
					msn, part = llStart(pl)
					continue
				}
				break
			}
			if ref != "" {
				u, err := hlsResolve(media, ref)
				if err != nil {
					return err
				}
				b, err := c.get(u)
				if err != nil {
					return err
				}
				if err := c.fmp4Frames(b, time.Now()); err != nil {
					return err
				}
			}
			msn, part = next, nextPart
		}
		if pl, err = c.playlist(withDirectives(media, msn, part)); err != nil {
			return err
		}
	}
}

// llStart returns the newest independent part of a playlist (or the newest
// segment's start).
func llStart(pl *playlist.Media) (msn, part int) {
	msn = pl.MediaSequence + len(pl.Segments)
	for i := len(pl.Parts) - 1; i >= 0; i-- {
		if pl.Parts[i].Independent {
			return msn, i
		}
	}
	for i := len(pl.Segments) - 1; i >= 0; i-- {
		s := pl.Segments[i]
		for j := len(s.Parts) - 1; j >= 0; j-- {
			if s.Parts[j].Independent {
				return pl.MediaSequence + i, j
			}
		}
		if len(s.Parts) == 0 && !s.Gap {
			return pl.MediaSequence + i, 0
		}
	}
	return msn, 0
}

// llLocate finds part (msn, part) in pl: the URI to fetch ("" to fetch
// nothing) and the position after it. ok is false when the playlist does
// not hold it yet (or any more).
func llLocate(pl *playlist.Media, msn, part int) (uri string, nextMSN, nextPart int, ok bool) {
	i := msn - pl.MediaSequence
	switch {
	case i < 0:
		return "", 0, 0, false
	case i == len(pl.Segments):
		if part < len(pl.Parts) {
			return pl.Parts[part].URI, msn, part + 1, true
		}
		return "", 0, 0, false
	case i > len(pl.Segments):
		return "", 0, 0, false
	}
	s := pl.Segments[i]
	switch {
	case s.Gap:
		return "", msn + 1, 0, true
	case part < len(s.Parts):
		return s.Parts[part].URI, msn, part + 1, true
	case len(s.Parts) > 0 || part > 0:
		// The segment is complete and its parts were fetched (or are no
		// longer listed: skip the rest of it).
		return "", msn + 1, 0, true
	}
	// An old segment listed without parts: fetch it whole.
	return s.URI, msn + 1, 0, true
}

// parseInit finds the H.264 track of an fMP4 init file.
func (c *hlsClient) parseInit(b []byte) error {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	for _, t := range in.Tracks {
		if _, ok := t.Codec.(*mp4codecs.H264); ok {
			c.video, c.timescale = t.ID, t.TimeScale
			return nil
		}
	}
	return errors.New("init: no H.264 track")
}

// fmp4Frames reports the video samples of an fMP4 part or segment that
// arrived at now.
func (c *hlsClient) fmp4Frames(b []byte, now time.Time) error {
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil {
		return fmt.Errorf("fmp4: %w", err)
	}
	for _, p := range parts {
		for _, t := range p.Tracks {
			if t.ID != c.video {
				continue
			}
			for _, s := range t.Samples {
				idr, pub, hasPub := avccInfo(s.Payload)
				c.v.frame(now, !s.IsNonSyncSample && idr, pub, hasPub)
			}
		}
	}
	return nil
}

// playTS follows a classic HLS stream: from the newest segment, it reloads
// the playlist every half target duration and fetches each new segment.
func (c *hlsClient) playTS(media string, pl *playlist.Media) error {
	next := pl.MediaSequence + len(pl.Segments) - 1
	for {
		if next < pl.MediaSequence {
			next = pl.MediaSequence + len(pl.Segments) - 1
		}
		for ; next < pl.MediaSequence+len(pl.Segments); next++ {
			s := pl.Segments[next-pl.MediaSequence]
			if s.Gap {
				continue
			}
			u, err := hlsResolve(media, s.URI)
			if err != nil {
				return err
			}
			b, err := c.get(u)
			if err != nil {
				return err
			}
			if err := c.tsFrames(b, time.Now()); err != nil {
				return err
			}
		}
		td := time.Duration(pl.TargetDuration) * time.Second
		if td <= 0 {
			td = time.Second
		}
		if err := sleepCtx(c.ctx, td/2); err != nil {
			return err
		}
		var err error
		if pl, err = c.playlist(media); err != nil {
			return err
		}
	}
}

// tsFrames reports the H.264 access units of an MPEG-TS segment that
// arrived at now.
func (c *hlsClient) tsFrames(b []byte, now time.Time) error {
	return c.ts.scan(b, func(au []byte) {
		idr, pub, hasPub := annexBInfo(au)
		c.v.frame(now, idr, pub, hasPub)
	})
}
