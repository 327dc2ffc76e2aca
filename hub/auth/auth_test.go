package auth

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	testNow     = time.Unix(1_700_000_000, 0)
	testSecret  = []byte("s3cret-live-key")
	otherSecret = []byte("other-app-key")
	pubSecret   = []byte("publish-only-key")
	clientIP    = netip.MustParseAddr("203.0.113.7")
	sentinels   = []error{ErrMissingToken, ErrMalformed, ErrExpired, ErrBadSignature, ErrRefererDenied, ErrNoSecret}
)

const skew = 30 * time.Second

// testPolicy returns a policy exercising every AppPolicy knob.
func testPolicy(alg Algorithm) *Policy {
	return &Policy{
		Algorithm: alg,
		Default:   AppPolicy{Secret: testSecret, Play: true, Publish: true},
		Apps: map[string]AppPolicy{
			"open":     {Secret: testSecret, Publish: true}, // play needs no token
			"other":    {Secret: otherSecret, Play: true, Publish: true},
			"bound":    {Secret: testSecret, Play: true, BindIP: true},
			"web":      {AllowedReferers: []string{"Example.com", "*.cdn.example.net"}},
			"webtok":   {Secret: testSecret, Play: true, AllowedReferers: []string{"example.com"}},
			"nosecret": {Play: true},
			// split signs publish tokens with pubSecret, play tokens with testSecret.
			"split":      {Secret: testSecret, PublishSecret: pubSecret, Play: true, Publish: true},
			"splitbound": {Secret: testSecret, PublishSecret: pubSecret, Play: true, Publish: true, BindIP: true},
			"pubonly":    {PublishSecret: pubSecret, Play: true, Publish: true}, // no play secret
			"pubopen":    {Secret: testSecret, PublishSecret: pubSecret, Publish: true},
		},
		ClockSkew: skew,
		Now:       func() time.Time { return testNow },
	}
}

// signed returns a default-named query carrying a token for stream.
func signed(t testing.TB, alg Algorithm, secret []byte, stream string, expires int64, ip netip.Addr) url.Values {
	t.Helper()
	return url.Values{
		"expires": {strconv.FormatInt(expires, 10)},
		"token":   {Sign(alg, secret, stream, expires, ip)},
	}
}

// with returns a copy of q with key set to value.
func with(t testing.TB, q url.Values, key, value string) url.Values {
	t.Helper()
	c := url.Values{}
	for k, v := range q {
		c[k] = append([]string(nil), v...)
	}
	c.Set(key, value)
	return c
}

// flipHex changes the hex digit at position i.
func flipHex(t testing.TB, tok string, i int) string {
	t.Helper()
	b := []byte(tok)
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}

type checkCase struct {
	name string
	req  Request
	want error // nil or a sentinel
}

