package config

import (
	"strings"
	"testing"
)

func TestHooksDefaultsAndParse(t *testing.T) {
	d := Default()
	want := HooksConfig{Timeout: Duration(2e9), CacheTTL: Duration(30e9), MaxConcurrency: 16,
		Failure: FailureClosed, NoneReaderDelay: Duration(10e9)}
	if d.Hooks != want || d.Hooks.Enabled() {
		t.Fatalf("default hooks = %+v", d.Hooks)
	}
	c := mustParse(t, `
hooks:
  on_publish: http://auth.example/on_publish
  on_play: https://auth.example/on_play
  on_stream_changed: http://127.0.0.1:8000/changed
  on_stream_none_reader: http://127.0.0.1:8000/none
  on_stream_not_found: http://127.0.0.1:8000/nf
  timeout: 500ms
  cache_ttl: 0
  max_concurrency: 4
  failure: open
  none_reader_delay: 3s
  media_server_id: edge-1
`)
	want = HooksConfig{OnPublish: "http://auth.example/on_publish", OnPlay: "https://auth.example/on_play",
		OnStreamChanged: "http://127.0.0.1:8000/changed", OnStreamNoneReader: "http://127.0.0.1:8000/none",
		OnStreamNotFound: "http://127.0.0.1:8000/nf", Timeout: Duration(500e6), MaxConcurrency: 4,
		Failure: FailureOpen, NoneReaderDelay: Duration(3e9), MediaServerID: "edge-1"}
	if c.Hooks != want || !c.Hooks.Enabled() {
		t.Fatalf("hooks = %+v, want %+v", c.Hooks, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Keys the file omits keep their defaults.
	c = mustParse(t, "hooks: {on_play: \"http://x/\"}\n")
	if c.Hooks.Timeout != DefaultHookTimeout || c.Hooks.Failure != FailureClosed || c.Hooks.MaxConcurrency != 16 {
		t.Fatalf("hooks = %+v, want the defaults but on_play", c.Hooks)
	}
	if _, err := Parse([]byte("hooks: {on_plya: x}\n")); err == nil || !strings.Contains(err.Error(), "on_plya") {
		t.Fatalf("unknown hooks key: %v", err)
	}
}

func TestHooksValidate(t *testing.T) {
	tests := []struct {
		name string
		set  func(h *HooksConfig)
		want string // "" = valid
	}{
		{"defaults", func(*HooksConfig) {}, ""},
		{"https", func(h *HooksConfig) { h.OnPlay = "HTTPS://a.example:8443/p?k=v" }, ""},
		{"ftp", func(h *HooksConfig) { h.OnPlay = "ftp://x" }, `hooks.on_play: "ftp://x" is not an http(s) URL`},
		{"no host", func(h *HooksConfig) { h.OnPublish = "http:///p" }, `hooks.on_publish: "http:///p" is not an http(s) URL`},
		{"relative", func(h *HooksConfig) { h.OnStreamChanged = "/hook" }, `hooks.on_stream_changed: "/hook" is not`},
		{"opaque", func(h *HooksConfig) { h.OnStreamNoneReader = "http:x" }, `hooks.on_stream_none_reader: "http:x" is not`},
		{"garbage", func(h *HooksConfig) { h.OnStreamNotFound = "http://[::1" }, `hooks.on_stream_not_found:`},
		{"timeout", func(h *HooksConfig) { h.Timeout = 0 }, "hooks.timeout: must be > 0"},
		{"cache_ttl", func(h *HooksConfig) { h.CacheTTL = -1 }, "hooks.cache_ttl: must be >= 0"},
		{"concurrency", func(h *HooksConfig) { h.MaxConcurrency = 0 }, "hooks.max_concurrency: must be >= 1"},
		{"failure", func(h *HooksConfig) { h.Failure = "maybe" }, `hooks.failure: "maybe" is not one of closed, open`},
		{"delay", func(h *HooksConfig) { h.NoneReaderDelay = 0 }, "hooks.none_reader_delay: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.set(&c.Hooks)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestHooksRedacted(t *testing.T) {
	c := Default()
	c.Hooks.OnPlay = "https://user:pw@auth.example/on_play?secret=s3"
	c.Hooks.OnPublish = "http://auth.example/on_publish"
	r := c.Redacted()
	if strings.Contains(r.Hooks.OnPlay, "pw") || strings.Contains(r.Hooks.OnPlay, "s3") || !strings.Contains(r.Hooks.OnPlay, "auth.example/on_play") {
		t.Fatalf("redacted on_play = %q", r.Hooks.OnPlay)
	}
	if r.Hooks.OnPublish != c.Hooks.OnPublish {
		t.Fatalf("redacted on_publish = %q, want it unchanged", r.Hooks.OnPublish)
	}
	if c.Hooks.OnPlay != "https://user:pw@auth.example/on_play?secret=s3" {
		t.Fatalf("Redacted modified the original: %q", c.Hooks.OnPlay)
	}
}
