// Package hooks calls the webhooks of the configuration's hooks section,
// ZLMediaKit-style: a JSON POST per event to an external HTTP service,
// which answers {"code":0,"msg":"success"} (0 allows; any other code
// refuses, msg being the reason).
//
// Admission hooks (on_publish, on_play) run on the viewer's goroutine,
// after the built-in token check, bounded by the timeout; their answers
// are cached per action, stream, token and client IP. Event hooks
// (on_stream_changed, on_stream_none_reader) go through a bounded queue
// and a few workers: the hub never waits for them, and a full queue drops
// the event (counted, logged at most once per 10 s). on_stream_not_found
// is called at once, on its own goroutine, because a viewer is waiting:
// a reply with a "url" makes the edge pull the stream from it on demand.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"sync"
	"time"
)

// Errors of a hook call; a failure (ErrFailed, ErrSaturated) is what the
// failure policy applies to.
var (
	// ErrDenied: the hook answered with a non-zero code.
	ErrDenied = errors.New("hook denied")
	// ErrFailed: the hook did not answer usably (an error, a timeout, a
	// status other than 200, a body that is not a reply).
	ErrFailed = errors.New("hook failed")
	// ErrSaturated: max_concurrency calls were in flight for the whole
	// timeout.
	ErrSaturated = fmt.Errorf("%w: too many hook calls in flight", ErrFailed)
)

// Reply is a hook's answer. Code 0 allows; Msg is the reason of a
// refusal. URL (on_stream_not_found) names an origin to pull from; Close
// (on_stream_none_reader) asks for the stream to end.
type Reply struct {
	Code  int    `json:"code"`
	Msg   string `json:"msg"`
	URL   string `json:"url,omitempty"`
	Close bool   `json:"close,omitempty"`
}

// maxReply bounds the body read from a hook.
const maxReply = 64 << 10

// client posts JSON to hooks with bounded concurrency.
type client struct {
	http *http.Client
	sem  chan struct{}
}

func newClient(timeout time.Duration, maxConcurrency int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = maxConcurrency
	return &client{
		http: &http.Client{Timeout: timeout, Transport: tr},
		sem:  make(chan struct{}, maxConcurrency),
	}
}

// post sends body to url and decodes the reply. It waits for a free slot
// no longer than ctx allows; a full pool is ErrSaturated.
func (c *client) post(ctx context.Context, url string, body any) (Reply, error) {
	select {
	case c.sem <- struct{}{}:
	default:
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return Reply{}, ErrSaturated
		}
	}
	defer func() { <-c.sem }()
	if ctx.Err() != nil { // the slot came as the caller's time ran out
		return Reply{}, ErrSaturated
	}
	b, err := json.Marshal(body)
	if err != nil {
		return Reply{}, fmt.Errorf("%w: %v", ErrFailed, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return Reply{}, fmt.Errorf("%w: invalid hook URL", ErrFailed)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Reply{}, fmt.Errorf("%w: timeout", ErrFailed)
		}
		// Not the *url.Error's text: the hook URL may carry a secret.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Reply{}, fmt.Errorf("%w: %v", ErrFailed, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxReply))
	if err != nil {
		return Reply{}, fmt.Errorf("%w: reading the reply: %v", ErrFailed, err)
	}
	if res.StatusCode != http.StatusOK {
		return Reply{}, fmt.Errorf("%w: HTTP status %d", ErrFailed, res.StatusCode)
	}
	var raw struct {
		Code *int `json:"code"`
		Reply
	}
	if err := json.Unmarshal(data, &raw); err != nil || raw.Code == nil {
		return Reply{}, fmt.Errorf("%w: the reply is not {\"code\":...} JSON", ErrFailed)
	}
	r := raw.Reply
	r.Code = *raw.Code
	return r, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

// every logs at most once per period; it counts what it did not log.
type every struct {
	period time.Duration
	mu     sync.Mutex
	last   time.Time
}

// ok reports whether a log line is due now.
func (e *every) ok() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < e.period {
		return false
	}
	e.last = now
	return true
}