// checkCases returns the table for alg; it also seeds FuzzCheck.
func checkCases(t testing.TB, alg Algorithm) []checkCase {
	t.Helper()
	exp := testNow.Add(time.Hour).Unix()
	valid := signed(t, alg, testSecret, "live/cam1", exp, netip.Addr{})
	tok := valid.Get("token")
	hexLen := 2 * alg.size()
	justExpired := signed(t, alg, testSecret, "live/cam1", testNow.Unix()-1, netip.Addr{})
	withinSkew := signed(t, alg, testSecret, "live/cam1", testNow.Add(-skew).Unix(), netip.Addr{})
	pastSkew := signed(t, alg, testSecret, "live/cam1", testNow.Add(-skew).Unix()-1, netip.Addr{})
	bound := signed(t, alg, testSecret, "bound/cam1", exp, clientIP)
	mapped := netip.AddrFrom16(clientIP.As16()) // ::ffff:203.0.113.7
	webtok := signed(t, alg, testSecret, "webtok/cam1", exp, netip.Addr{})
	splitPlay := signed(t, alg, testSecret, "split/cam1", exp, netip.Addr{})
	splitPub := signed(t, alg, pubSecret, "split/cam1", exp, netip.Addr{})
	splitBoundPub := signed(t, alg, pubSecret, "splitbound/cam1", exp, clientIP)
	splitBoundPlay := signed(t, alg, testSecret, "splitbound/cam1", exp, clientIP)
	pubOnly := signed(t, alg, pubSecret, "pubonly/cam1", exp, netip.Addr{})

	return []checkCase{
		{"valid play", Request{Action: Play, Stream: "live/cam1", Query: valid}, nil},
		{"valid publish", Request{Action: Publish, Stream: "live/cam1", Query: valid}, nil},
		{"uppercase hex", Request{Stream: "live/cam1", Query: with(t, valid, "token", strings.ToUpper(tok))}, nil},
		{"expires now", Request{Stream: "live/cam1", Query: signed(t, alg, testSecret, "live/cam1", testNow.Unix(), netip.Addr{})}, nil},
		{"expired one second ago within skew", Request{Stream: "live/cam1", Query: justExpired}, nil},
		{"expired exactly at skew", Request{Stream: "live/cam1", Query: withinSkew}, nil},
		{"expired one second past skew", Request{Stream: "live/cam1", Query: pastSkew}, ErrExpired},
		{"expired long ago", Request{Stream: "live/cam1", Query: signed(t, alg, testSecret, "live/cam1", 1, netip.Addr{})}, ErrExpired},
		{"far future expires", Request{Stream: "live/cam1", Query: signed(t, alg, testSecret, "live/cam1", 1<<62, netip.Addr{})}, nil},
		{"max int64 expires", Request{Stream: "live/cam1", Query: signed(t, alg, testSecret, "live/cam1", 1<<63-1, netip.Addr{})}, nil},
		{"replay on other stream", Request{Stream: "live/cam2", Query: valid}, ErrBadSignature},
		{"replay on other app same secret", Request{Stream: "vod/cam1", Query: valid}, ErrBadSignature},
		{"wrong app secret", Request{Stream: "other/cam1", Query: signed(t, alg, testSecret, "other/cam1", exp, netip.Addr{})}, ErrBadSignature},
		{"right app secret", Request{Stream: "other/cam1", Query: signed(t, alg, otherSecret, "other/cam1", exp, netip.Addr{})}, nil},
		{"extended expires", Request{Stream: "live/cam1", Query: with(t, valid, "expires", strconv.FormatInt(exp+3600, 10))}, ErrBadSignature},
		{"tampered first digit", Request{Stream: "live/cam1", Query: with(t, valid, "token", flipHex(t, tok, 0))}, ErrBadSignature},
		{"tampered last digit", Request{Stream: "live/cam1", Query: with(t, valid, "token", flipHex(t, tok, len(tok)-1))}, ErrBadSignature},
		{"other algorithm token", Request{Stream: "live/cam1", Query: signed(t, 1-alg, testSecret, "live/cam1", exp, netip.Addr{})}, ErrMalformed},

		{"bound right ip", Request{Stream: "bound/cam1", Query: bound, ClientIP: clientIP}, nil},
		{"bound wrong ip", Request{Stream: "bound/cam1", Query: bound, ClientIP: netip.MustParseAddr("203.0.113.8")}, ErrBadSignature},
		{"bound no ip", Request{Stream: "bound/cam1", Query: bound}, ErrBadSignature},
		{"bound mapped client ip", Request{Stream: "bound/cam1", Query: bound, ClientIP: mapped}, nil},
		{"bound signed with mapped ip", Request{Stream: "bound/cam1", Query: signed(t, alg, testSecret, "bound/cam1", exp, mapped), ClientIP: clientIP}, nil},
		{"bound ipv6", Request{Stream: "bound/cam1", Query: signed(t, alg, testSecret, "bound/cam1", exp, netip.MustParseAddr("2001:db8::1")), ClientIP: netip.MustParseAddr("2001:DB8:0::1")}, nil},
		{"bound unbound token", Request{Stream: "bound/cam1", Query: signed(t, alg, testSecret, "bound/cam1", exp, netip.Addr{}), ClientIP: clientIP}, ErrBadSignature},

		{"missing token", Request{Stream: "live/cam1"}, ErrMissingToken},
		{"missing token with expires", Request{Stream: "live/cam1", Query: url.Values{"expires": {"1700003600"}}}, ErrMissingToken},
		{"empty token", Request{Stream: "live/cam1", Query: with(t, valid, "token", "")}, ErrMissingToken},
		{"missing token publish open app", Request{Action: Publish, Stream: "open/cam1"}, ErrMissingToken},
		{"not required", Request{Stream: "open/cam1"}, nil},
		{"not required bad token ignored", Request{Stream: "open/cam1", Query: url.Values{"expires": {"x"}, "token": {"zz"}}}, nil},
		{"no secret", Request{Stream: "nosecret/cam1", Query: valid}, ErrNoSecret},

		{"bearer", Request{Stream: "live/cam1", Query: url.Values{"expires": valid["expires"]}, Bearer: tok}, nil},
		{"bearer same as query", Request{Stream: "live/cam1", Query: valid, Bearer: tok}, nil},
		{"bearer conflicts with query", Request{Stream: "live/cam1", Query: valid, Bearer: flipHex(t, tok, 3)}, ErrMalformed},
		{"bearer tampered", Request{Stream: "live/cam1", Query: url.Values{"expires": valid["expires"]}, Bearer: flipHex(t, tok, 3)}, ErrBadSignature},
		{"bearer without expires", Request{Stream: "live/cam1", Bearer: tok}, ErrMalformed},

		{"expires empty", Request{Stream: "live/cam1", Query: with(t, valid, "expires", "")}, ErrMalformed},
		{"expires negative", Request{Stream: "live/cam1", Query: with(t, valid, "expires", "-1700003600")}, ErrMalformed},
		{"expires zero", Request{Stream: "live/cam1", Query: with(t, valid, "expires", "0")}, ErrMalformed},
		{"expires plus sign", Request{Stream: "live/cam1", Query: with(t, valid, "expires", "+1700003600")}, ErrMalformed},
		{"expires huge", Request{Stream: "live/cam1", Query: with(t, valid, "expires", "99999999999999999999999")}, ErrMalformed},
		{"expires not decimal", Request{Stream: "live/cam1", Query: with(t, valid, "expires", "0x65")}, ErrMalformed},
		{"expires float", Request{Stream: "live/cam1", Query: with(t, valid, "expires", "1700003600.5")}, ErrMalformed},
		{"expires repeated", Request{Stream: "live/cam1", Query: url.Values{"expires": {valid.Get("expires"), "1"}, "token": {tok}}}, ErrMalformed},
		{"token repeated", Request{Stream: "live/cam1", Query: url.Values{"expires": valid["expires"], "token": {tok, tok}}}, ErrMalformed},
		{"token non-hex", Request{Stream: "live/cam1", Query: with(t, valid, "token", "g"+tok[1:])}, ErrMalformed},
		{"token too short", Request{Stream: "live/cam1", Query: with(t, valid, "token", tok[:hexLen-2])}, ErrMalformed},
		{"token too long", Request{Stream: "live/cam1", Query: with(t, valid, "token", tok+"00")}, ErrMalformed},
		{"token odd length", Request{Stream: "live/cam1", Query: with(t, valid, "token", tok[:hexLen-1])}, ErrMalformed},

		{"stream empty", Request{Stream: "", Query: valid}, ErrMalformed},
		{"stream no slash", Request{Stream: "live", Query: valid}, ErrMalformed},
		{"stream empty app", Request{Stream: "/cam1", Query: valid}, ErrMalformed},
		{"stream empty name", Request{Stream: "live/", Query: valid}, ErrMalformed},
		{"stream two slashes", Request{Stream: "live/a/b", Query: valid}, ErrMalformed},
		{"stream dotdot", Request{Stream: "live/..", Query: valid}, ErrMalformed},
		{"stream backslash", Request{Stream: `live/a\b`, Query: valid}, ErrMalformed},
		{"stream colon", Request{Stream: "live/cam1:1", Query: valid}, ErrMalformed},
		{"stream control char", Request{Stream: "live/cam\n1", Query: valid}, ErrMalformed},
		{"stream C1 control", Request{Stream: "live/cam\u00851", Query: valid}, ErrMalformed},
		{"stream invalid utf8", Request{Stream: "live/cam\xff", Query: valid}, ErrMalformed},
		{"stream unicode ok", Request{Stream: "live/caméra", Query: signed(t, alg, testSecret, "live/caméra", exp, netip.Addr{})}, nil},
		{"unknown action", Request{Action: 7, Stream: "live/cam1", Query: valid}, ErrMalformed},

		{"publish secret: play token refused for publish", Request{Action: Publish, Stream: "split/cam1", Query: splitPlay}, ErrBadSignature},
		{"publish secret: play token plays", Request{Action: Play, Stream: "split/cam1", Query: splitPlay}, nil},
		{"publish secret: publish token publishes", Request{Action: Publish, Stream: "split/cam1", Query: splitPub}, nil},
		{"publish secret: publish token refused for play", Request{Action: Play, Stream: "split/cam1", Query: splitPub}, ErrBadSignature},
		{"publish secret: bearer publish token", Request{Action: Publish, Stream: "split/cam1", Query: url.Values{"expires": splitPub["expires"]}, Bearer: splitPub.Get("token")}, nil},
		{"publish secret: bearer play token refused for publish", Request{Action: Publish, Stream: "split/cam1", Query: url.Values{"expires": splitPlay["expires"]}, Bearer: splitPlay.Get("token")}, ErrBadSignature},
		{"publish secret: missing token", Request{Action: Publish, Stream: "split/cam1"}, ErrMissingToken},
		{"publish secret: other stream", Request{Action: Publish, Stream: "split/cam2", Query: splitPub}, ErrBadSignature},
		{"publish secret: expired within skew", Request{Action: Publish, Stream: "split/cam1", Query: signed(t, alg, pubSecret, "split/cam1", testNow.Add(-skew).Unix(), netip.Addr{})}, nil},
		{"publish secret: expired past skew", Request{Action: Publish, Stream: "split/cam1", Query: signed(t, alg, pubSecret, "split/cam1", testNow.Add(-skew).Unix()-1, netip.Addr{})}, ErrExpired},
		{"publish secret: expired play token", Request{Action: Publish, Stream: "split/cam1", Query: signed(t, alg, testSecret, "split/cam1", 1, netip.Addr{})}, ErrBadSignature},
		{"publish secret: bound right ip", Request{Action: Publish, Stream: "splitbound/cam1", Query: splitBoundPub, ClientIP: clientIP}, nil},
		{"publish secret: bound wrong ip", Request{Action: Publish, Stream: "splitbound/cam1", Query: splitBoundPub, ClientIP: netip.MustParseAddr("203.0.113.8")}, ErrBadSignature},
		{"publish secret: bound no ip", Request{Action: Publish, Stream: "splitbound/cam1", Query: splitBoundPub}, ErrBadSignature},
		{"publish secret: bound unbound token", Request{Action: Publish, Stream: "splitbound/cam1", Query: signed(t, alg, pubSecret, "splitbound/cam1", exp, netip.Addr{}), ClientIP: clientIP}, ErrBadSignature},
		{"publish secret: bound play token refused for publish", Request{Action: Publish, Stream: "splitbound/cam1", Query: splitBoundPlay, ClientIP: clientIP}, ErrBadSignature},
		{"publish secret: bound play token plays", Request{Action: Play, Stream: "splitbound/cam1", Query: splitBoundPlay, ClientIP: clientIP}, nil},
		{"publish secret only: publish", Request{Action: Publish, Stream: "pubonly/cam1", Query: pubOnly}, nil},
		{"publish secret only: play has no secret", Request{Action: Play, Stream: "pubonly/cam1", Query: pubOnly}, ErrNoSecret},
		{"publish secret, play open: play token ignored", Request{Action: Play, Stream: "pubopen/cam1", Query: url.Values{"token": {"zz"}}}, nil},
		{"publish secret, play open: play-secret token refused for publish", Request{Action: Publish, Stream: "pubopen/cam1", Query: signed(t, alg, testSecret, "pubopen/cam1", exp, netip.Addr{})}, ErrBadSignature},
		{"no publish secret: play token publishes", Request{Action: Publish, Stream: "live/cam1", Query: valid}, nil},
		{"no publish secret: publish-secret token refused", Request{Action: Publish, Stream: "live/cam1", Query: signed(t, alg, pubSecret, "live/cam1", exp, netip.Addr{})}, ErrBadSignature},

		{"referer absent", Request{Stream: "web/cam1"}, nil},
		{"referer exact", Request{Stream: "web/cam1", Referer: "https://example.com/player?x=1"}, nil},
		{"referer case and port", Request{Stream: "web/cam1", Referer: "http://EXAMPLE.com:8080/"}, nil},
		{"referer subdomain not exact", Request{Stream: "web/cam1", Referer: "https://www.example.com/"}, ErrRefererDenied},
		{"referer wildcard", Request{Stream: "web/cam1", Referer: "https://a.cdn.example.net/p"}, nil},
		{"referer wildcard deep", Request{Stream: "web/cam1", Referer: "https://x.y.cdn.example.net/p"}, nil},
		{"referer wildcard apex", Request{Stream: "web/cam1", Referer: "https://cdn.example.net/p"}, ErrRefererDenied},
		{"referer suffix trick", Request{Stream: "web/cam1", Referer: "https://evilexample.com/"}, ErrRefererDenied},
		{"referer mismatch", Request{Stream: "web/cam1", Referer: "https://evil.test/"}, ErrRefererDenied},
		{"referer userinfo trick", Request{Stream: "web/cam1", Referer: "https://example.com@evil.test/"}, ErrRefererDenied},
		{"referer relative", Request{Stream: "web/cam1", Referer: "/player"}, ErrRefererDenied},
		{"origin preferred", Request{Stream: "web/cam1", Origin: "https://evil.test", Referer: "https://example.com/"}, ErrRefererDenied},
		{"origin match", Request{Stream: "web/cam1", Origin: "https://example.com", Referer: "https://evil.test/"}, nil},
		{"origin null", Request{Stream: "web/cam1", Origin: "null"}, ErrRefererDenied},
		{"referer checked before token", Request{Stream: "webtok/cam1", Query: webtok, Referer: "https://evil.test/"}, ErrRefererDenied},
		{"referer and token", Request{Stream: "webtok/cam1", Query: webtok, Referer: "https://example.com/"}, nil},
		{"no list any referer", Request{Stream: "live/cam1", Query: valid, Referer: "https://evil.test/"}, nil},
	}
}

