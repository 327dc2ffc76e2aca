package hooks

import (
	"errors"
	"fmt"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
)

// AccessPayload is the body of on_publish and on_play. Params is the
// client's URL query as it sent it (its token included: it is the
// client's, for the hook to check); IP and Port are the client's; ID is
// the client's address; Schema is the protocol (rtmp, rtsp, hls, flv,
// ws-flv, webrtc).
type AccessPayload struct {
	MediaServerID string `json:"mediaServerId"`
	App           string `json:"app"`
	Stream        string `json:"stream"`
	Vhost         string `json:"vhost"`
	Schema        string `json:"schema"`
	Params        string `json:"params"`
	IP            string `json:"ip"`
	Port          int    `json:"port"`
	ID            string `json:"id"`
}

// answer is one admission decision, shared by the callers that asked for
// it at the same time and cached for cache_ttl.
type answer struct {
	done    chan struct{}
	err     error // nil (allowed), ErrDenied or a failure
	expires time.Time
}

// Authorizer returns the hub's admission: base (the token policy) first,
// then the on_publish / on_play hook.
func (h *Hooks) Authorizer(base hub.Authorizer) hub.SessionAuthorizer {
	return &authorizer{base: base, h: h}
}

type authorizer struct {
	base hub.Authorizer
	h    *Hooks
}

func (a *authorizer) Check(r auth.Request) error { return a.CheckSession(r, hub.Session{}) }

func (a *authorizer) CheckSession(r auth.Request, s hub.Session) error {
	if a.base != nil {
		if err := a.base.Check(r); err != nil {
			return err
		}
	}
	return a.h.admit(r, s)
}

// admit asks the action's hook, through the cache.
func (h *Hooks) admit(r auth.Request, s hub.Session) error {
	var hook, url string
	switch r.Action {
	case auth.Publish:
		hook, url = "on_publish", h.conf().cfg.OnPublish
	case auth.Play:
		hook, url = "on_play", h.conf().cfg.OnPlay
	}
	if url == "" {
		return nil
	}
	ip, port := clientAddr(r.ClientIP, s.Remote)
	token := r.Query.Get(h.tokenKey)
	if token == "" {
		token = r.Bearer
	}
	key := fmt.Sprintf("%d\x00%s\x00%s\x00%s", r.Action, r.Stream, token, ip)
	err := h.cached(key, func() error {
		app, stream := splitName(r.Stream)
		body := AccessPayload{MediaServerID: h.conf().serverID, App: app, Stream: stream, Vhost: DefaultVhost,
			Schema: s.Protocol, Params: r.Query.Encode(), IP: ip, Port: port, ID: s.Remote}
		rep, err := h.call(h.ctx, url, body)
		h.log.Debug("admission hook called", "hook", hook, "stream", r.Stream, "params", redactQuery(r.Query, h.tokenKey),
			"ip", ip, "code", rep.Code, "err", err)
		if err != nil {
			return err
		}
		if rep.Code != 0 {
			return fmt.Errorf("%w: %s code %d: %q", ErrDenied, hook, rep.Code, rep.Msg)
		}
		return nil
	})
	if err == nil || isDenied(err) {
		return err
	}
	if h.conf().cfg.Failure == config.FailureOpen {
		if h.failLog.ok() {
			h.log.Warn("admission hook failed, allowed (hooks.failure: open)", "hook", hook, "stream", r.Stream, "err", err)
		}
		return nil
	}
	return fmt.Errorf("%s (hooks.failure: closed): %w", hook, err)
}

func isDenied(err error) bool { return errors.Is(err, ErrDenied) }

// cached returns the answer for key: a fresh cached one, the one being
// asked for by another caller (waited for), or a new one from ask.
// Failures are not cached.
func (h *Hooks) cached(key string, ask func() error) error {
	ttl := h.conf().cfg.CacheTTL.Std()
	now := time.Now()
	h.mu.Lock()
	if a := h.cache[key]; a != nil {
		select {
		case <-a.done:
			if now.Before(a.expires) {
				h.mu.Unlock()
				return a.err
			}
			delete(h.cache, key)
		default:
			h.mu.Unlock()
			return h.wait(a)
		}
	}
	if len(h.cache) >= maxCacheEntries && now.Sub(h.swept) >= time.Second {
		h.swept = now
		for k, a := range h.cache {
			select {
			case <-a.done:
				if !now.Before(a.expires) {
					delete(h.cache, k)
				}
			default:
			}
		}
	}
	var a *answer
	if len(h.cache) < maxCacheEntries {
		a = &answer{done: make(chan struct{})}
		h.cache[key] = a
	}
	h.mu.Unlock()

	err := ask()
	if a == nil {
		return err
	}
	h.mu.Lock()
	a.err = err
	if failed := err != nil && !isDenied(err); failed || ttl <= 0 {
		if h.cache[key] == a {
			delete(h.cache, key)
		}
	} else {
		a.expires = time.Now().Add(ttl)
	}
	close(a.done)
	h.mu.Unlock()
	return err
}

// wait waits for another caller's answer, no longer than the timeout.
func (h *Hooks) wait(a *answer) error {
	t := time.NewTimer(h.conf().cfg.Timeout.Std())
	defer t.Stop()
	select {
	case <-a.done:
		h.mu.Lock()
		defer h.mu.Unlock()
		return a.err
	case <-t.C:
		return fmt.Errorf("%w: timeout", ErrFailed)
	case <-h.ctx.Done():
		return fmt.Errorf("%w: %v", ErrFailed, errClosed)
	}
}
