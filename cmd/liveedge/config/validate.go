package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldError is one problem found by Validate: Path is the YAML path of
// the offending value, such as "streams[1].mode" or "auth.apps.live.play".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Validate checks the whole configuration and returns every problem at
// once, joined with errors.Join (one "path: message" per line); each is a
// *FieldError. It checks:
//
//   - log.level and log.format, hub.publisher_conflict, auth.algorithm
//     and streams[].mode are among their allowed values;
//   - admin.secret is set when admin.listen is not a loopback address;
//     admin.metrics_max_streams is >= 1;
//   - listen addresses are "host:port" with a numeric port ("" disables
//     the listener) and no two TCP listeners share a port;
//     webrtc.udp_port is in 1..65535;
//   - webrtc.udp_host and public_ips are IP addresses, ice_servers
//     stun:/stuns:/turn:/turns: URLs, host_ips and remote_candidates
//     CIDR prefixes (or addresses), peer_timeout > 0 and start_delay in
//     0..1s;
//   - durations are > 0, except auth.clock_skew which may be 0; the GOP
//     cache limits are > 0;
//   - auth.expires_param and auth.token_param are distinct query
//     parameter names; auth.secrets, auth.publish_secrets and auth.apps
//     keys are app names ("*" only in the two secret maps); referers are
//     host patterns ("example.com", "*.example.com");
//   - hls.variant is lowlatency, mpegts or fmp4; hls durations and
//     segment_count fit the variant; hls.apps keys are app names;
//   - hooks URLs are "" or http(s) URLs with a host; hooks.timeout and
//     none_reader_delay are > 0, cache_ttl >= 0, max_concurrency >= 1 and
//     failure is closed or open;
//   - every app that requires play tokens has a secret, its own or "*",
//     and every app that requires publish tokens has a secret or a publish
//     secret, its own or "*" (run ApplyEnv first);
//   - streams[].match is "*", "app/*" or "app/stream" with non-empty parts,
//     and not hidden by an earlier entry; static entries name one stream;
//   - on_demand and static entries have origins, publish entries have
//     none; each origin is "demo" or an rtmp, rtmps, rtsp or rtsps URL with
//     a host, using no placeholders but $stream and $app;
//   - cluster.redis_url is "" or a redis(s):// URL with a host; the
//     advertised URLs are base URLs of their protocol; cluster.heartbeat
//     and lease_ttl are > 0;
//   - streams[].probe_interval is >= 0, bind_address is an IP address,
//     bind_device an interface name (not a check that it exists) and mark
//     an integer in 0..4294967295.
//
// It does not touch the network or the file system (an offline_slate clip
// path is not checked).
func (c *Config) Validate() error {
	v := &validator{}
	c.validateLog(v)
	c.validateListeners(v)
	c.validateTLS(v)
	c.validateAdmin(v)
	c.validateHub(v)
	c.validateAuth(v)
	c.validateHLS(v)
	c.validateFLV(v)
	c.validateHooks(v)
	c.validateLimits(v)
	c.validateRTSP(v)
	c.validateWebRTC(v)
	c.validateCluster(v)
	c.validateStreams(v)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(path, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.add(path, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.add(path, "must be > 0 (got %s)", d)
	}
}

func (c *Config) validateLog(v *validator) {
	v.oneOf("log.level", c.Log.Level, LogDebug, LogInfo, LogWarn, LogError)
	v.oneOf("log.format", c.Log.Format, LogText, LogJSON)
}

func (c *Config) validateListeners(v *validator) {
	type bound struct{ path, addr, host, port string }
	var seen []bound
	for _, l := range []struct {
		path string
		addr string
	}{
		{"rtmp.listen", c.RTMP.Listen},
		{"rtsp.listen", c.RTSP.Listen},
		{"http.listen", c.HTTP.Listen},
		{"admin.listen", c.Admin.Listen},
	} {
		if l.addr == "" {
			continue // disabled
		}
		host, port, err := splitListen(l.addr)
		if err != nil {
			v.add(l.path, "invalid address %q: %v", l.addr, err)
			continue
		}
		for _, o := range seen {
			if port != "0" && port == o.port && (host == o.host || isWildcard(host) || isWildcard(o.host)) {
				v.add(l.path, "%q conflicts with %s %q", l.addr, o.path, o.addr)
			}
		}
		seen = append(seen, bound{l.path, l.addr, host, port})
	}
	if p := c.WebRTC.UDPPort; p < 1 || p > 65535 {
		v.add("webrtc.udp_port", "%d is not in 1..65535", p)
	}
	if p := c.WebRTC.TCPPort; p < 0 || p > 65535 {
		v.add("webrtc.tcp_port", "%d is not in 0..65535 (0 turns ICE-TCP off)", p)
	} else if p != 0 {
		for _, o := range seen {
			if o.port == strconv.Itoa(p) && (c.WebRTC.UDPHost == "" || isWildcard(o.host) || o.host == c.WebRTC.UDPHost) {
				v.add("webrtc.tcp_port", "%d conflicts with %s %q", p, o.path, o.addr)
			}
		}
	}
}

// splitListen checks a listen address: "host:port" or ":port", where the
// port is numeric (0 = any free port) and host has no spaces.
func splitListen(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", "", errors.New(ae.Err + ` (want "host:port" or ":port")`)
		}
		return "", "", err
	}
	n, perr := strconv.Atoi(port)
	if perr != nil || n < 0 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return "", "", fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || r == '/' }) {
		return "", "", fmt.Errorf("bad host %q", host)
	}
	return host, strconv.Itoa(n), nil
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::" || host == "[::]"
}