func TestCheck(t *testing.T) {
	for _, alg := range []Algorithm{SHA256, SHA1} {
		p := testPolicy(alg)
		for _, tc := range checkCases(t, alg) {
			t.Run(alg.String()+"/"+tc.name, func(t *testing.T) {
				err := p.Check(tc.req)
				if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
					t.Fatalf("Check() = %v, want %v", err, tc.want)
				}
				if err != nil {
					assertSafeError(t, err, tc.req)
				}
			})
		}
	}
}

// assertSafeError checks that err wraps a sentinel and leaks no credential.
func assertSafeError(t testing.TB, err error, r Request) {
	t.Helper()
	if !isSentinel(err) {
		t.Fatalf("error %q wraps no sentinel", err)
	}
	// The stream name may be echoed; ignore it so fuzzed names that happen
	// to contain a secret or token do not count as leaks.
	msg := err.Error()
	if r.Stream != "" {
		msg = strings.ReplaceAll(msg, r.Stream, "")
	}
	for _, s := range [][]byte{testSecret, otherSecret, pubSecret} {
		if strings.Contains(msg, string(s)) {
			t.Fatalf("error %q contains a secret", err)
		}
	}
	for _, tok := range append(r.Query["token"], r.Bearer) {
		if (len(tok) == 40 || len(tok) == 64) && strings.Contains(strings.ToLower(msg), strings.ToLower(tok)) {
			t.Fatalf("error %q contains the token", err)
		}
	}
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestSignerQuery(t *testing.T) {
	tests := []struct {
		name   string
		signer Signer
		policy Policy
		ip     netip.Addr
	}{
		{"sha256 defaults", Signer{Secret: testSecret}, Policy{}, netip.Addr{}},
		{"sha1", Signer{Algorithm: SHA1, Secret: testSecret}, Policy{Algorithm: SHA1}, netip.Addr{}},
		{"custom params", Signer{Secret: testSecret, ExpiresParam: "e", TokenParam: "sig"}, Policy{ExpiresParam: "e", TokenParam: "sig"}, netip.Addr{}},
		{"bound", Signer{Algorithm: SHA1, Secret: testSecret}, Policy{Algorithm: SHA1}, clientIP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.signer.Query("live/cam1", time.Minute, testNow, tc.ip)
			p := tc.policy
			p.Default = AppPolicy{Secret: testSecret, Play: true, Publish: true, BindIP: tc.ip.IsValid()}
			p.Now = func() time.Time { return testNow.Add(time.Minute) }
			req := Request{Action: Publish, Stream: "live/cam1", Query: q, ClientIP: tc.ip}
			if err := p.Check(req); err != nil {
				t.Fatalf("Check(%s) = %v", Redact(q.Encode(), tc.signer.TokenParam), err)
			}
			if got, want := len(q), 2; got != want {
				t.Fatalf("query has %d params, want %d: %v", got, want, q)
			}
			p.Now = func() time.Time { return testNow.Add(time.Minute + time.Second) }
			if err := p.Check(req); !errors.Is(err, ErrExpired) {
				t.Fatalf("Check after ttl = %v, want ErrExpired", err)
			}
		})
	}
}

