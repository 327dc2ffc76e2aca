// Package config is the YAML configuration of liveedge.
//
// A configuration is read with [Load] (or [Parse]), which starts from
// [Default] and overrides whatever the file sets. Secrets may then be taken
// from the environment with [Config.ApplyEnv], and the result must be checked
// with [Config.Validate] before use:
//
//	cfg, err := config.Load(path)
//	if err != nil {
//		return err
//	}
//	cfg.ApplyEnv(os.Getenv)
//	if err := cfg.Validate(); err != nil {
//		return err // every problem, one per line
//	}
//
// Parse and Load never read the environment and never validate, so that
// environment secrets can satisfy requirements the file alone does not.
//
// The full shape, with the default values:
//
//	log:    { level: info, format: text }   # level debug|info|warn|error; format text|json
//	rtmp:   { listen: ":1935" }             # "" disables a listener
//	rtsp:   { listen: ":8554", udp_rtp_port: 8000 } # RTP/RTCP on 8000/8001 for UDP viewers; 0: TCP only
//	http:   { listen: ":8080" }             # players, HLS, FLV, WHEP, pages
//	admin:                                  # API and /metrics
//	  listen: "127.0.0.1:9997"
//	  secret: ""                            # required unless listen is loopback; env LIVEEDGE_ADMIN_SECRET
//	  state_file: ""                        # proxies added at run time persist here; "" = not kept
//	  metrics_max_streams: 100              # streams past this are summed under stream="_other"
//	  pprof: false                          # Go runtime profiles under /debug/pprof/
//	webrtc:                                 # WHEP on the http listener, media on one UDP port
//	  udp_port: 8189
//	  udp_host: ""                          # IP to bind; "" = every local address
//	  public_ips: []                        # 1:1 NAT: advertised instead of local IPs
//	  ice_servers: []                       # stun:/turn: URLs advertised to clients
//	  interfaces: []                        # host candidates only on these interfaces
//	  host_ips: []                          # ... and only in these CIDR prefixes
//	  remote_candidates: {allow: [], deny: []} # CIDR filter on clients' candidates
//	  peer_timeout: 10s                     # ICE not connected / lost this long: peer removed
//	  start_delay: 20ms                     # pause after DTLS before the first packet
//	  allow_origin: "*"                     # CORS of the signalling endpoints
//	hub:
//	  gop_cache: { max_bytes: 16MiB, max_duration: 10s, max_frames: 2048 }
//	  slow_viewer_timeout: 10s
//	  max_lag: 2s
//	  publisher_conflict: refuse            # refuse | takeover
//	  start_timeout: 5s
//	auth:
//	  algorithm: sha256                     # sha256 | sha1
//	  secrets: {}                           # app -> secret; "*" is the default
//	  publish_secrets: {}                   # app -> secret of publish tokens; "*" is the default; an app without one uses its secret
//	  play: false
//	  publish: false
//	  bind_ip: false
//	  clock_skew: 30s
//	  expires_param: expires
//	  token_param: token
//	  apps: {}                              # app -> {play, publish, bind_ip, referers}
//	hls:                                    # HLS / LL-HLS on the http listener
//	  variant: lowlatency                   # lowlatency | mpegts | fmp4
//	  segment_duration: 0s                  # 0 = 1s (2s for mpegts); cut on keyframes
//	  part_duration: 200ms                  # LL-HLS parts
//	  segment_count: 7                      # >= 7 for lowlatency, >= 3 otherwise
//	  idle_close: 30s                       # a muxer without requests is closed
//	  allow_origin: "*"                     # Access-Control-Allow-Origin; "" = no CORS
//	  apps: {}                              # app -> {variant, segment_duration, part_duration, segment_count}
//	flv:                                    # HTTP-FLV / WS-FLV on the http listener
//	  allow_origin: "*"                     # Access-Control-Allow-Origin; "" = no CORS
//	hooks:                                  # webhooks (JSON POST); "" = off
//	  on_publish: ""                        # admission, after the token check
//	  on_play: ""
//	  on_stream_changed: ""                 # stream started (regist true) / ended
//	  on_stream_none_reader: ""             # no viewers for none_reader_delay
//	  on_stream_not_found: ""               # may reply a url to pull on demand
//	  timeout: 2s
//	  cache_ttl: 30s                        # on_play/on_publish answers per action+stream+token+ip
//	  max_concurrency: 16
//	  failure: closed                       # closed (deny) | open (allow) when a hook fails
//	  none_reader_delay: 10s
//	  media_server_id: ""                   # "" = the host name
//	streams:
//	  - match: live/demo                    # "app/stream", "app/*" or "*"
//	    mode: static                        # on_demand | static | publish
//	    origins: [demo]
//	    stall_timeout: 2s
//	    keyframe_timeout: 10s
//	    idle_close: 10s
//	    start_timeout: 5s                   # defaults to hub.start_timeout
//	    failback: true
//	    offline_slate: ""                   # "" | "demo" | a clip path
//	    sign: false                         # sign pull URLs with the app's secret
//	    sign_ttl: 1h
//	    probe_interval: 5s                  # background health probes; 0 = off
//	    bind_address: ""                    # local source IP of pulls and probes
//	    bind_device: ""                     # SO_BINDTODEVICE (Linux)
//	    mark: 0                             # SO_MARK (Linux, CAP_NET_ADMIN); 0 = none
//
// Streams that match no entry may still be published (as if by an entry
// with mode publish).
package config

