package config

import (
	"sort"
	"strings"
)

// SplitName splits a stream name "app/stream" at its slash; ok is false
// unless there is exactly one slash with text on both sides.
func SplitName(name string) (app, stream string, ok bool) {
	app, stream, found := strings.Cut(name, "/")
	if !found || app == "" || stream == "" || strings.Contains(stream, "/") {
		return "", "", false
	}
	return app, stream, true
}

// MatchStream returns the first entry of c.Streams whose Match fits name
// ("app/stream"), in file order: the first match wins, so an exact entry
// must come before a pattern that also covers it (Validate rejects entries
// that an earlier one hides). "*" fits every valid name, "app/*" every
// stream of app, and "app/stream" only that name; comparisons are
// case-sensitive. The result points into c.Streams. ok is false when no
// entry fits or name is not a valid "app/stream"; such a stream may still
// be published.
func (c *Config) MatchStream(name string) (*Stream, bool) {
	if _, _, ok := SplitName(name); !ok {
		return nil, false
	}
	for i := range c.Streams {
		if c.Streams[i].Matches(name) {
			return &c.Streams[i], true
		}
	}
	return nil, false
}

// Matches reports whether the entry's Match fits the stream name
// "app/stream".
func (s *Stream) Matches(name string) bool {
	app, _, ok := SplitName(name)
	if !ok {
		return false
	}
	return patternCovers(s.Match, name, app)
}

// patternCovers reports whether pattern fits name, whose app is app. name
// may itself be a pattern ("app/*"), which is how Validate finds hidden
// entries.
func patternCovers(pattern, name, app string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "/*"):
		return pattern[:len(pattern)-2] == app
	default:
		return pattern == name
	}
}

// OriginURLs returns the entry's origins for the stream name "app/stream"
// with every "$stream" replaced by the part after the first slash and
// every "$app" by the part before it (a name without a slash is all
// stream, with an empty app). Names are substituted verbatim, so pass the
// name without any query string. "demo" is returned unchanged.
func (s *Stream) OriginURLs(name string) []string {
	app, stream, found := strings.Cut(name, "/")
	if !found {
		app, stream = "", name
	}
	r := strings.NewReplacer("$stream", stream, "$app", app)
	out := make([]string, len(s.Origins))
	for i, o := range s.Origins {
		out[i] = r.Replace(o)
	}
	return out
}

// AppAuth is the effective auth policy of one app: the per-app overrides
// of auth.apps over the top-level values, and the app's secrets.
type AppAuth struct {
	// Secret is auth.secrets[app], else auth.secrets["*"], else "".
	Secret string
	// PublishSecret is auth.publish_secrets[app], else
	// auth.publish_secrets["*"], else "" (publish tokens are then checked
	// with Secret).
	PublishSecret         string
	Play, Publish, BindIP bool
	Referers              []string
}

// Secret returns the secret of app: auth.secrets[app] if non-empty, else
// auth.secrets["*"]; ok is false if both are empty.
func (a *AuthConfig) Secret(app string) (secret string, ok bool) {
	return appSecret(a.Secrets, app)
}

// PublishSecret returns the secret of app's publish tokens:
// auth.publish_secrets[app] if non-empty, else auth.publish_secrets["*"];
// ok is false if both are empty, and the app's publish tokens are then
// signed with its Secret.
func (a *AuthConfig) PublishSecret(app string) (secret string, ok bool) {
	return appSecret(a.PublishSecrets, app)
}

// appSecret returns m[app] if non-empty, else m["*"]; ok is false if both
// are empty.
func appSecret(m map[string]string, app string) (string, bool) {
	if s := m[app]; s != "" {
		return s, true
	}
	if s := m["*"]; s != "" {
		return s, true
	}
	return "", false
}

// App returns the effective policy of app. For an app with neither an
// override nor a secret of its own this is the default policy, the same as
// App("*").
func (a *AuthConfig) App(app string) AppAuth {
	p := AppAuth{Play: a.Play, Publish: a.Publish, BindIP: a.BindIP}
	p.Secret, _ = a.Secret(app)
	p.PublishSecret, _ = a.PublishSecret(app)
	if o, ok := a.Apps[app]; ok {
		if o.Play != nil {
			p.Play = *o.Play
		}
		if o.Publish != nil {
			p.Publish = *o.Publish
		}
		if o.BindIP != nil {
			p.BindIP = *o.BindIP
		}
		p.Referers = cloneStrings(o.Referers)
	}
	return p
}

// AppNames returns, sorted, every app with its own auth settings: the keys
// of auth.secrets and auth.publish_secrets (except "*") and of auth.apps.
// Every other app gets App("*").
func (a *AuthConfig) AppNames() []string {
	set := map[string]bool{}
	for _, m := range []map[string]string{a.Secrets, a.PublishSecrets} {
		for k := range m {
			if k != "*" {
				set[k] = true
			}
		}
	}
	for k := range a.Apps {
		set[k] = true
	}
	return sortedKeys(set)
}

// appNames returns, sorted, every app named anywhere in c: auth.secrets,
// auth.publish_secrets and auth.apps keys and the app part of
// streams[].match (except "*").
func (c *Config) appNames() []string {
	set := map[string]bool{}
	for _, k := range c.Auth.AppNames() {
		set[k] = true
	}
	for _, s := range c.Streams {
		if app, _, ok := strings.Cut(s.Match, "/"); ok && app != "" && app != "*" {
			set[app] = true
		}
	}
	return sortedKeys(set)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