func TestSignKnownAnswer(t *testing.T) {
	// Independently computed with:
	//   printf 'live/cam1:1700003600' | openssl dgst -sha256 -hmac key
	//   printf 'live/cam1:1700003600:1.2.3.4' | openssl dgst -sha1 -hmac key
	tests := []struct {
		alg  Algorithm
		ip   netip.Addr
		want string
	}{
		{SHA256, netip.Addr{}, "fe60126724f3fc783150c20efb48ad81033dc3fbe325f2f6e617be236bfd408f"},
		{SHA1, netip.MustParseAddr("::ffff:1.2.3.4"), "084b71958c7441fe349b3815225ec3498065ca39"},
	}
	for _, tc := range tests {
		if got := Sign(tc.alg, []byte("key"), "live/cam1", 1700003600, tc.ip); got != tc.want {
			t.Errorf("Sign(%v, ip=%v) = %s, want %s", tc.alg, tc.ip, got, tc.want)
		}
	}
}

func TestParseAlgorithm(t *testing.T) {
	tests := []struct {
		in      string
		want    Algorithm
		wantErr bool
	}{
		{"", SHA256, false},
		{"sha256", SHA256, false},
		{"SHA256", SHA256, false},
		{"sha1", SHA1, false},
		{"md5", 0, true},
		{"sha-256", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseAlgorithm(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.wantErr)
		}
		var a Algorithm
		if err := a.UnmarshalText([]byte(tc.in)); a != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("UnmarshalText(%q) = %v, %v", tc.in, a, err)
		}
	}
	for _, a := range []Algorithm{SHA256, SHA1} {
		b, err := a.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseAlgorithm(string(b)); err != nil || back != a {
			t.Errorf("round trip %v -> %q -> %v, %v", a, b, back, err)
		}
	}
	if _, err := Algorithm(9).MarshalText(); err == nil {
		t.Error("MarshalText(9) succeeded")
	}
}