// validateTLS checks that the HTTP certificate and key come together.
// The files are read when the listener starts, and an error there names
// the field too.
func (c *Config) validateTLS(v *validator) {
	h := c.HTTP
	switch {
	case h.TLSCert != "" && h.TLSKey == "":
		v.add("http.tls_key", "required with http.tls_cert")
	case h.TLSKey != "" && h.TLSCert == "":
		v.add("http.tls_cert", "required with http.tls_key")
	}
}

func (c *Config) validateHub(v *validator) {
	h := &c.Hub
	if h.GOPCache.MaxBytes <= 0 {
		v.add("hub.gop_cache.max_bytes", "must be > 0 (got %d)", int64(h.GOPCache.MaxBytes))
	}
	v.positive("hub.gop_cache.max_duration", h.GOPCache.MaxDuration)
	if h.GOPCache.MaxFrames <= 0 {
		v.add("hub.gop_cache.max_frames", "must be > 0 (got %d)", h.GOPCache.MaxFrames)
	}
	v.positive("hub.slow_viewer_timeout", h.SlowViewerTimeout)
	v.positive("hub.max_lag", h.MaxLag)
	v.oneOf("hub.publisher_conflict", h.PublisherConflict, ConflictRefuse, ConflictTakeover)
	v.positive("hub.start_timeout", h.StartTimeout)
}

var paramName = regexp.MustCompile(`^[A-Za-z0-9_.~-]+$`)

// mapPath renders a map entry: auth.apps.live, or auth.secrets["*"] for keys
// that are not plain words.
func mapPath(prefix, key string) string {
	if key != "" && paramName.MatchString(key) && !strings.Contains(key, ".") {
		return prefix + "." + key
	}
	return prefix + "[" + strconv.Quote(key) + "]"
}

