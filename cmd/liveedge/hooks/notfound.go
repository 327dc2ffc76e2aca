package hooks

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/cmd/liveedge/source"
)

// NotFoundPayload is the body of on_stream_not_found. liveedge learns of
// the stream from its source manager, which does not know the viewer: the
// body names the stream only.
type NotFoundPayload struct {
	MediaServerID string `json:"mediaServerId"`
	App           string `json:"app"`
	Stream        string `json:"stream"`
	Vhost         string `json:"vhost"`
	Schema        string `json:"schema"`
}

// NotFound takes the source manager's unknown streams
// (source.Params.OnUnknown): on_stream_not_found is called at once on its
// own goroutine, one call per stream at a time, so that a viewer waiting
// for the stream gets it if the hook names an origin. It never blocks.
func (h *Hooks) NotFound(name string) {
	if h.conf().cfg.OnStreamNotFound == "" {
		return
	}
	h.mu.Lock()
	busy := h.closed || h.finding[name] || len(h.finding) >= 4*h.conf().cfg.MaxConcurrency
	if !busy {
		h.finding[name] = true
		h.wg.Add(1)
	}
	h.mu.Unlock()
	if busy {
		return
	}
	go func() {
		defer h.wg.Done()
		defer func() {
			h.mu.Lock()
			delete(h.finding, name)
			h.mu.Unlock()
		}()
		h.findStream(h.ctx, name)
	}()
}

func (h *Hooks) findStream(ctx context.Context, name string) {
	app, stream := splitName(name)
	body := NotFoundPayload{MediaServerID: h.conf().serverID, App: app, Stream: stream, Vhost: DefaultVhost, Schema: "rtmp"}
	r, ok := h.event(ctx, "on_stream_not_found", h.conf().cfg.OnStreamNotFound, name, body)
	if !ok || r.Code != 0 || r.URL == "" {
		return
	}
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" || !pullScheme(u.Scheme) {
		h.log.Warn("on_stream_not_found: url is not an rtmp(s) or rtsp(s) URL, ignored", "stream", name)
		return
	}
	h.mu.Lock()
	p := h.puller
	h.mu.Unlock()
	if p == nil {
		return
	}
	err = p.AddProxy(source.Proxy{Stream: name, Origins: []string{r.URL}, Mode: config.ModeOnDemand})
	if err != nil && !errors.Is(err, source.ErrProxyExists) {
		h.log.Warn("on_stream_not_found: origin refused", "stream", name, "err", err)
		return
	}
	if err == nil {
		h.mu.Lock()
		h.proxies[name] = true
		h.mu.Unlock()
		h.log.Info("on_stream_not_found: pulling on demand", "stream", name, "origin", u.Scheme+"://"+u.Host+u.Path)
	}
	p.Want(name)
}

func pullScheme(s string) bool {
	switch strings.ToLower(s) {
	case "rtmp", "rtmps", "rtsp", "rtsps":
		return true
	}
	return false
}

// forgetProxy removes the pull that on_stream_not_found added for name
// once its stream ended, so that the next viewer asks the hook again.
func (h *Hooks) forgetProxy(name string) {
	h.mu.Lock()
	added := h.proxies[name]
	delete(h.proxies, name)
	p := h.puller
	h.mu.Unlock()
	if !added || p == nil {
		return
	}
	h.enqueue("remove_proxy", name, func(context.Context) {
		if err := p.RemoveProxy(name); err != nil && !errors.Is(err, source.ErrNoProxy) {
			h.log.Warn("removing the pull of on_stream_not_found", "stream", name, "err", err)
		}
	})
}
