package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reasons returned (wrapped) by [Policy.Check]; test with [errors.Is]. Error
// texts never contain the token or the secret, so they are safe to log.
var (
	ErrMissingToken  = errors.New("auth: missing token")
	ErrMalformed     = errors.New("auth: malformed request")
	ErrExpired       = errors.New("auth: token expired")
	ErrBadSignature  = errors.New("auth: bad token signature")
	ErrRefererDenied = errors.New("auth: referer/origin not allowed")
	ErrNoSecret      = errors.New("auth: token required but no usable secret configured")
)

// AppPolicy is the admission policy of one application (the "app" in
// "app/name").
type AppPolicy struct {
	// Secret is the HMAC key for this app's play tokens, and for its
	// publish tokens too when PublishSecret is empty.
	Secret []byte
	// PublishSecret, if non-empty, is the HMAC key for this app's publish
	// tokens; Secret then verifies play tokens only. The token format is
	// the same, so with both set a play token cannot publish and a publish
	// token cannot play. If PublishSecret is empty, Secret verifies both
	// actions and any valid play token also authorizes publishing.
	PublishSecret []byte
	// Play and Publish say whether a token is required for that action.
	Play, Publish bool
	// BindIP requires tokens to be bound to the client's IP address.
	BindIP bool
	// AllowedReferers, if non-empty, restricts HTTP clients to pages whose
	// Origin (preferred) or Referer host matches one of these patterns:
	// "example.com" matches that host exactly, "*.example.com" matches any
	// subdomain of example.com (but not example.com itself). Matching is
	// case-insensitive and ignores ports.
	AllowedReferers []string
}