func (c *Config) validateAuth(v *validator) {
	a := &c.Auth
	v.oneOf("auth.algorithm", a.Algorithm, AlgorithmSHA256, AlgorithmSHA1)
	if a.ClockSkew < 0 {
		v.add("auth.clock_skew", "must be >= 0 (got %s)", a.ClockSkew)
	}
	for _, p := range []struct{ path, val string }{
		{"auth.expires_param", a.ExpiresParam},
		{"auth.token_param", a.TokenParam},
	} {
		if !paramName.MatchString(p.val) {
			v.add(p.path, "%q is not a query parameter name (letters, digits, \"_\", \"-\", \".\", \"~\")", p.val)
		}
	}
	if a.ExpiresParam != "" && a.ExpiresParam == a.TokenParam {
		v.add("auth.token_param", "%q is also auth.expires_param", a.TokenParam)
	}
	for _, m := range []struct {
		path    string
		secrets map[string]string
	}{{"auth.secrets", a.Secrets}, {"auth.publish_secrets", a.PublishSecrets}} {
		for _, app := range sortedKeys(m.secrets) {
			if app == "*" {
				continue
			}
			if msg := checkSegment(app); msg != "" {
				v.add(mapPath(m.path, app), "invalid app name %q: %s", app, msg)
			}
		}
	}
	for _, app := range sortedKeys(a.Apps) {
		path := mapPath("auth.apps", app)
		if app == "*" {
			v.add(path, `"*" is not an app; the top-level auth.play, auth.publish and auth.bind_ip are the default`)
		} else if msg := checkSegment(app); msg != "" {
			v.add(path, "invalid app name %q: %s", app, msg)
		}
		for i, r := range a.Apps[app].Referers {
			if msg := checkReferer(r); msg != "" {
				v.add(fmt.Sprintf("%s.referers[%d]", path, i), "%q %s", r, msg)
			}
		}
	}

	// Every app that requires tokens needs a secret to check them with:
	// its secret for play tokens, its secret or publish secret for publish
	// tokens.
	hasPublishSecret := func(app string) bool { _, ok := a.PublishSecret(app); return ok }
	for _, action := range []struct {
		key      string
		global   bool
		override func(AuthApp) *bool
		required func(AppAuth) bool
		other    func(app string) bool // another secret that satisfies the requirement
	}{
		{"play", a.Play, func(o AuthApp) *bool { return o.Play }, func(p AppAuth) bool { return p.Play }, nil},
		{"publish", a.Publish, func(o AuthApp) *bool { return o.Publish }, func(p AppAuth) bool { return p.Publish }, hasPublishSecret},
	} {
		satisfied := func(app string) bool {
			_, ok := a.Secret(app)
			return ok || action.other != nil && action.other(app)
		}
		if action.global && len(c.appNames()) == 0 && !satisfied("*") {
			if action.other != nil {
				v.add("auth."+action.key, `requires a secret: auth.secrets and auth.publish_secrets are empty (set auth.secrets["*"], auth.publish_secrets["*"], %s or %s)`, EnvSecret, EnvPublishSecret)
			} else {
				v.add("auth."+action.key, `requires a secret: auth.secrets is empty (set auth.secrets["*"] or %s)`, EnvSecret)
			}
		}
		for _, app := range c.appNames() {
			if !action.required(a.App(app)) || satisfied(app) {
				continue
			}
			path := "auth." + action.key
			if o, ok := a.Apps[app]; ok && action.override(o) != nil {
				path = mapPath("auth.apps", app) + "." + action.key
			}
			if action.other != nil {
				v.add(path, "requires a secret for app %q (set %s, auth.secrets[\"*\"], %s or %s; or a publish secret: %s, auth.publish_secrets[\"*\"], %s or %s)",
					app, mapPath("auth.secrets", app), EnvSecretName(app), EnvSecret,
					mapPath("auth.publish_secrets", app), EnvPublishSecretName(app), EnvPublishSecret)
			} else {
				v.add(path, "requires a secret for app %q (set %s, auth.secrets[\"*\"], %s or %s)",
					app, mapPath("auth.secrets", app), EnvSecretName(app), EnvSecret)
			}
		}
	}
}

// checkReferer returns why a referer pattern is invalid, or "".
func checkReferer(p string) string {
	host, _ := strings.CutPrefix(p, "*.")
	switch {
	case host == "":
		return `is empty (want a host like "example.com" or "*.example.com")`
	case strings.Contains(host, "://") || strings.ContainsAny(host, "/?#"):
		return `must be a host like "example.com" or "*.example.com", not a URL`
	case strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "contains spaces"
	case strings.Contains(host, "*"):
		return `may only use "*" as a leading "*." (as in "*.example.com")`
	}
	return ""
}