// Log levels and formats.
const (
	LogDebug = "debug"
	LogInfo  = "info"
	LogWarn  = "warn"
	LogError = "error"

	LogText = "text"
	LogJSON = "json"
)

// Publisher conflict policies (hub.publisher_conflict).
const (
	ConflictRefuse   = "refuse"
	ConflictTakeover = "takeover"
)

// Token algorithms (auth.algorithm).
const (
	AlgorithmSHA256 = "sha256"
	AlgorithmSHA1   = "sha1"
)

// Stream modes (streams[].mode).
const (
	// ModeOnDemand pulls from the origins while someone watches.
	ModeOnDemand = "on_demand"
	// ModeStatic pulls from the origins all the time.
	ModeStatic = "static"
	// ModePublish accepts a pushed stream and pulls nothing.
	ModePublish = "publish"
)

// DemoOrigin is the origin (and offline slate) naming the built-in looping
// test stream.
const DemoOrigin = "demo"

// Defaults of the per-entry stream settings; start_timeout defaults to
// hub.start_timeout.
const (
	DefaultStallTimeout    = Duration(2e9)  // 2s
	DefaultKeyframeTimeout = Duration(10e9) // 10s
	DefaultIdleClose       = Duration(10e9) // 10s
	DefaultFailback        = true
	DefaultSignTTL         = Duration(3600e9) // 1h
	// DefaultProbeInterval is how often every origin of an entry with
	// concrete origin URLs is probed in the background.
	DefaultProbeInterval = Duration(5e9) // 5s
)

// Config is the whole configuration file.
type Config struct {
	Log    LogConfig    `yaml:"log" json:"log"`
	RTMP   Listener     `yaml:"rtmp" json:"rtmp"`
	RTSP   RTSPConfig   `yaml:"rtsp" json:"rtsp"`
	HTTP   HTTPConfig   `yaml:"http" json:"http"`
	Admin  AdminConfig  `yaml:"admin" json:"admin"`
	WebRTC WebRTCConfig `yaml:"webrtc" json:"webrtc"`
	Hub    HubConfig    `yaml:"hub" json:"hub"`
	Auth   AuthConfig   `yaml:"auth" json:"auth"`
	HLS    HLSConfig    `yaml:"hls" json:"hls"`
	FLV    FLVConfig    `yaml:"flv" json:"flv"`
	Hooks  HooksConfig  `yaml:"hooks" json:"hooks"`
	Limits LimitsConfig `yaml:"limits" json:"limits"`
	// Cluster joins the node to a cluster of edges sharing Redis.
	Cluster ClusterConfig `yaml:"cluster" json:"cluster"`
	// Streams are tried in order by MatchStream; the first match wins.
	Streams []Stream `yaml:"streams" json:"streams"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level" json:"level"`   // debug | info | warn | error
	Format string `yaml:"format" json:"format"` // text | json
}

