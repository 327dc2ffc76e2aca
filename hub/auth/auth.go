// Package auth signs and verifies liveedge URL tokens. It is the single
// admission check that every protocol (RTMP, HLS, WebRTC, RTSP, HTTP-FLV)
// calls before letting a client publish or play a stream.
//
// A token is
//
//	hex(HMAC(secret, "<app>/<stream>:<expires>"))
//
// where expires is a Unix time in seconds. When client-IP binding is on, the
// signed string is "<app>/<stream>:<expires>:<ip>", with ip in the canonical
// [netip.Addr.String] form after unmapping IPv4-mapped IPv6 addresses and
// dropping any zone. HMAC-SHA256 is the default; HMAC-SHA1 is available for
// compatibility with older players and CDNs.
//
// The signed string names no action, so a token signed with an app's secret
// is good for both play and publish. To keep viewers' play tokens from
// publishing, give the app a separate publish secret
// ([AppPolicy.PublishSecret]): publish tokens are then signed with it and
// play tokens with the app's secret, in the same format.
//
// Clients present the token as query parameters (by default
// "?expires=<unix>&token=<hex>") or, on HTTP protocols, as an
// "Authorization: Bearer <hex>" header, in which case expires still comes from
// the query. Use [Signer] to produce tokens and [Policy.Check] to verify them.
package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Default query parameter names.
const (
	DefaultExpiresParam = "expires"
	DefaultTokenParam   = "token"
)

// Algorithm is the HMAC hash used for tokens. The zero value is SHA256.
type Algorithm int

const (
	SHA256 Algorithm = iota // HMAC-SHA256, 64 hex characters (default)
	SHA1                    // HMAC-SHA1, 40 hex characters (compatibility)
)

// ParseAlgorithm parses "sha256", "sha1" or "" (meaning SHA256),
// case-insensitively.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToLower(s) {
	case "", "sha256":
		return SHA256, nil
	case "sha1":
		return SHA1, nil
	}
	return 0, fmt.Errorf("auth: unknown algorithm %q (want sha256 or sha1)", s)
}

// String returns "sha256" or "sha1".
func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "sha256"
	case SHA1:
		return "sha1"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

// MarshalText implements [encoding.TextMarshaler].
func (a Algorithm) MarshalText() ([]byte, error) {
	if a.newHash() == nil {
		return nil, fmt.Errorf("auth: unknown algorithm %d", int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] using [ParseAlgorithm],
// so an Algorithm can be read directly from configuration files.
func (a *Algorithm) UnmarshalText(b []byte) error {
	v, err := ParseAlgorithm(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// newHash returns the hash constructor, or nil for an unknown algorithm.
func (a Algorithm) newHash() func() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New
	case SHA1:
		return sha1.New
	}
	return nil
}

// Action is what a client asks to do with a stream.
type Action int

const (
	Play    Action = iota // subscribe to a stream
	Publish               // push a stream
)

// String returns "play" or "publish".
func (a Action) String() string {
	switch a {
	case Play:
		return "play"
	case Publish:
		return "publish"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Sign returns the hex token for stream ("app/name") valid until expires
// (Unix seconds). If ip is valid the token is bound to that client address;
// the zero netip.Addr produces an unbound token. Sign panics if alg is not a
// known Algorithm.
func Sign(alg Algorithm, secret []byte, stream string, expires int64, ip netip.Addr) string {
	return hex.EncodeToString(mac(alg, secret, stream, expires, ip))
}

// mac computes the raw HMAC over the signed string.
func mac(alg Algorithm, secret []byte, stream string, expires int64, ip netip.Addr) []byte {
	h := alg.newHash()
	if h == nil {
		panic("auth: unknown algorithm " + alg.String())
	}
	m := hmac.New(h, secret)
	var buf [64]byte
	msg := append(buf[:0], stream...)
	msg = append(msg, ':')
	msg = strconv.AppendInt(msg, expires, 10)
	if ip.IsValid() {
		msg = append(msg, ':')
		msg = canonicalIP(ip).AppendTo(msg)
	}
	m.Write(msg)
	return m.Sum(nil)
}

// canonicalIP unmaps IPv4-mapped IPv6 addresses and drops the zone.
func canonicalIP(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

// Signer produces signed query strings. It is used by the "liveedge token
// sign" command and by the edge to sign its own pulls from an origin.
type Signer struct {
	Algorithm    Algorithm
	Secret       []byte
	ExpiresParam string // default "expires"
	TokenParam   string // default "token"
}

// Query returns the query parameters (expires and token) that authorize
// stream ("app/name") until now+ttl, truncated to whole seconds. A valid ip
// binds the token to that client address; pass the zero netip.Addr for an
// unbound token.
func (s Signer) Query(stream string, ttl time.Duration, now time.Time, ip netip.Addr) url.Values {
	expires := now.Add(ttl).Unix()
	return url.Values{
		orDefault(s.ExpiresParam, DefaultExpiresParam): {strconv.FormatInt(expires, 10)},
		orDefault(s.TokenParam, DefaultTokenParam):     {Sign(s.Algorithm, s.Secret, stream, expires, ip)},
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// BearerToken extracts the token from an Authorization header value of the
// form "Bearer <token>" (scheme matched case-insensitively). It returns ""
// for any other value.
func BearerToken(authorization string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// Redacted replaces sensitive values in [Redact].
const Redacted = "REDACTED"

// Redact returns rawQuery with the values of the "token", "secret" and "sign"
// parameters, plus any names in extra (such as a custom token parameter),
// replaced by "REDACTED", so that logged URLs never carry credentials. Names
// are matched case-insensitively and a leading "?" is tolerated; everything
// else is returned byte for byte unchanged.
func Redact(rawQuery string, extra ...string) string {
	sensitive := func(key string) bool {
		key = strings.TrimPrefix(key, "?")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		for _, s := range [...]string{DefaultTokenParam, "secret", "sign"} {
			if strings.EqualFold(key, s) {
				return true
			}
		}
		for _, s := range extra {
			if strings.EqualFold(key, s) {
				return true
			}
		}
		return false
	}
	var b strings.Builder
	b.Grow(len(rawQuery))
	for i, part := range strings.Split(rawQuery, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		if key, _, ok := strings.Cut(part, "="); ok && sensitive(key) {
			b.WriteString(key)
			b.WriteString("=" + Redacted)
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}
