// Package origin holds what the origin pull clients (protocols/rtmp,
// protocols/rtsp) share with the code that runs them: the errors a pull
// ends with and the default timeouts. A pull that ends before the stream
// took any media wraps ErrConnectFailed, one that ends after wraps
// ErrLost; the cause (ErrStalled, ErrNoKeyframe, ErrOriginStatus,
// ErrOriginClosed, a network error) is wrapped too. Test with errors.Is,
// whatever the protocol.
package origin

import (
	"errors"
	"time"
)

// Errors of an origin pull.
var (
	ErrConnectFailed = errors.New("origin connect failed")
	ErrLost          = errors.New("origin lost")
	ErrStalled       = errors.New("no media within the stall timeout")
	ErrOriginStatus  = errors.New("origin sent an error status")
	ErrOriginClosed  = errors.New("origin closed the connection")
	ErrNoKeyframe    = errors.New("no decodable media (keyframe) within the keyframe timeout")
)

// Default timeouts of a pull.
const (
	DefaultStallTimeout   = 2 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	// DefaultKeyframeTimeout bounds how long an origin may send media the
	// hub cannot use (video that never reaches a keyframe).
	DefaultKeyframeTimeout = 10 * time.Second
)