// Listener is a TCP listen address such as ":1935" or "127.0.0.1:9997"; an
// empty Listen disables the listener.
type Listener struct {
	Listen string `yaml:"listen" json:"listen"`
}

// Enabled reports whether the listener has an address.
func (l Listener) Enabled() bool { return l.Listen != "" }

// HTTPConfig is the shared HTTP listener (players, HLS, FLV, WHEP, pages).
// With a certificate and key it serves HTTPS, and HTTP/2 to the clients
// that offer it.
type HTTPConfig struct {
	Listen string `yaml:"listen" json:"listen"`
	// TLSCert and TLSKey are the paths of a PEM certificate (chain) and
	// its private key; both or neither.
	TLSCert string `yaml:"tls_cert" json:"tls_cert"`
	TLSKey  string `yaml:"tls_key" json:"tls_key"`
}

// Enabled reports whether the listener has an address.
func (l HTTPConfig) Enabled() bool { return l.Listen != "" }

// TLS reports whether the listener serves HTTPS.
func (l HTTPConfig) TLS() bool { return l.TLSCert != "" }

// HubConfig configures the stream hub.
type HubConfig struct {
	GOPCache GOPCacheConfig `yaml:"gop_cache" json:"gop_cache"`
	// SlowViewerTimeout: a viewer behind its bound for this long is
	// disconnected.
	SlowViewerTimeout Duration `yaml:"slow_viewer_timeout" json:"slow_viewer_timeout"`
	// MaxLag: a viewer further behind live than this skips to the newest
	// keyframe.
	MaxLag Duration `yaml:"max_lag" json:"max_lag"`
	// PublisherConflict is what happens to a second publisher of a live
	// stream: "refuse" it or let it "takeover".
	PublisherConflict string `yaml:"publisher_conflict" json:"publisher_conflict"`
	// StartTimeout is how long a viewer waits for a stream that is
	// starting, and the default of streams[].start_timeout.
	StartTimeout Duration `yaml:"start_timeout" json:"start_timeout"`
}

// GOPCacheConfig bounds the per-stream cache of recent media; all three
// limits must be positive and the first one reached applies.
type GOPCacheConfig struct {
	MaxBytes    ByteSize `yaml:"max_bytes" json:"max_bytes"`
	MaxDuration Duration `yaml:"max_duration" json:"max_duration"`
	MaxFrames   int      `yaml:"max_frames" json:"max_frames"`
}

// AuthConfig configures token authentication. The top-level Play, Publish
// and BindIP apply to every app without an override in Apps.
type AuthConfig struct {
	Algorithm string `yaml:"algorithm" json:"algorithm"` // sha256 | sha1
	// Secrets maps an app name to its HMAC secret; "*" is the secret of
	// every app without its own. Empty strings count as no secret.
	Secrets map[string]string `yaml:"secrets,omitempty" json:"secrets,omitempty"`
	// PublishSecrets maps an app name to the HMAC secret of its publish
	// tokens; "*" is the publish secret of every app without its own.
	// Empty strings count as no secret. An app with a publish secret
	// accepts only tokens signed with it for publishing, and only tokens
	// signed with its secret (Secrets) for playing. An app without one
	// checks both with its secret, so its play tokens can also publish.
	PublishSecrets map[string]string `yaml:"publish_secrets,omitempty" json:"publish_secrets,omitempty"`
	Play           bool              `yaml:"play" json:"play"`       // require a token to play
	Publish        bool              `yaml:"publish" json:"publish"` // require a token to publish
	BindIP         bool              `yaml:"bind_ip" json:"bind_ip"` // tokens are bound to the client IP
	// ClockSkew extends every token's lifetime (may be 0).
	ClockSkew    Duration `yaml:"clock_skew" json:"clock_skew"`
	ExpiresParam string   `yaml:"expires_param" json:"expires_param"`
	TokenParam   string   `yaml:"token_param" json:"token_param"`
	// Apps holds per-app overrides.
	Apps map[string]AuthApp `yaml:"apps,omitempty" json:"apps,omitempty"`
}

