package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return c
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"rtmp.listen", c.RTMP.Listen, ":1935"},
		{"rtsp.listen", c.RTSP.Listen, ":8554"},
		{"rtsp.udp_rtp_port", c.RTSP.UDPRTPPort, 8000},
		{"http.listen", c.HTTP.Listen, ":8080"},
		{"admin.listen", c.Admin.Listen, "127.0.0.1:9997"},
		{"webrtc.udp_port", c.WebRTC.UDPPort, 8189},
		{"hub.gop_cache.max_bytes", c.Hub.GOPCache.MaxBytes, ByteSize(16 << 20)},
		{"hub.gop_cache.max_duration", c.Hub.GOPCache.MaxDuration, Duration(10 * time.Second)},
		{"hub.gop_cache.max_frames", c.Hub.GOPCache.MaxFrames, 2048},
		{"hub.slow_viewer_timeout", c.Hub.SlowViewerTimeout, Duration(10 * time.Second)},
		{"hub.max_lag", c.Hub.MaxLag, Duration(2 * time.Second)},
		{"hub.publisher_conflict", c.Hub.PublisherConflict, "refuse"},
		{"hub.start_timeout", c.Hub.StartTimeout, Duration(5 * time.Second)},
		{"auth.algorithm", c.Auth.Algorithm, "sha256"},
		{"auth.secrets", len(c.Auth.Secrets), 0},
		{"auth.publish_secrets", len(c.Auth.PublishSecrets), 0},
		{"auth.play", c.Auth.Play, false},
		{"auth.publish", c.Auth.Publish, false},
		{"auth.bind_ip", c.Auth.BindIP, false},
		{"auth.clock_skew", c.Auth.ClockSkew, Duration(30 * time.Second)},
		{"auth.expires_param", c.Auth.ExpiresParam, "expires"},
		{"auth.token_param", c.Auth.TokenParam, "token"},
		{"streams", c.Streams, []Stream{{
			Match: "live/demo", Mode: "static", Origins: []string{"demo"},
			StallTimeout: Duration(2 * time.Second), KeyframeTimeout: DefaultKeyframeTimeout, IdleClose: Duration(10 * time.Second),
			StartTimeout: Duration(5 * time.Second), Failback: true, SignTTL: DefaultSignTTL,
			ProbeInterval: DefaultProbeInterval,
		}}},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	// Default returns a fresh value each time.
	c.Streams[0].Origins[0] = "changed"
	c.RTMP.Listen = "x"
	if d := Default(); d.Streams[0].Origins[0] != "demo" || d.RTMP.Listen != ":1935" {
		t.Error("Default shares state between calls")
	}
}

func TestDefaultsRoundTrip(t *testing.T) {
	data, err := yaml.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"max_bytes: 16MiB", "max_lag: 2s", "clock_skew: 30s", "listen: 127.0.0.1:9997"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("marshaled defaults lack %q:\n%s", want, data)
		}
	}
	for name, src := range map[string]string{
		"marshaled": string(data),
		"empty":     "",
		"comments":  "# nothing here\n\n# at all\n",
		"null":      "~\n",
		"doc start": "---\n",
		"empty map": "{}\n",
	} {
		t.Run(name, func(t *testing.T) {
			got := mustParse(t, src)
			if !reflect.DeepEqual(got, Default()) {
				t.Errorf("Parse(%q) =\n%#v\nwant\n%#v", src, got, Default())
			}
		})
	}

	// A fully customised config survives a round trip too.
	c := Default()
	c.Hub.GOPCache.MaxBytes = 1500
	c.Hub.MaxLag = Duration(90 * time.Second)
	c.Auth.Secrets = map[string]string{"live": "s1", "*": "s2"}
	c.Auth.PublishSecrets = map[string]string{"live": "p1", "*": "p2"}
	yes, no := true, false
	c.Auth.Apps = map[string]AuthApp{"live": {Play: &yes, BindIP: &no, Referers: []string{"*.example.com"}}}
	c.Streams = append(c.Streams, c.NewStream("cam/*", ModeOnDemand, "rtsp://cam/$stream"))
	c.Streams[1].Failback = false
	c.Streams[1].OfflineSlate = "demo"
	data, err = yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParse(t, string(data)); !reflect.DeepEqual(got, c) {
		t.Errorf("round trip of\n%s\ngave\n%#v", data, got)
	}
}

func TestPartialFileKeepsDefaults(t *testing.T) {
	tests := []struct {
		name string
		src  string
		edit func(c *Config)
	}{
		{"rtmp only", "rtmp: {listen: \":1936\"}\n", func(c *Config) { c.RTMP.Listen = ":1936" }},
		{"leading comment and doc start", "# liveedge\n---\n# rtmp\nrtmp:\n  listen: \":1936\" # moved\n", func(c *Config) { c.RTMP.Listen = ":1936" }},
		{"crlf", "rtmp:\r\n  listen: \":1936\"\r\nwebrtc:\r\n  udp_port: 9000\r\n", func(c *Config) { c.RTMP.Listen, c.WebRTC.UDPPort = ":1936", 9000 }},
		{"disable listener", "rtsp:\n  listen: \"\"\n", func(c *Config) { c.RTSP.Listen = "" }},
		{"rtsp udp", "rtsp: {listen: \":554\", udp_rtp_port: 0}\n", func(c *Config) { c.RTSP.Listen, c.RTSP.UDPRTPPort = ":554", 0 }},
		{"nested hub key", "hub:\n  gop_cache:\n    max_frames: 100\n", func(c *Config) { c.Hub.GOPCache.MaxFrames = 100 }},
		{"null section", "hub:\nauth:\n", func(c *Config) {}},
		{"auth secrets", "auth:\n  play: true\n  secrets:\n    live: abc\n", func(c *Config) {
			c.Auth.Play = true
			c.Auth.Secrets = map[string]string{"live": "abc"}
		}},
		{"auth publish secrets", "auth:\n  publish: true\n  publish_secrets:\n    live: pub\n    \"*\": def\n", func(c *Config) {
			c.Auth.Publish = true
			c.Auth.PublishSecrets = map[string]string{"live": "pub", "*": "def"}
		}},
		{"hub start timeout reaches default stream", "hub: {start_timeout: 8s}\n", func(c *Config) {
			c.Hub.StartTimeout = Duration(8 * time.Second)
			c.Streams[0].StartTimeout = Duration(8 * time.Second)
		}},
		{"log", "log: {level: debug}\n", func(c *Config) { c.Log.Level = "debug" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Default()
			tt.edit(want)
			if got := mustParse(t, tt.src); !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%#v\nwant\n%#v", got, want)
			}
		})
	}
}