func TestUnknownAlgorithm(t *testing.T) {
	p := testPolicy(Algorithm(9))
	q := url.Values{"expires": {"1700003600"}, "token": {strings.Repeat("0", 64)}}
	if err := p.Check(Request{Stream: "live/cam1", Query: q}); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("Check = %v, want ErrNoSecret", err)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Play: "play", Publish: "publish", 5: "Action(5)"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Bearer abc123", "abc123"},
		{"bearer  abc123 ", "abc123"},
		{"Basic dXNlcjpwYXNz", ""},
		{"Bearer", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := BearerToken(tc.in); got != tc.want {
			t.Errorf("BearerToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		in    string
		extra []string
		want  string
	}{
		{"", nil, ""},
		{"expires=1700003600&token=abcdef", nil, "expires=1700003600&token=REDACTED"},
		{"?token=abc&x=1", nil, "?token=REDACTED&x=1"},
		{"secret=hunter2&sign=ff&TOKEN=aa&tok%65n=bb", nil, "secret=REDACTED&sign=REDACTED&TOKEN=REDACTED&tok%65n=REDACTED"},
		{"a=1&b=&c", nil, "a=1&b=&c"},
		{"token&x=token%3Dabc", nil, "token&x=token%3Dabc"},
		{"token=&token=a=b", nil, "token=REDACTED&token=REDACTED"},
		{"sig=abc&token=def&q=%zz", []string{"sig"}, "sig=REDACTED&token=REDACTED&q=%zz"},
	}
	for _, tc := range tests {
		if got := Redact(tc.in, tc.extra...); got != tc.want {
			t.Errorf("Redact(%q, %q) = %q, want %q", tc.in, tc.extra, got, tc.want)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, alg := range []Algorithm{SHA256, SHA1} {
		for _, tc := range checkCases(f, alg) {
			ip := ""
			if tc.req.ClientIP.IsValid() {
				ip = tc.req.ClientIP.String()
			}
			f.Add(int(alg), int(tc.req.Action), tc.req.Stream, tc.req.Query.Encode(), tc.req.Bearer, ip, tc.req.Referer, tc.req.Origin)
		}
	}
	f.Fuzz(func(t *testing.T, alg, action int, stream, rawQuery, bearer, ip, referer, origin string) {
		q, _ := url.ParseQuery(rawQuery) // keep what parsed
		addr, _ := netip.ParseAddr(ip)
		r := Request{Action: Action(action), Stream: stream, Query: q, Bearer: bearer, ClientIP: addr, Referer: referer, Origin: origin}
		if err := testPolicy(Algorithm(alg)).Check(r); err != nil {
			assertSafeError(t, err, r)
		}
		_ = Redact(rawQuery, "sig")
	})
}

func BenchmarkCheck(b *testing.B) {
	for _, alg := range []Algorithm{SHA256, SHA1} {
		b.Run(alg.String(), func(b *testing.B) {
			p := testPolicy(alg)
			r := Request{
				Action:   Play,
				Stream:   "bound/cam1",
				Query:    signed(b, alg, testSecret, "bound/cam1", testNow.Add(time.Hour).Unix(), clientIP),
				ClientIP: clientIP,
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Check(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