// AuthApp overrides the auth settings of one app. A nil pointer inherits
// the top-level value.
type AuthApp struct {
	Play    *bool `yaml:"play,omitempty" json:"play,omitempty"`
	Publish *bool `yaml:"publish,omitempty" json:"publish,omitempty"`
	BindIP  *bool `yaml:"bind_ip,omitempty" json:"bind_ip,omitempty"`
	// Referers, if non-empty, is the allow-list of page hosts for HTTP
	// clients: "example.com" (exactly) or "*.example.com" (any subdomain).
	Referers []string `yaml:"referers,omitempty" json:"referers,omitempty"`
}

// Stream configures the streams whose "app/stream" name fits Match.
type Stream struct {
	// Match is "app/stream" (exact), "app/*" (any stream of app) or "*".
	Match string `yaml:"match" json:"match"`
	// Mode is on_demand, static or publish.
	Mode string `yaml:"mode" json:"mode"`
	// Origins are tried in order; "$stream" and "$app" are replaced (see
	// OriginURLs). "demo" is the built-in looping test stream.
	Origins []string `yaml:"origins" json:"origins"`
	// StallTimeout: an origin that delivers nothing for this long is
	// abandoned for the next one.
	StallTimeout Duration `yaml:"stall_timeout" json:"stall_timeout"`
	// KeyframeTimeout: an origin that sends media but nothing a viewer can
	// decode (no keyframe to start from) for this long is abandoned too.
	KeyframeTimeout Duration `yaml:"keyframe_timeout" json:"keyframe_timeout"`
	// IdleClose: an on-demand pull with no viewers is closed after this.
	IdleClose Duration `yaml:"idle_close" json:"idle_close"`
	// StartTimeout is how long a viewer waits for this stream to start.
	StartTimeout Duration `yaml:"start_timeout" json:"start_timeout"`
	// Failback returns to the first origin once it works again.
	Failback bool `yaml:"failback" json:"failback"`
	// OfflineSlate is shown while no origin works: "" (none), "demo" or
	// the path of a clip.
	OfflineSlate string `yaml:"offline_slate" json:"offline_slate"`
	// Sign adds expires and token parameters to every pull from an rtmp
	// origin, signed like a viewer's token (auth.algorithm,
	// auth.expires_param, auth.token_param) for the origin URL's
	// "app/stream" with the secret of its app, valid for SignTTL. A new
	// signature is made on every connect.
	Sign bool `yaml:"sign" json:"sign"`
	// SignTTL is the lifetime of a pull signature (default 1h).
	SignTTL Duration `yaml:"sign_ttl" json:"sign_ttl"`
	// ProbeInterval is how often each origin URL of an on_demand or static
	// entry is probed in the background (default 5s; 0 turns the probes
	// off). Origins with $stream or $app are not probed: their URLs are
	// only known per stream.
	ProbeInterval Duration `yaml:"probe_interval" json:"probe_interval"`
	// BindAddress is the local IP address the pulls and probes of this
	// entry's origins leave from ("": the kernel chooses).
	BindAddress string `yaml:"bind_address" json:"bind_address"`
	// BindDevice binds those connections to a network interface
	// (SO_BINDTODEVICE, Linux only).
	BindDevice string `yaml:"bind_device" json:"bind_device"`
	// Mark sets SO_MARK on those connections (Linux only, needs
	// CAP_NET_ADMIN), for policy routing with "ip rule fwmark"; 0 sets
	// none.
	Mark int64 `yaml:"mark" json:"mark"`
}