func TestStreamsReplaceDefaults(t *testing.T) {
	src := `
hub:
  start_timeout: 7s
streams:
  - match: "live/*"
    mode: on_demand
    origins:
      - rtmp://origin-a.example/live/$stream
      - rtmp://origin-b.example/live/$stream
  - match: cam/one
    mode: static
    origins: [rtsp://cam.local/one]
    stall_timeout: 500ms
    idle_close: 1m
    start_timeout: 3s
    failback: false
    offline_slate: demo
    probe_interval: 1s
    bind_address: 10.0.0.2
    bind_device: eth1
    mark: 7
  - match: "*"
    mode: publish
    stall_timeout: ~
`
	c := mustParse(t, src)
	want := []Stream{
		{
			Match: "live/*", Mode: "on_demand",
			Origins:      []string{"rtmp://origin-a.example/live/$stream", "rtmp://origin-b.example/live/$stream"},
			StallTimeout: Duration(2 * time.Second), KeyframeTimeout: DefaultKeyframeTimeout, IdleClose: Duration(10 * time.Second),
			StartTimeout: Duration(7 * time.Second), Failback: true, SignTTL: DefaultSignTTL,
			ProbeInterval: DefaultProbeInterval,
		},
		{
			Match: "cam/one", Mode: "static", Origins: []string{"rtsp://cam.local/one"},
			StallTimeout: Duration(500 * time.Millisecond), KeyframeTimeout: DefaultKeyframeTimeout, IdleClose: Duration(time.Minute),
			StartTimeout: Duration(3 * time.Second), Failback: false, OfflineSlate: "demo",
			SignTTL: DefaultSignTTL, ProbeInterval: Duration(time.Second),
			BindAddress: "10.0.0.2", BindDevice: "eth1", Mark: 7,
		},
		{
			Match: "*", Mode: "publish",
			StallTimeout: Duration(2 * time.Second), KeyframeTimeout: DefaultKeyframeTimeout, IdleClose: Duration(10 * time.Second),
			StartTimeout: Duration(7 * time.Second), Failback: true, SignTTL: DefaultSignTTL,
			ProbeInterval: DefaultProbeInterval,
		},
	}
	if !reflect.DeepEqual(c.Streams, want) {
		t.Errorf("streams =\n%#v\nwant\n%#v", c.Streams, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	for _, src := range []string{"streams: []\n", "streams:\n", "streams:\n#  - match: live/demo\n"} {
		if c := mustParse(t, src); c.Streams == nil || len(c.Streams) != 0 {
			t.Errorf("Parse(%q).Streams = %#v, want empty", src, c.Streams)
		}
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	// Aliases and merge keys work. goccy/go-yaml reports a key that
	// overrides a merged one as a duplicate, so merges may only add keys.
	src := `
origins: &origins
  - rtmp://a/live/$stream
  - rtmp://b/live/$stream
`
	if _, err := Parse([]byte(src)); err == nil || !strings.Contains(err.Error(), `"origins"`) {
		t.Errorf("unknown top-level anchor holder: err = %v", err)
	}
	src = `
streams:
  - &base
    match: live/a
    mode: on_demand
    origins: &origins [rtmp://a/live/$stream, rtmp://b/live/$stream]
    failback: false
  - match: live/b
    mode: static
    origins: *origins
  - <<: *base
`
	c := mustParse(t, src)
	if len(c.Streams) != 3 {
		t.Fatalf("streams = %#v", c.Streams)
	}
	if b := c.Streams[1]; b.Match != "live/b" || len(b.Origins) != 2 || !b.Failback {
		t.Errorf("aliased stream = %#v", b)
	}
	// The merged entry keeps the anchor's failback: false, and gets the
	// per-entry defaults for what the anchor lacks.
	if m := c.Streams[2]; m.Match != "live/a" || m.Failback || len(m.Origins) != 2 || m.StallTimeout != DefaultStallTimeout {
		t.Errorf("merged stream = %#v", m)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		want []string // substrings of the message
	}{
		{"top-level unknown key", "rtmp:\n  listen: \":1935\"\nrtmpp:\n  listen: x\n", 3, []string{`"rtmpp"`, "unknown"}},
		{"nested unknown key", "hub:\n  gop_cache:\n    max_bytes: 1MiB\n    max_size: 3\n", 4, []string{`"max_size"`}},
		{"unknown key in stream", "streams:\n  - match: live/x\n    mode: static\n    origin: [demo]\n", 4, []string{`"origin"`}},
		{"unknown key in auth app", "auth:\n  apps:\n    live:\n      play: true\n      referer: [a.com]\n", 5, []string{`"referer"`}},
		{"misspelled listen", "http: {listn: \":80\"}\n", 1, []string{`"listn"`}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", 3, []string{`"level"`}},
		{"wrong type int", "webrtc:\n  udp_port: lots\n", 2, []string{`"lots"`, "integer"}},
		{"wrong type bool", "auth:\n  play: maybe\n", 2, []string{`"maybe"`, "boolean"}},
		{"duration without unit", "hub:\n  max_lag: 2\n", 2, []string{"missing unit"}},
		{"bad duration", "streams:\n  - match: live/x\n    stall_timeout: soon\n", 3, []string{`"soon"`, "duration"}},
		{"bad byte size", "hub:\n  gop_cache:\n    max_bytes: 16 megs\n", 3, []string{`"16 megs"`, "byte size"}},
		{"section not a mapping", "hub: 3\n", 1, []string{"mapping"}},
		{"not a mapping", "- a\n- b\n", 1, []string{"mapping"}},
		{"two documents", "log: {level: info}\n---\nlog: {level: debug}\n", 3, []string{"more than one YAML document"}},
		{"syntax", "log: {level: info\n", 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.src)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message spans lines: %q", msg)
			}
			if pe.Line == 0 || (tt.line != 0 && tt.name != "syntax" && pe.Line != tt.line) {
				t.Errorf("line = %d, want %d (%s)", pe.Line, tt.line, msg)
			}
			if want := "line "; !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if tt.line != 0 && tt.name != "syntax" {
				if want := "line " + strconv.Itoa(tt.line) + ","; !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "liveedge.yaml")
	if err := os.WriteFile(good, []byte("rtmp: {listen: \":1936\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.RTMP.Listen = ":1936"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load = %#v", c)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: info\n  colour: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var pe *ParseError
	if err == nil || !errors.As(err, &pe) || pe.Line != 3 {
		t.Fatalf("Load(bad) = %v, want a ParseError on line 3", err)
	}
	for _, w := range []string{bad, "line 3", `"colour"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestValidate(t *testing.T) {
	yes, no := true, false
	onDemand := func(c *Config, match string, origins ...string) *Stream {
		c.Streams = append(c.Streams, c.NewStream(match, ModeOnDemand, origins...))
		return &c.Streams[len(c.Streams)-1]
	}
	tests := []struct {
		name string
		edit func(c *Config)
		want []string // each must appear in the error
	}{
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, []string{`log.level: "verbose" is not one of debug, info, warn, error`}},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{`log.format: "xml"`}},
		{"bad listen", func(c *Config) { c.RTMP.Listen = "abc" }, []string{`rtmp.listen: invalid address "abc"`}},
		{"bad port", func(c *Config) { c.HTTP.Listen = ":http" }, []string{`http.listen: invalid address ":http"`}},
		{"port range", func(c *Config) { c.RTSP.Listen = ":70000" }, []string{`rtsp.listen: invalid address ":70000"`}},
		{"admin listen", func(c *Config) { c.Admin.Listen = "1.2.3.4" }, []string{`admin.listen: invalid address`}},
		{"listen conflict", func(c *Config) { c.HTTP.Listen = "127.0.0.1:1935" }, []string{`http.listen: "127.0.0.1:1935" conflicts with rtmp.listen ":1935"`}},
		{"udp port zero", func(c *Config) { c.WebRTC.UDPPort = 0 }, []string{"webrtc.udp_port: 0 is not in 1..65535"}},
		{"rtsp udp odd", func(c *Config) { c.RTSP.UDPRTPPort = 8001 }, []string{"rtsp.udp_rtp_port: 8001 must be an even port in 2..65534 (0 disables UDP)"}},
		{"rtsp udp range", func(c *Config) { c.RTSP.UDPRTPPort = 65536 }, []string{"rtsp.udp_rtp_port: 65536 must be an even port"}},
		{"rtsp udp negative", func(c *Config) { c.RTSP.UDPRTPPort = -2 }, []string{"rtsp.udp_rtp_port: -2 must be an even port"}},
		{"rtsp udp webrtc", func(c *Config) { c.RTSP.UDPRTPPort = 8188 }, []string{"rtsp.udp_rtp_port: 8188 (RTP) and 8189 (RTCP) conflict with webrtc.udp_port 8189"}},
		{"udp port big", func(c *Config) { c.WebRTC.UDPPort = 65536 }, []string{"webrtc.udp_port: 65536"}},
		{"gop bytes", func(c *Config) { c.Hub.GOPCache.MaxBytes = 0 }, []string{"hub.gop_cache.max_bytes: must be > 0"}},
		{"gop duration", func(c *Config) { c.Hub.GOPCache.MaxDuration = 0 }, []string{"hub.gop_cache.max_duration: must be > 0"}},
		{"gop frames", func(c *Config) { c.Hub.GOPCache.MaxFrames = -1 }, []string{"hub.gop_cache.max_frames: must be > 0"}},
		{"slow viewer", func(c *Config) { c.Hub.SlowViewerTimeout = 0 }, []string{"hub.slow_viewer_timeout: must be > 0"}},
		{"max lag", func(c *Config) { c.Hub.MaxLag = Duration(-time.Second) }, []string{"hub.max_lag: must be > 0 (got -1s)"}},
		{"hub start", func(c *Config) { c.Hub.StartTimeout = 0 }, []string{"hub.start_timeout: must be > 0"}},
		{"conflict", func(c *Config) { c.Hub.PublisherConflict = "kick" }, []string{`hub.publisher_conflict: "kick" is not one of refuse, takeover`}},
		{"algorithm", func(c *Config) { c.Auth.Algorithm = "md5" }, []string{`auth.algorithm: "md5" is not one of sha256, sha1`}},
		{"clock skew", func(c *Config) { c.Auth.ClockSkew = Duration(-1) }, []string{"auth.clock_skew: must be >= 0"}},
		{"params", func(c *Config) { c.Auth.TokenParam = "" }, []string{`auth.token_param: "" is not a query parameter name`}},
		{"params equal", func(c *Config) { c.Auth.TokenParam = "expires" }, []string{`auth.token_param: "expires" is also auth.expires_param`}},
		{"secret app name", func(c *Config) { c.Auth.Secrets = map[string]string{"a b": "x"} }, []string{`auth.secrets["a b"]: invalid app name`}},
		{"publish secret app name", func(c *Config) { c.Auth.PublishSecrets = map[string]string{"a/b": "x", "*": "d"} }, []string{`auth.publish_secrets["a/b"]: invalid app name "a/b"`}},
		{"apps star", func(c *Config) { c.Auth.Apps = map[string]AuthApp{"*": {}} }, []string{`auth.apps["*"]:`}},
		{"referer url", func(c *Config) {
			c.Auth.Apps = map[string]AuthApp{"live": {Referers: []string{"example.com", "https://example.com/"}}}
		}, []string{`auth.apps.live.referers[1]: "https://example.com/" must be a host`}},
		{"play needs secret", func(c *Config) { c.Auth.Play = true }, []string{`auth.play: requires a secret for app "live"`}},
		{"publish needs secret", func(c *Config) {
			c.Auth.Publish = true
			c.Auth.Secrets = map[string]string{"other": "x"}
		}, []string{`auth.publish: requires a secret for app "live"`}},
		{"publish needs secret or publish secret", func(c *Config) {
			c.Auth.Publish = true
			c.Auth.PublishSecrets = map[string]string{"other": "x"}
		}, []string{`auth.publish: requires a secret for app "live"`, `auth.publish_secrets.live`, "LIVEEDGE_AUTH_PUBLISH_SECRET_LIVE"}},
		{"empty publish secret is no secret", func(c *Config) {
			c.Auth.Publish = true
			c.Auth.PublishSecrets = map[string]string{"live": "", "*": ""}
		}, []string{`auth.publish: requires a secret for app "live"`}},
		{"publish secret does not satisfy play", func(c *Config) {
			c.Auth.Play, c.Auth.Publish = true, true
			c.Auth.PublishSecrets = map[string]string{"live": "p"}
		}, []string{`auth.play: requires a secret for app "live"`}},
		{"publish without any app", func(c *Config) {
			c.Streams = nil
			c.Auth.Publish = true
		}, []string{`auth.publish: requires a secret: auth.secrets and auth.publish_secrets are empty`}},
		{"empty secret is no secret", func(c *Config) {
			c.Auth.Play = true
			c.Auth.Secrets = map[string]string{"live": ""}
		}, []string{`auth.play: requires a secret for app "live"`}},
		{"app override needs secret", func(c *Config) {
			c.Auth.Secrets = map[string]string{"live": "x"}
			c.Auth.Apps = map[string]AuthApp{"tv": {Publish: &yes}}
		}, []string{`auth.apps.tv.publish: requires a secret for app "tv"`}},
		{"play without any app", func(c *Config) {
			c.Streams = nil
			c.Auth.Play = true
		}, []string{`auth.play: requires a secret`}},
		{"match empty", func(c *Config) { onDemand(c, "", "demo") }, []string{`streams[1].match: ""`}},
		{"match no slash", func(c *Config) { onDemand(c, "live", "demo") }, []string{`streams[1].match: "live" has no "/"`}},
		{"match empty stream", func(c *Config) { onDemand(c, "live/", "demo") }, []string{`streams[1].match: "live/"`}},
		{"match empty app", func(c *Config) { onDemand(c, "/x", "demo") }, []string{`streams[1].match: "/x"`}},
		{"match dotdot", func(c *Config) { onDemand(c, "live/../x", "demo") }, []string{`streams[1].match: "live/../x" must not contain ".."`}},
		{"match space", func(c *Config) { onDemand(c, "live/a b", "demo") }, []string{`streams[1].match: "live/a b"`}},
		{"match star app", func(c *Config) { onDemand(c, "*/x", "demo") }, []string{`streams[1].match: "*/x"`}},
		{"match partial star", func(c *Config) { onDemand(c, "live/a*", "demo") }, []string{`streams[1].match: "live/a*"`}},
		{"match two slashes", func(c *Config) { onDemand(c, "live/a/b", "demo") }, []string{`streams[1].match: "live/a/b"`}},
		{"match hidden", func(c *Config) {
			c.Streams = nil
			onDemand(c, "live/*", "demo")
			onDemand(c, "live/x", "demo")
		}, []string{`streams[1].match: "live/x" is never used: streams[0] ("live/*") matches first`}},
		{"match hidden by star", func(c *Config) { onDemand(c, "*", "demo"); onDemand(c, "tv/*", "demo") }, []string{`streams[2].match: "tv/*" is never used: streams[1]`}},
		{"duplicate match", func(c *Config) { onDemand(c, "live/demo", "demo") }, []string{`streams[1].match: "live/demo" is never used: streams[0]`}},
		{"mode", func(c *Config) { onDemand(c, "tv/x", "demo").Mode = "foo" }, []string{`streams[1].mode: "foo" is not one of on_demand, static, publish`}},
		{"static needs origins", func(c *Config) { c.Streams[0].Origins = nil }, []string{"streams[0].origins: required for mode static"}},
		{"on demand needs origins", func(c *Config) { onDemand(c, "tv/*") }, []string{"streams[1].origins: required for mode on_demand"}},
		{"publish has no origins", func(c *Config) { onDemand(c, "tv/*", "demo").Mode = ModePublish }, []string{"streams[1].origins: not used by mode publish"}},
		{"static pattern", func(c *Config) { onDemand(c, "tv/*", "demo").Mode = ModeStatic }, []string{`streams[1].match: "tv/*" is a pattern, but mode static`}},
		{"origin scheme", func(c *Config) {
			c.Streams[0].Origins = []string{"demo", "rtmp://a/live/x", "http://a/live/x"}
		}, []string{`streams[0].origins[2]: unsupported scheme "http" (want rtmp, rtmps, rtsp, rtsps or "demo")`}},
		{"origin no scheme", func(c *Config) { c.Streams[0].Origins = []string{"origin/live"} }, []string{`streams[0].origins[0]: "origin/live" has no scheme`}},
		{"origin empty", func(c *Config) { c.Streams[0].Origins = []string{""} }, []string{`streams[0].origins[0]: empty origin`}},
		{"origin no host", func(c *Config) { c.Streams[0].Origins = []string{"rtsp:///x"} }, []string{`streams[0].origins[0]: "rtsp:///x" has no host`}},
		{"origin placeholder", func(c *Config) { onDemand(c, "tv/*", "rtmp://o/$App/$steam") }, []string{`streams[1].origins[0]: unknown placeholder "$App"`}},
		{"stall", func(c *Config) { c.Streams[0].StallTimeout = 0 }, []string{"streams[0].stall_timeout: must be > 0"}},
		{"keyframe", func(c *Config) { c.Streams[0].KeyframeTimeout = Duration(time.Second) }, []string{"streams[0].keyframe_timeout: must be >= stall_timeout (got 1s < 2s)"}},
		{"idle", func(c *Config) { c.Streams[0].IdleClose = 0 }, []string{"streams[0].idle_close: must be > 0"}},
		{"stream start", func(c *Config) { c.Streams[0].StartTimeout = 0 }, []string{"streams[0].start_timeout: must be > 0"}},
		{"sign without secret", func(c *Config) {
			onDemand(c, "live/*", "rtmp://o/live/$stream", "rtmp://o2/other/$stream", "demo").Sign = true
			c.Auth.Secrets = map[string]string{"live": "s"}
		}, []string{`streams[1].origins[1]: sign: true requires a secret for app "other"`}},
		{"sign ttl", func(c *Config) { onDemand(c, "live/*", "rtmp://o/live/$stream").SignTTL = 0 }, []string{"streams[1].sign_ttl: must be > 0"}},
		{"probe interval", func(c *Config) { c.Streams[0].ProbeInterval = -1 }, []string{"streams[0].probe_interval: must be >= 0"}},
		{"bind address", func(c *Config) { c.Streams[0].BindAddress = "eth0" }, []string{`streams[0].bind_address: "eth0" is not an IP address`}},
		{"bind address with port", func(c *Config) { c.Streams[0].BindAddress = "127.0.0.2:1935" }, []string{`streams[0].bind_address: "127.0.0.2:1935" is not an IP address`}},
		{"bind device", func(c *Config) { c.Streams[0].BindDevice = "a/b" }, []string{`streams[0].bind_device: "a/b" is not a network interface name`}},
		{"bind device long", func(c *Config) { c.Streams[0].BindDevice = "sixteen-chars-xx" }, []string{`streams[0].bind_device:`}},
		{"mark negative", func(c *Config) { c.Streams[0].Mark = -1 }, []string{"streams[0].mark: -1 is not an integer in 0..4294967295"}},
		{"mark too large", func(c *Config) { c.Streams[0].Mark = 1 << 32 }, []string{"streams[0].mark: 4294967296 is not"}},
		{"many at once", func(c *Config) {
			c.RTMP.Listen = "abc"
			c.Auth.Algorithm = "md5"
			c.Streams[0].Mode = "foo"
			c.Auth.Apps = map[string]AuthApp{"live": {Play: &no}}
		}, []string{`rtmp.listen: invalid address "abc"`, "auth.algorithm:", "streams[0].mode:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FieldError", err)
			}
			if tt.name == "many at once" {
				if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 3 {
					t.Errorf("got %d errors, want 3:\n%v", n, err)
				}
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name string
		edit func(c *Config)
	}{
		{"listeners disabled", func(c *Config) { c.RTMP.Listen, c.RTSP.Listen, c.HTTP.Listen, c.Admin.Listen = "", "", "", "" }},
		{"host names and ipv6", func(c *Config) { c.RTMP.Listen, c.Admin.Listen = "localhost:1935", "[::1]:9997" }},
		{"ephemeral ports", func(c *Config) { c.RTMP.Listen, c.RTSP.Listen = ":0", ":0" }},
		{"rtsp tcp only", func(c *Config) { c.RTSP.UDPRTPPort = 0 }},
		{"rtsp off, odd udp port ignored", func(c *Config) { c.RTSP.Listen, c.RTSP.UDPRTPPort = "", 7 }},
		{"same port other host", func(c *Config) { c.Admin.Listen = "127.0.0.1:1936"; c.HTTP.Listen = "127.0.0.2:1936" }},
		{"clock skew zero", func(c *Config) { c.Auth.ClockSkew = 0 }},
		{"sha1 and default secret", func(c *Config) {
			c.Auth.Algorithm = "sha1"
			c.Auth.Play, c.Auth.Publish = true, true
			c.Auth.Secrets = map[string]string{"*": "s"}
		}},
		{"app secret", func(c *Config) {
			c.Auth.Play = true
			c.Auth.Secrets = map[string]string{"live": "s"}
		}},
		{"publish secret satisfies publish", func(c *Config) {
			c.Auth.Publish = true
			c.Auth.PublishSecrets = map[string]string{"live": "p"}
		}},
		{"default publish secret satisfies publish", func(c *Config) {
			c.Auth.Publish = true
			c.Auth.PublishSecrets = map[string]string{"*": "p"}
		}},
		{"default publish secret without any app", func(c *Config) {
			c.Streams = nil
			c.Auth.Publish = true
			c.Auth.PublishSecrets = map[string]string{"*": "p"}
		}},
		{"publish override with publish secret", func(c *Config) {
			c.Auth.Play = true
			c.Auth.Secrets = map[string]string{"live": "s"}
			c.Auth.PublishSecrets = map[string]string{"tv": "p"}
			c.Auth.Apps = map[string]AuthApp{"tv": {Play: &no, Publish: &yes}}
		}},
		{"secrets and publish secrets", func(c *Config) {
			c.Auth.Play, c.Auth.Publish = true, true
			c.Auth.Secrets = map[string]string{"live": "s", "*": "d"}
			c.Auth.PublishSecrets = map[string]string{"live": "p", "*": "q"}
		}},
		{"override off", func(c *Config) {
			c.Auth.Play = true
			c.Auth.Apps = map[string]AuthApp{"live": {Play: &no, Publish: &no, BindIP: &yes, Referers: []string{"example.com", "*.example.com"}}}
		}},
		{"all modes and schemes", func(c *Config) {
			c.Streams = []Stream{
				c.NewStream("live/demo", ModeStatic, "demo"),
				c.NewStream("live/*", ModeOnDemand, "rtmp://a.example/live/$stream", "rtmps://b.example:443/$app/$stream", "rtsp://$app.cams.local:8554/$stream_hd", "rtsps://c/x", "demo"),
				c.NewStream("up/*", ModePublish),
				c.NewStream("*", ModeOnDemand, "rtmp://fallback/$app/$stream"),
			}
			c.Streams[1].OfflineSlate = "demo"
			c.Streams[3].OfflineSlate = "/var/lib/liveedge/offline.mp4"
		}},
		{"sign with app and default secrets", func(c *Config) {
			st := c.NewStream("live/*", ModeOnDemand, "rtmp://o/$app/$stream", "rtmp://o2/other/$stream", "demo")
			st.Sign = true
			c.Streams = append(c.Streams, st)
			c.Auth.Secrets = map[string]string{"live": "s", "*": "d"}
		}},
		{"egress", func(c *Config) {
			c.Streams[0].BindAddress, c.Streams[0].BindDevice, c.Streams[0].Mark = "127.0.0.2", "lo", 1<<32-1
			c.Streams[0].ProbeInterval = 0
			st := c.NewStream("live/*", ModeOnDemand, "rtmp://o/live/$stream")
			st.BindAddress, st.BindDevice = "fe80::1%eth0", "eth0.100"
			c.Streams = append(c.Streams, st)
		}},
		{"no streams", func(c *Config) { c.Streams = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		src  string
		want time.Duration
		err  string
	}{
		{"2s", 2 * time.Second, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"1m", time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"\"1.5s\"", 1500 * time.Millisecond, ""},
		{"0", 0, ""},
		{"-1s", -time.Second, ""},
		{"2", 0, "missing unit"},
		{"1.5", 0, "missing unit"},
		{"soon", 0, "invalid duration"},
		{"[1s]", 0, "invalid duration"},
	}
	for _, tt := range tests {
		var v struct {
			D Duration `yaml:"d"`
		}
		err := yaml.UnmarshalWithOptions([]byte("d: "+tt.src), &v, yaml.Strict())
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil || v.D.Std() != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.src, v.D, err, tt.want)
		}
	}

	for d, want := range map[time.Duration]string{
		0: "0s", 2 * time.Second: "2s", 500 * time.Millisecond: "500ms", time.Minute: "1m",
		90 * time.Second: "1m30s", time.Hour: "1h", 90 * time.Minute: "1h30m", 3*time.Hour + 5*time.Second: "3h0m5s",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		back, err := ParseDuration(want)
		if err != nil || back.Std() != d {
			t.Errorf("ParseDuration(%q) = %v, %v", want, back, err)
		}
		out, err := yaml.Marshal(map[string]Duration{"d": Duration(d)})
		if err != nil || strings.TrimSpace(string(out)) != "d: "+want {
			t.Errorf("Marshal(%v) = %q, %v", d, out, err)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		src  string
		want int64
		err  string
	}{
		{"1024", 1024, ""},
		{"0", 0, ""},
		{"16MiB", 16 << 20, ""},
		{"512KiB", 512 << 10, ""},
		{"1MB", 1_000_000, ""},
		{"500kB", 500_000, ""},
		{"2 GiB", 2 << 30, ""},
		{"1.5GiB", 3 << 29, ""},
		{"100B", 100, ""},
		{"16mib", 16 << 20, ""},
		{"\"4096\"", 4096, ""},
		{"1TiB", 1 << 40, ""},
		{"1.5B", 0, "whole number"},
		{"-1", 0, "invalid byte size"},
		{"16 megs", 0, "invalid byte size"},
		{"MiB", 0, "invalid byte size"},
		{"1.2.3MiB", 0, "bad number"},
		{"99999999TiB", 0, "too large"},
		{"{a: 1}", 0, "invalid byte size"},
	}
	for _, tt := range tests {
		var v struct {
			B ByteSize `yaml:"b"`
		}
		err := yaml.UnmarshalWithOptions([]byte("b: "+tt.src), &v, yaml.Strict())
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil || int64(v.B) != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.src, v.B, err, tt.want)
		}
	}

	for b, want := range map[ByteSize]string{
		0: "0", 16 * MiB: "16MiB", 512 * KiB: "512KiB", 1_000_000: "1MB", 1500: "1500B", 3 * GiB: "3GiB", 2 * TiB: "2TiB", 1536: "1536B",
	} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(b), got, want)
		}
		back, err := ParseByteSize(want)
		if err != nil || back != b {
			t.Errorf("ParseByteSize(%q) = %v, %v", want, back, err)
		}
	}
	out, err := yaml.Marshal(map[string]ByteSize{"a": 16 * MiB, "b": 1500})
	if err != nil || string(out) != "a: 16MiB\nb: 1500\n" {
		t.Errorf("Marshal = %q, %v", out, err)
	}
}

func TestApplyEnv(t *testing.T) {
	c := mustParse(t, `
auth:
  play: true
  secrets: {live: from-file, keep: kept}
  apps:
    my-app: {publish: true}
streams:
  - match: "cam.1/*"
    mode: on_demand
    origins: [rtsp://cam/$stream]
  - match: "*"
    mode: publish
`)
	env := map[string]string{
		"LIVEEDGE_AUTH_SECRET":        "default",
		"LIVEEDGE_AUTH_SECRET_LIVE":   "from-env",
		"LIVEEDGE_AUTH_SECRET_MY_APP": "mine",
		"LIVEEDGE_AUTH_SECRET_CAM_1":  "cam",
		"LIVEEDGE_AUTH_SECRET_OTHER":  "unused", // no app "other" is named
		"LIVEEDGE_AUTH_SECRET_KEEP":   "",       // empty changes nothing
	}
	c.ApplyEnv(func(k string) string { return env[k] })
	want := map[string]string{"*": "default", "live": "from-env", "keep": "kept", "my-app": "mine", "cam.1": "cam"}
	if !reflect.DeepEqual(c.Auth.Secrets, want) {
		t.Errorf("secrets = %v, want %v", c.Auth.Secrets, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after ApplyEnv: %v", err)
	}

	// Env can satisfy a requirement the file alone does not.
	d := Default()
	d.Auth.Publish = true
	if err := d.Validate(); err == nil {
		t.Fatal("publish without secret validated")
	}
	d.ApplyEnv(func(k string) string {
		if k == "LIVEEDGE_AUTH_SECRET_LIVE" {
			return "s"
		}
		return ""
	})
	if d.Auth.Secrets["live"] != "s" || d.Validate() != nil {
		t.Errorf("secrets = %v, Validate = %v", d.Auth.Secrets, d.Validate())
	}

	// Nothing set: nothing changes, no map is created.
	e := Default()
	e.ApplyEnv(func(string) string { return "" })
	e.ApplyEnv(nil)
	if !reflect.DeepEqual(e, Default()) {
		t.Errorf("ApplyEnv with empty env changed the config: %#v", e.Auth)
	}

	for app, want := range map[string]string{"live": "LIVEEDGE_AUTH_SECRET_LIVE", "my-app": "LIVEEDGE_AUTH_SECRET_MY_APP", "Tv2": "LIVEEDGE_AUTH_SECRET_TV2", "café": "LIVEEDGE_AUTH_SECRET_CAF_"} {
		if got := EnvSecretName(app); got != want {
			t.Errorf("EnvSecretName(%q) = %q, want %q", app, got, want)
		}
	}
}

func TestApplyEnvPublishSecrets(t *testing.T) {
	c := mustParse(t, `
auth:
  play: true
  publish: true
  secrets: {live: s-file}
  publish_secrets: {live: p-file, keep: kept, pubonly: p}
streams:
  - match: "cam.1/*"
    mode: publish
`)
	env := map[string]string{
		"LIVEEDGE_AUTH_PUBLISH_SECRET":         "p-default",
		"LIVEEDGE_AUTH_PUBLISH_SECRET_LIVE":    "p-env",
		"LIVEEDGE_AUTH_PUBLISH_SECRET_CAM_1":   "p-cam",
		"LIVEEDGE_AUTH_PUBLISH_SECRET_PUBONLY": "p-env-only", // an app named only in publish_secrets
		"LIVEEDGE_AUTH_PUBLISH_SECRET_OTHER":   "unused",
		"LIVEEDGE_AUTH_PUBLISH_SECRET_KEEP":    "",
		"LIVEEDGE_AUTH_SECRET":                 "s-default",
		"LIVEEDGE_AUTH_SECRET_PUBONLY":         "s-pubonly", // apps of publish_secrets get secrets from env too
	}
	c.ApplyEnv(func(k string) string { return env[k] })
	wantPub := map[string]string{"*": "p-default", "live": "p-env", "keep": "kept", "pubonly": "p-env-only", "cam.1": "p-cam"}
	if !reflect.DeepEqual(c.Auth.PublishSecrets, wantPub) {
		t.Errorf("publish_secrets = %v, want %v", c.Auth.PublishSecrets, wantPub)
	}
	wantSec := map[string]string{"*": "s-default", "live": "s-file", "pubonly": "s-pubonly"}
	if !reflect.DeepEqual(c.Auth.Secrets, wantSec) {
		t.Errorf("secrets = %v, want %v", c.Auth.Secrets, wantSec)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after ApplyEnv: %v", err)
	}

	// LIVEEDGE_AUTH_SECRET_* never sets a publish secret, nor the reverse.
	d := Default()
	d.ApplyEnv(func(k string) string {
		switch k {
		case "LIVEEDGE_AUTH_SECRET_LIVE":
			return "s"
		case "LIVEEDGE_AUTH_PUBLISH_SECRET_LIVE":
			return "p"
		}
		return ""
	})
	if d.Auth.Secrets["live"] != "s" || d.Auth.PublishSecrets["live"] != "p" || len(d.Auth.Secrets) != 1 || len(d.Auth.PublishSecrets) != 1 {
		t.Errorf("secrets = %v, publish_secrets = %v", d.Auth.Secrets, d.Auth.PublishSecrets)
	}

	// An environment publish secret satisfies a publish requirement.
	e := Default()
	e.Auth.Publish = true
	e.ApplyEnv(func(k string) string {
		if k == "LIVEEDGE_AUTH_PUBLISH_SECRET" {
			return "p"
		}
		return ""
	})
	if e.Auth.PublishSecrets["*"] != "p" || e.Validate() != nil {
		t.Errorf("publish_secrets = %v, Validate = %v", e.Auth.PublishSecrets, e.Validate())
	}

	for app, want := range map[string]string{"live": "LIVEEDGE_AUTH_PUBLISH_SECRET_LIVE", "my-app": "LIVEEDGE_AUTH_PUBLISH_SECRET_MY_APP", "café": "LIVEEDGE_AUTH_PUBLISH_SECRET_CAF_"} {
		if got := EnvPublishSecretName(app); got != want {
			t.Errorf("EnvPublishSecretName(%q) = %q, want %q", app, got, want)
		}
	}
}

func TestMatchStream(t *testing.T) {
	c := mustParse(t, `
streams:
  - match: live/special
    mode: static
    origins: [rtsp://cam/special]
  - match: "live/*"
    mode: on_demand
    origins: ["rtmp://origin-a.example/live/$stream", "rtmp://origin-b.example/$app/$stream?from=$app", demo]
  - match: "*"
    mode: publish
`)
	tests := []struct {
		name  string
		match string // "" = no match
		urls  []string
	}{
		{"live/special", "live/special", []string{"rtsp://cam/special"}},
		{"live/cam1", "live/*", []string{"rtmp://origin-a.example/live/cam1", "rtmp://origin-b.example/live/cam1?from=live", "demo"}},
		{"tv/news", "*", []string{}},
		{"Live/cam1", "*", []string{}},
		{"live", "", nil},
		{"live/", "", nil},
		{"/x", "", nil},
		{"live/a/b", "", nil},
		{"", "", nil},
	}
	for _, tt := range tests {
		s, ok := c.MatchStream(tt.name)
		if tt.match == "" {
			if ok || s != nil {
				t.Errorf("MatchStream(%q) = %v, true; want no match", tt.name, s.Match)
			}
			continue
		}
		if !ok || s.Match != tt.match {
			t.Errorf("MatchStream(%q) = %v, %v; want %q", tt.name, s, ok, tt.match)
			continue
		}
		if got := s.OriginURLs(tt.name); !reflect.DeepEqual(got, tt.urls) {
			t.Errorf("OriginURLs(%q) = %q, want %q", tt.name, got, tt.urls)
		}
	}

	// First match wins even when an exact entry comes later (Validate
	// flags that configuration).
	d := Default()
	d.Streams = []Stream{d.NewStream("live/*", ModeOnDemand, "rtmp://a/$stream"), d.NewStream("live/x", ModeStatic, "demo")}
	if s, _ := d.MatchStream("live/x"); s.Match != "live/*" {
		t.Errorf("MatchStream picked %q, want the first entry", s.Match)
	}
	// The result points into the config.
	s, _ := d.MatchStream("live/y")
	if s != &d.Streams[0] {
		t.Error("MatchStream returned a copy")
	}
	// Default config: only live/demo.
	if s, ok := Default().MatchStream("live/demo"); !ok || s.Mode != ModeStatic {
		t.Error("default live/demo not matched")
	}
	if _, ok := Default().MatchStream("live/other"); ok {
		t.Error("default matched live/other")
	}

	if got := (&Stream{Origins: []string{"rtmp://o/$app/$stream"}}).OriginURLs("solo"); got[0] != "rtmp://o//solo" {
		t.Errorf("OriginURLs without app = %q", got)
	}
}

func TestAuthHelpers(t *testing.T) {
	yes, no := true, false
	a := AuthConfig{
		Play:           true,
		Secrets:        map[string]string{"*": "def", "live": "ls", "empty": ""},
		PublishSecrets: map[string]string{"*": "pdef", "live": "pls", "pub": "pp", "empty": ""},
		Apps: map[string]AuthApp{
			"live": {Play: &no, Publish: &yes, Referers: []string{"example.com"}},
			"tv":   {BindIP: &yes},
		},
	}
	tests := []struct {
		app  string
		want AppAuth
	}{
		{"live", AppAuth{Secret: "ls", PublishSecret: "pls", Play: false, Publish: true, Referers: []string{"example.com"}}},
		{"tv", AppAuth{Secret: "def", PublishSecret: "pdef", Play: true, BindIP: true}},
		{"empty", AppAuth{Secret: "def", PublishSecret: "pdef", Play: true}},
		{"pub", AppAuth{Secret: "def", PublishSecret: "pp", Play: true}},
		{"other", AppAuth{Secret: "def", PublishSecret: "pdef", Play: true}},
	}
	for _, tt := range tests {
		if got := a.App(tt.app); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("App(%q) = %+v, want %+v", tt.app, got, tt.want)
		}
	}
	if got := a.AppNames(); !reflect.DeepEqual(got, []string{"empty", "live", "pub", "tv"}) {
		t.Errorf("AppNames = %q", got)
	}
	if _, ok := (&AuthConfig{}).Secret("x"); ok {
		t.Error("Secret found in empty config")
	}
	if _, ok := (&AuthConfig{Secrets: map[string]string{"x": "s"}}).PublishSecret("x"); ok {
		t.Error("PublishSecret found without publish_secrets")
	}
	if s, ok := (&AuthConfig{PublishSecrets: map[string]string{"x": "", "*": "d"}}).PublishSecret("x"); !ok || s != "d" {
		t.Errorf("PublishSecret with empty own = %q, %v; want the default", s, ok)
	}
}

func TestCloneAndRedacted(t *testing.T) {
	c := Default()
	yes := true
	c.Auth.Secrets = map[string]string{"live": "hunter2", "x": ""}
	c.Auth.PublishSecrets = map[string]string{"live": "pub-hunter3", "*": "pub-default", "x": ""}
	c.Auth.Apps = map[string]AuthApp{"live": {Play: &yes, Referers: []string{"a.com"}}}
	r := c.Redacted()
	if r.Auth.Secrets["live"] != "REDACTED" || r.Auth.Secrets["x"] != "" || c.Auth.Secrets["live"] != "hunter2" {
		t.Errorf("Redacted secrets = %v, original %v", r.Auth.Secrets, c.Auth.Secrets)
	}
	if want := map[string]string{"live": "REDACTED", "*": "REDACTED", "x": ""}; !reflect.DeepEqual(r.Auth.PublishSecrets, want) || c.Auth.PublishSecrets["live"] != "pub-hunter3" {
		t.Errorf("Redacted publish_secrets = %v, original %v", r.Auth.PublishSecrets, c.Auth.PublishSecrets)
	}
	if out, err := json.Marshal(r); err != nil || strings.Contains(string(out), "pub-") {
		t.Errorf("redacted JSON leaks a publish secret (%v): %s", err, out)
	}
	n := c.Clone()
	if !reflect.DeepEqual(n, c) {
		t.Fatal("Clone differs")
	}
	*n.Auth.Apps["live"].Play = false
	n.Auth.Apps["live"].Referers[0] = "b.com"
	n.Streams[0].Origins[0] = "x"
	n.Auth.PublishSecrets["live"] = "changed"
	if !*c.Auth.Apps["live"].Play || c.Auth.Apps["live"].Referers[0] != "a.com" || c.Streams[0].Origins[0] != "demo" || c.Auth.PublishSecrets["live"] != "pub-hunter3" {
		t.Error("Clone shares state")
	}
}

func TestLimitsConfig(t *testing.T) {
	c, err := Parse([]byte("limits: {max_streams: 10, max_viewers: 1000, max_viewers_per_stream: 200}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != (LimitsConfig{MaxStreams: 10, MaxViewers: 1000, MaxViewersPerStream: 200}) {
		t.Fatalf("limits %+v", c.Limits)
	}
	c.Limits.MaxViewers = -1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "limits.max_viewers: must be >= 0") {
		t.Fatalf("Validate() = %v", err)
	}
}