// checkSegment returns why s is not a valid app or stream name, or "". The
// rules follow the stream names the hub accepts.
func checkSegment(s string) string {
	switch {
	case s == "":
		return "empty name"
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.Contains(s, ".."):
		return `contains ".."`
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "contains spaces or control characters"
	case strings.ContainsAny(s, `/\:*$?#`):
		return `contains one of / \ : * $ ? #`
	}
	return ""
}

// checkMatch returns why m is not a valid streams[].match, or "".
func checkMatch(m string) string {
	const want = `(want "*", "app/*" or "app/stream")`
	if m == "*" {
		return ""
	}
	if strings.Contains(m, "..") {
		return `must not contain ".." ` + want
	}
	app, stream, ok := strings.Cut(m, "/")
	if !ok {
		return "has no \"/\" " + want
	}
	if msg := checkSegment(app); msg != "" {
		if app == "*" {
			return `app may not be "*" ` + want
		}
		return "bad app: " + msg + " " + want
	}
	if stream == "*" {
		return ""
	}
	if msg := checkSegment(stream); msg != "" {
		return "bad stream: " + msg + " " + want
	}
	return ""
}

var originSchemes = map[string]bool{"rtmp": true, "rtmps": true, "rtsp": true, "rtsps": true}

// checkOrigin returns why o is not a valid origin, or "".
func checkOrigin(o string) string {
	const want = `(want rtmp, rtmps, rtsp, rtsps or "demo")`
	if o == DemoOrigin {
		return ""
	}
	if o == "" {
		return "empty origin " + want
	}
	for rest := o; ; {
		i := strings.IndexByte(rest, '$')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		if !strings.HasPrefix(rest, "stream") && !strings.HasPrefix(rest, "app") {
			word := rest[:len(rest)-len(strings.TrimLeftFunc(rest, func(r rune) bool {
				return r == '_' || r == '{' || r == '}' || unicode.IsLetter(r) || unicode.IsDigit(r)
			}))]
			return fmt.Sprintf("unknown placeholder %q (want $stream or $app)", "$"+word)
		}
	}
	// Substitute sample names so that placeholders in the host parse.
	u, err := url.Parse(strings.NewReplacer("$stream", "stream", "$app", "app").Replace(o))
	if err != nil {
		return fmt.Sprintf("invalid URL %q: %v", o, errors.Unwrap(err))
	}
	if !originSchemes[u.Scheme] {
		if u.Scheme == "" {
			return fmt.Sprintf("%q has no scheme %s", o, want)
		}
		return fmt.Sprintf("unsupported scheme %q %s", u.Scheme, want)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Sprintf("%q has no host", o)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("%q has a bad port %q", o, p)
		}
	}
	return ""
}

func (c *Config) validateStreams(v *validator) {
	for i := range c.Streams {
		s := &c.Streams[i]
		path := fmt.Sprintf("streams[%d]", i)
		matchOK := false
		if msg := checkMatch(s.Match); msg != "" {
			v.add(path+".match", "%q %s", s.Match, msg)
		} else {
			matchOK = true
			app, _, _ := strings.Cut(s.Match, "/")
			for j := range i {
				if patternCovers(c.Streams[j].Match, s.Match, app) {
					v.add(path+".match", "%q is never used: streams[%d] (%q) matches first", s.Match, j, c.Streams[j].Match)
					break
				}
			}
		}
		c.validateEntry(v, path, s, matchOK)
	}
}

// ValidateStream checks one stream entry outside a file (one added at run
// time): errors name the field under path, as Validate's do.
func (c *Config) ValidateStream(path string, s *Stream) error {
	v := &validator{}
	matchOK := true
	if msg := checkMatch(s.Match); msg != "" {
		v.add(path+".match", "%q %s", s.Match, msg)
		matchOK = false
	}
	c.validateEntry(v, path, s, matchOK)
	return errors.Join(v.errs...)
}