// Default returns the built-in configuration: every listener on its default
// address, token auth off, the hub defaults and the single stream entry
// {match: live/demo, mode: static, origins: [demo]}.
func Default() *Config {
	c := &Config{
		Log:    LogConfig{Level: LogInfo, Format: LogText},
		RTMP:   Listener{Listen: ":1935"},
		RTSP:   defaultRTSP(),
		HTTP:   HTTPConfig{Listen: ":8080"},
		Admin:  defaultAdmin(),
		WebRTC: defaultWebRTC(),
		Hub: HubConfig{
			GOPCache: GOPCacheConfig{
				MaxBytes:    16 * MiB,
				MaxDuration: Duration(10e9),
				MaxFrames:   2048,
			},
			SlowViewerTimeout: Duration(10e9),
			MaxLag:            Duration(2e9),
			PublisherConflict: ConflictRefuse,
			StartTimeout:      Duration(5e9),
		},
		Auth: AuthConfig{
			Algorithm:    AlgorithmSHA256,
			ClockSkew:    Duration(30e9),
			ExpiresParam: "expires",
			TokenParam:   "token",
		},
	}
	c.HLS = defaultHLS()
	c.FLV = defaultFLV()
	c.Hooks = defaultHooks()
	c.Cluster = defaultCluster()
	c.Streams = c.defaultStreams()
	return c
}

func (c *Config) defaultStreams() []Stream {
	return []Stream{c.NewStream("live/demo", ModeStatic, DemoOrigin)}
}

// NewStream returns a stream entry with the per-entry defaults (stall_timeout
// 2s, idle_close 10s, start_timeout = c.Hub.StartTimeout, failback true), as
// Parse fills them in for a file's entries.
func (c *Config) NewStream(match, mode string, origins ...string) Stream {
	return Stream{
		Match:           match,
		Mode:            mode,
		Origins:         origins,
		StallTimeout:    DefaultStallTimeout,
		KeyframeTimeout: DefaultKeyframeTimeout,
		IdleClose:       DefaultIdleClose,
		StartTimeout:    c.Hub.StartTimeout,
		Failback:        DefaultFailback,
		SignTTL:         DefaultSignTTL,
		ProbeInterval:   DefaultProbeInterval,
	}
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	n := *c
	n.Auth.Secrets = cloneStringMap(c.Auth.Secrets)
	n.Auth.PublishSecrets = cloneStringMap(c.Auth.PublishSecrets)
	if c.Auth.Apps != nil {
		n.Auth.Apps = make(map[string]AuthApp, len(c.Auth.Apps))
		for k, a := range c.Auth.Apps {
			a.Play, a.Publish, a.BindIP = cloneBool(a.Play), cloneBool(a.Publish), cloneBool(a.BindIP)
			a.Referers = cloneStrings(a.Referers)
			n.Auth.Apps[k] = a
		}
	}
	n.HLS = c.HLS.clone()
	n.WebRTC = c.WebRTC.clone()
	if c.Streams != nil {
		n.Streams = make([]Stream, len(c.Streams))
		for i, s := range c.Streams {
			s.Origins = cloneStrings(s.Origins)
			n.Streams[i] = s
		}
	}
	return &n
}

// Redacted returns a deep copy of c with every non-empty secret replaced by
// "REDACTED", fit for logging or an admin API.
func (c *Config) Redacted() *Config {
	n := c.Clone()
	for _, m := range []map[string]string{n.Auth.Secrets, n.Auth.PublishSecrets} {
		for k, v := range m {
			if v != "" {
				m[k] = "REDACTED"
			}
		}
	}
	if n.Admin.Secret != "" {
		n.Admin.Secret = "REDACTED"
	}
	n.Hooks = n.Hooks.redacted()
	n.Cluster.RedisURL = redactURLPassword(n.Cluster.RedisURL)
	return n
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

// cloneStringMap returns a copy of m; nil stays nil.
func cloneStringMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	n := make(map[string]string, len(m))
	for k, v := range m {
		n[k] = v
	}
	return n
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}
