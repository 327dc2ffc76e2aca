package config

import (
	"net/url"
	"strings"
)

// Webhook failure policies (hooks.failure).
const (
	// FailureClosed denies a publish or play when its hook fails, times
	// out or is saturated.
	FailureClosed = "closed"
	// FailureOpen allows it.
	FailureOpen = "open"
)

// Defaults of the hooks section.
const (
	DefaultHookTimeout         = Duration(2e9)  // 2s
	DefaultHookCacheTTL        = Duration(30e9) // 30s
	DefaultHookMaxConcurrency  = 16
	DefaultHookNoneReaderDelay = Duration(10e9) // 10s
)

// HooksConfig configures the webhooks, ZLMediaKit-style: JSON POSTs to
// an external HTTP service for admission (on_publish, on_play) and for
// stream events. An empty URL turns that hook off.
type HooksConfig struct {
	// OnPublish and OnPlay are asked after the built-in token check
	// passed; a reply {"code":0} admits, any other code refuses.
	OnPublish string `yaml:"on_publish" json:"on_publish"`
	OnPlay    string `yaml:"on_play" json:"on_play"`
	// OnStreamChanged is told when a stream starts (regist true) and ends
	// (regist false).
	OnStreamChanged string `yaml:"on_stream_changed" json:"on_stream_changed"`
	// OnStreamNoneReader is told when a stream has had no viewer for
	// NoneReaderDelay; a reply {"code":0,"close":true} ends the stream.
	OnStreamNoneReader string `yaml:"on_stream_none_reader" json:"on_stream_none_reader"`
	// OnStreamNotFound is asked when a viewer wants a stream that has no
	// producer and no pull entry; a reply with a "url" (rtmp/rtsp) makes
	// the edge pull the stream from it, on demand.
	OnStreamNotFound string `yaml:"on_stream_not_found" json:"on_stream_not_found"`
	// Timeout bounds each hook call, waiting for a free slot included.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// CacheTTL is how long an on_play / on_publish answer is reused for
	// the same action, stream, token and client IP (0: not cached).
	CacheTTL Duration `yaml:"cache_ttl" json:"cache_ttl"`
	// MaxConcurrency bounds the hook calls in flight.
	MaxConcurrency int `yaml:"max_concurrency" json:"max_concurrency"`
	// Failure is what a failed admission hook means: "closed" (deny) or
	// "open" (allow).
	Failure string `yaml:"failure" json:"failure"`
	// NoneReaderDelay is how long a stream must have had no viewers
	// before on_stream_none_reader is called.
	NoneReaderDelay Duration `yaml:"none_reader_delay" json:"none_reader_delay"`
	// MediaServerID is the mediaServerId of every payload ("": the host
	// name).
	MediaServerID string `yaml:"media_server_id" json:"media_server_id"`
}

func defaultHooks() HooksConfig {
	return HooksConfig{
		Timeout:         DefaultHookTimeout,
		CacheTTL:        DefaultHookCacheTTL,
		MaxConcurrency:  DefaultHookMaxConcurrency,
		Failure:         FailureClosed,
		NoneReaderDelay: DefaultHookNoneReaderDelay,
	}
}

// Enabled reports whether any hook has a URL.
func (h HooksConfig) Enabled() bool {
	return h.OnPublish != "" || h.OnPlay != "" || h.OnStreamChanged != "" ||
		h.OnStreamNoneReader != "" || h.OnStreamNotFound != ""
}

// urls returns the hook URLs by their YAML key.
func (h *HooksConfig) urls() []struct {
	key string
	url *string
} {
	return []struct {
		key string
		url *string
	}{
		{"on_publish", &h.OnPublish},
		{"on_play", &h.OnPlay},
		{"on_stream_changed", &h.OnStreamChanged},
		{"on_stream_none_reader", &h.OnStreamNoneReader},
		{"on_stream_not_found", &h.OnStreamNotFound},
	}
}

// redacted returns h with the credentials of its URLs (user info, query
// values) replaced by "REDACTED".
func (h HooksConfig) redacted() HooksConfig {
	for _, e := range h.urls() {
		*e.url = redactURL(*e.url)
	}
	return h
}

func redactURL(s string) string {
	if s == "" {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "REDACTED"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// isHTTPURL reports whether s is an absolute http or https URL with a
// host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme == "http" || scheme == "https"
}

func (c *Config) validateHooks(v *validator) {
	h := &c.Hooks
	for _, e := range h.urls() {
		if *e.url != "" && !isHTTPURL(*e.url) {
			v.add("hooks."+e.key, "%q is not an http(s) URL", *e.url)
		}
	}
	v.positive("hooks.timeout", h.Timeout)
	if h.CacheTTL < 0 {
		v.add("hooks.cache_ttl", "must be >= 0 (got %s)", h.CacheTTL)
	}
	if h.MaxConcurrency < 1 {
		v.add("hooks.max_concurrency", "must be >= 1 (got %d)", h.MaxConcurrency)
	}
	v.oneOf("hooks.failure", h.Failure, FailureClosed, FailureOpen)
	v.positive("hooks.none_reader_delay", h.NoneReaderDelay)
}

// Schemas returns the ZLMediaKit schemas a stream is served in with c's
// listeners, for on_stream_changed and the ZLMediaKit API: "rtmp" (RTMP,
// and HTTP-FLV/WS-FLV, which ZLMediaKit serves from its rtmp source),
// "rtsp" (RTSP, and WebRTC) when rtsp.listen is set, and "hls" when
// http.listen is set.
func (c *Config) Schemas() []string {
	out := []string{"rtmp"}
	if c.RTSP.Enabled() {
		out = append(out, "rtsp")
	}
	if c.HTTP.Enabled() {
		out = append(out, "hls")
	}
	return out
}