// Policy decides whether a client may publish or play a stream. A Policy must
// not be modified while Check may run concurrently; Check itself is safe for
// concurrent use.
type Policy struct {
	// Algorithm is the HMAC hash used by every app.
	Algorithm Algorithm
	// Default applies to apps that have no entry in Apps.
	Default AppPolicy
	// Apps holds per-app policies keyed by app name.
	Apps map[string]AppPolicy
	// ClockSkew extends every token's lifetime to tolerate clock drift
	// between the signer and this server. Negative values count as zero.
	ClockSkew time.Duration
	// ExpiresParam and TokenParam name the query parameters; they default
	// to "expires" and "token".
	ExpiresParam, TokenParam string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Request describes one publish or play attempt.
type Request struct {
	Action Action
	// Stream is "app/name".
	Stream string
	// Query holds the URL query parameters (may be nil).
	Query url.Values
	// Bearer is the token from an "Authorization: Bearer" header (see
	// BearerToken); HTTP protocols only.
	Bearer string
	// ClientIP is the client's address, needed when the app binds tokens
	// to IPs.
	ClientIP netip.Addr
	// Referer and Origin are the HTTP request headers; RTMP and RTSP leave
	// them empty.
	Referer, Origin string
}

// Check reports whether r is admitted: it returns nil when allowed and
// otherwise an error wrapping one of ErrMissingToken, ErrMalformed,
// ErrExpired, ErrBadSignature, ErrRefererDenied or ErrNoSecret.
//
// The rules, in order:
//
//   - r.Action must be Play or Publish; else ErrMalformed.
//   - The stream name must be "app/name" with both parts non-empty, exactly
//     one "/", valid UTF-8, and no "..", "\", ":" or control characters
//     (":" is rejected so the signed string is unambiguous); else
//     ErrMalformed.
//   - The app's policy is Apps[app], or Default if app is not listed.
//   - If AllowedReferers is non-empty and the request carries an Origin or
//     Referer header, the host of Origin (or Referer if there is no Origin)
//     must match a pattern; else ErrRefererDenied. A request carrying
//     neither header is allowed: RTMP and RTSP never send them, and
//     browsers omit them on direct navigation, so their absence proves
//     nothing. The allow-list is hotlink protection, not authentication;
//     use tokens for that.
//   - If the app does not require a token for r.Action, the request is
//     allowed. Any token present is then ignored, not verified, so an
//     invalid or expired token does not make an open stream fail.
//   - A token is required. The key that verifies it is the app's
//     PublishSecret for Publish when that is non-empty, and its Secret
//     otherwise (Play always uses Secret). That key must be non-empty and
//     Policy.Algorithm must be SHA256 or SHA1 (else ErrNoSecret), and the
//     request needs a non-empty token from the token query parameter or
//     r.Bearer (else ErrMissingToken; if both are given they must be equal,
//     else ErrMalformed).
//   - expires must be a positive decimal integer and the token hex of the
//     algorithm's length, 64 characters for SHA256 and 40 for SHA1, each
//     parameter given at most once; else ErrMalformed.
//   - The token must match the HMAC, under that key, of the stream, expires
//     and, with BindIP, r.ClientIP (an unknown ClientIP fails), compared in
//     constant time; else ErrBadSignature.
//   - The token is accepted while now <= expires + ClockSkew, compared at
//     one-second resolution; else ErrExpired. The signature is verified
//     first, so ErrExpired always means a genuine, expired token.
func (p *Policy) Check(r Request) error {
	if r.Action != Play && r.Action != Publish {
		return fmt.Errorf("%w: unknown action %d", ErrMalformed, int(r.Action))
	}
	app, ok := splitStream(r.Stream)
	if !ok {
		return fmt.Errorf("%w: invalid stream name", ErrMalformed)
	}
	ap, ok := p.Apps[app]
	if !ok {
		ap = p.Default
	}
	if !refererAllowed(ap.AllowedReferers, r.Origin, r.Referer) {
		return fmt.Errorf("%w: %s %s", ErrRefererDenied, r.Action, r.Stream)
	}
	if required := ap.Play && r.Action == Play || ap.Publish && r.Action == Publish; !required {
		return nil
	}
	secret := ap.Secret
	if r.Action == Publish && len(ap.PublishSecret) > 0 {
		secret = ap.PublishSecret
	}
	size := p.Algorithm.size()
	if len(secret) == 0 || size == 0 {
		return fmt.Errorf("%w: %s %s", ErrNoSecret, r.Action, r.Stream)
	}

	tok, okTok := single(r.Query, orDefault(p.TokenParam, DefaultTokenParam))
	exp, okExp := single(r.Query, orDefault(p.ExpiresParam, DefaultExpiresParam))
	if !okTok || !okExp {
		return fmt.Errorf("%w: repeated token or expires parameter", ErrMalformed)
	}
	if r.Bearer != "" {
		if tok != "" && tok != r.Bearer {
			return fmt.Errorf("%w: query token and bearer token differ", ErrMalformed)
		}
		tok = r.Bearer
	}
	if tok == "" {
		return fmt.Errorf("%w: %s %s", ErrMissingToken, r.Action, r.Stream)
	}
	expires, ok := parseExpires(exp)
	if !ok {
		return fmt.Errorf("%w: expires is not a positive integer", ErrMalformed)
	}
	var gotBuf [64]byte
	got := gotBuf[:size]
	if len(tok) != 2*size {
		return fmt.Errorf("%w: token must be %d hex characters", ErrMalformed, 2*size)
	}
	if _, err := hex.Decode(got, []byte(tok)); err != nil {
		return fmt.Errorf("%w: token is not hex", ErrMalformed)
	}

	var ip netip.Addr
	if ap.BindIP {
		if !r.ClientIP.IsValid() {
			return fmt.Errorf("%w: token is IP-bound but client address is unknown", ErrBadSignature)
		}
		ip = r.ClientIP
	}
	if !hmac.Equal(got, mac(p.Algorithm, secret, r.Stream, expires, ip)) {
		return fmt.Errorf("%w: %s %s", ErrBadSignature, r.Action, r.Stream)
	}
	if expired(p.now(), expires, p.ClockSkew) {
		return fmt.Errorf("%w: %s %s", ErrExpired, r.Action, r.Stream)
	}
	return nil
}

func (p *Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// size returns the MAC length in bytes, or 0 for an unknown algorithm.
func (a Algorithm) size() int {
	switch a {
	case SHA256:
		return sha256.Size
	case SHA1:
		return sha1.Size
	}
	return 0
}

// splitStream validates an "app/name" stream and returns its app.
func splitStream(s string) (app string, ok bool) {
	app, name, found := strings.Cut(s, "/")
	if !found || app == "" || name == "" || strings.Contains(name, "/") ||
		strings.Contains(s, "..") || strings.ContainsAny(s, `\:`) || !utf8.ValidString(s) {
		return "", false
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return "", false
		}
	}
	return app, true
}

// single returns the only value of key in q ("" if absent); ok is false if
// key is repeated.
func single(q url.Values, key string) (v string, ok bool) {
	switch vs := q[key]; len(vs) {
	case 0:
		return "", true
	case 1:
		return vs[0], true
	}
	return "", false
}

// parseExpires parses a positive decimal integer without sign or spaces.
func parseExpires(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// expired reports whether now > expires + skew at one-second resolution,
// without overflowing for huge expires values.
func expired(now time.Time, expires int64, skew time.Duration) bool {
	n := now.Unix()
	if n <= expires {
		return false
	}
	return n-expires > int64(max(skew, 0)/time.Second)
}

// refererAllowed applies an AllowedReferers list to the Origin or Referer
// header; see AppPolicy.AllowedReferers and Policy.Check.
func refererAllowed(patterns []string, origin, referer string) bool {
	raw := origin
	if raw == "" {
		raw = referer
	}
	if len(patterns) == 0 || raw == "" {
		return true
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" { // e.g. "Origin: null" or a relative Referer
		return false
	}
	for _, p := range patterns {
		p = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(p)), ".")
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if suffix != "" && strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if p != "" && host == p {
			return true
		}
	}
	return false
}

// FromHTTP builds the request an HTTP output (HLS, FLV, WHEP, WebSocket)
// admits: the URL query, a Bearer token, the client address, Referer and
// Origin.
func FromHTTP(r *http.Request, action Action, stream string) Request {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		ip = ap.Addr()
	}
	return Request{Action: action, Stream: stream, Query: r.URL.Query(),
		Bearer: BearerToken(r.Header.Get("Authorization")), ClientIP: ip,
		Referer: r.Header.Get("Referer"), Origin: r.Header.Get("Origin")}
}
