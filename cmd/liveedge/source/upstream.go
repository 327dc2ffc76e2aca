package source

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/origin"
	"github.com/liveedge/liveedge/protocols/rtmp"
	"github.com/liveedge/liveedge/protocols/rtsp"
)

// upstream is a playing connection to an origin, RTMP or RTSP: the result
// of a dial, consumed by Run (after an optional Preroll).
type upstream interface {
	SetOnMedia(func())
	RTT() time.Duration
	BytesIn() uint64
	Close()
	Preroll(ctx context.Context) error
	Run(ctx context.Context, p *hub.Producer) error
}

// isRTSP reports whether an origin URL is pulled over RTSP.
func isRTSP(origin string) bool {
	return strings.HasPrefix(origin, "rtsp://") || strings.HasPrefix(origin, "rtsps://")
}

// pullOptions are the settings both pull clients share.
type pullOptions struct {
	stall, keyframe, connect time.Duration
	dialer                   *net.Dialer
	log                      *slog.Logger // the pull's
}

// dialUpstream connects to origin u (already signed) over its protocol.
func dialUpstream(ctx context.Context, u string, o pullOptions) (upstream, error) {
	if isRTSP(u) {
		c, err := rtsp.DialPull(ctx, u, rtsp.PullOptions{StallTimeout: o.stall, KeyframeTimeout: o.keyframe,
			ConnectTimeout: o.connect, Dialer: o.dialer})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := rtmp.DialPull(ctx, u, rtmp.PullOptions{StallTimeout: o.stall, KeyframeTimeout: o.keyframe,
		ConnectTimeout: o.connect, Dialer: o.dialer, Logger: o.log})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// probeOrigin checks that an origin plays u, over its protocol.
func probeOrigin(ctx context.Context, u string, timeout time.Duration, dialer *net.Dialer) (time.Duration, error) {
	if isRTSP(u) {
		return rtsp.Probe(ctx, u, timeout, dialer)
	}
	return rtmp.Probe(ctx, u, timeout, dialer)
}

// errConnect wraps err as a connect failure.
func errConnect(err error) error { return fmt.Errorf("%w: %w", origin.ErrConnectFailed, err) }