// validateEntry checks an entry's fields other than its match.
func (c *Config) validateEntry(v *validator, path string, s *Stream, matchOK bool) {
	v.oneOf(path+".mode", s.Mode, ModeOnDemand, ModeStatic, ModePublish)
	switch s.Mode {
	case ModeStatic:
		if matchOK && (s.Match == "*" || strings.HasSuffix(s.Match, "/*")) {
			v.add(path+".match", "%q is a pattern, but mode static needs one \"app/stream\" name", s.Match)
		}
		fallthrough
	case ModeOnDemand:
		if len(s.Origins) == 0 {
			v.add(path+".origins", "required for mode %s", s.Mode)
		}
	case ModePublish:
		if len(s.Origins) != 0 {
			v.add(path+".origins", "not used by mode publish (remove them or use on_demand or static)")
		}
	}
	for j, o := range s.Origins {
		if msg := checkOrigin(o); msg != "" {
			v.add(fmt.Sprintf("%s.origins[%d]", path, j), "%s", msg)
		}
	}
	v.positive(path+".stall_timeout", s.StallTimeout)
	v.positive(path+".keyframe_timeout", s.KeyframeTimeout)
	if s.KeyframeTimeout > 0 && s.KeyframeTimeout < s.StallTimeout {
		v.add(path+".keyframe_timeout", "must be >= stall_timeout (got %s < %s)", s.KeyframeTimeout, s.StallTimeout)
	}
	v.positive(path+".idle_close", s.IdleClose)
	v.positive(path+".start_timeout", s.StartTimeout)
	v.positive(path+".sign_ttl", s.SignTTL)
	if s.ProbeInterval < 0 {
		v.add(path+".probe_interval", "must be >= 0 (got %s; 0 turns the probes off)", s.ProbeInterval)
	}
	validateEgress(v, path, s)
	if s.Sign {
		c.validateSign(v, path, s)
	}
	if s.OfflineSlate != "" && strings.TrimSpace(s.OfflineSlate) == "" {
		v.add(path+".offline_slate", "is blank (want \"\", %q or a clip path)", DemoOrigin)
	}
}

// validateEgress checks bind_address, bind_device and mark.
func validateEgress(v *validator, path string, s *Stream) {
	if s.BindAddress != "" {
		if _, err := netip.ParseAddr(s.BindAddress); err != nil {
			v.add(path+".bind_address", "%q is not an IP address", s.BindAddress)
		}
	}
	// IFNAMSIZ is 16 bytes with the terminating NUL.
	if d := s.BindDevice; d != "" && (len(d) > 15 || strings.ContainsAny(d, "/ \t\n\x00") || d == "." || d == "..") {
		v.add(path+".bind_device", "%q is not a network interface name", d)
	}
	if s.Mark < 0 || s.Mark > 1<<32-1 {
		v.add(path+".mark", "%d is not an integer in 0..4294967295", s.Mark)
	}
}

// validateSign checks that every rtmp origin of a signing entry has a
// secret for its app (the app of the match for an origin that uses $app).
func (c *Config) validateSign(v *validator, path string, s *Stream) {
	matchApp, _, _ := strings.Cut(s.Match, "/")
	for j, o := range s.Origins {
		u, err := url.Parse(strings.NewReplacer("$stream", "stream", "$app", matchApp).Replace(o))
		if o == DemoOrigin || err != nil || (u.Scheme != "rtmp" && u.Scheme != "rtmps") {
			continue
		}
		app, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if app == "" {
			app = "*"
		}
		if _, ok := c.Auth.Secret(app); !ok {
			v.add(fmt.Sprintf("%s.origins[%d]", path, j), "sign: true requires a secret for app %q (set %s, auth.secrets[\"*\"], %s or %s)",
				app, mapPath("auth.secrets", app), EnvSecretName(app), EnvSecret)
		}
	}
}
