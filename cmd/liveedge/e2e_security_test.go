package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/gorilla/websocket"

	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/internal/nginxtest"
	"github.com/liveedge/liveedge/internal/whepclient"
)

// Security review of the admission layer and the HTTP surfaces, each check
// against the real binary with real clients: token replay on another
// stream, IP-bound tokens, expiry and clock skew, tokens in logs and admin
// listings, the admin secret, CORS on the admin port and path traversal.

const secSecret = "sec-s3cret-for-tests"

// secConfig: every listener on loopback, tokens required to play and
// publish (no clock skew), app "bound" binds tokens to the client IP.
// relay/a pulls live/a from this server with a signed URL, relay/b and
// relay/d (RTSP) with a token written into its origin URL (originToken),
// relay/c and relay/e with a wrong one (refused, retried): no token may
// show. relay/b and relay/c share an origin but for the token: shown
// without it, they are one origin in the metrics.
func secConfig(t *testing.T, originToken func(expires int64) string) string {
	t.Helper()
	port, rtspPort := nginxtest.FreePort(t), nginxtest.FreePort(t)
	exp := time.Now().Add(time.Hour).Unix()
	bad := strings.Repeat("0", 64) // a wrong token: the pull is refused
	return fmt.Sprintf(`
log: {level: debug}
rtmp: {listen: "127.0.0.1:%d"}
rtsp: {listen: "127.0.0.1:%d", udp_rtp_port: 0}
http: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0", secret: %q}
hub: {start_timeout: 2s}
%s
auth:
  secrets: {live: %q, bound: %q, relay: %q}
  play: true
  publish: true
  clock_skew: 0s
  apps: {bound: {bind_ip: true}}
streams:
  - {match: live/a, mode: static, origins: [demo]}
  - {match: live/b, mode: static, origins: [demo]}
  - {match: bound/a, mode: static, origins: [demo]}
  - {match: relay/a, mode: static, origins: ["rtmp://127.0.0.1:%d/live/a"], sign: true}
  - {match: relay/b, mode: static, origins: ["rtmp://127.0.0.1:%d/live/b?expires=%d&token=%s"]}
  - {match: relay/c, mode: static, origins: ["rtmp://127.0.0.1:%d/live/b?expires=%d&token=%s"]}
  - {match: relay/d, mode: static, origins: ["rtsp://127.0.0.1:%d/live/b?expires=%d&token=%s"]}
  - {match: relay/e, mode: static, origins: ["rtsp://127.0.0.1:%d/live/c?expires=%d&token=%s"]}
`, port, rtspPort, adminSecret, secWebRTC(t), secSecret, secSecret, secSecret, port, port, exp, originToken(exp),
		port, exp, bad, rtspPort, exp, originToken(exp), rtspPort, exp, bad)
}

// secWebRTC is a webrtc section on loopback ports only.
func secWebRTC(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("webrtc: {udp_port: %d, tcp_port: %d, udp_host: 127.0.0.1, remote_candidates: {allow: [127.0.0.0/8]}}",
		freeUDPPort(t), nginxtest.FreePort(t))
}

// secEnv is a running server with its addresses and the tokens handed out
// (for the check that none of them reaches a log line).
type secEnv struct {
	s       *server
	cfgPath string
	http    string // base URL
	rtsp    string // host:port
	offer   string // a WHEP offer
	issued  []string
}

// sign returns a query (expires=…&token=…) from `liveedge token sign`.
func (e *secEnv) sign(t *testing.T, stream, ttl string, ip ...string) string {
	t.Helper()
	args := []string{"token", "sign", "--config", e.cfgPath, "--stream", stream, "--ttl", ttl}
	if len(ip) > 0 {
		args = append(args, "--ip", ip[0])
	}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("token sign: exit %d: %s", code, stderr.String())
	}
	q := strings.TrimSpace(stdout.String())
	v, err := url.ParseQuery(q)
	if err != nil || len(v.Get("token")) != 64 || v.Get("expires") == "" {
		t.Fatalf("token sign printed %q", q)
	}
	e.issued = append(e.issued, v.Get("token"))
	return q
}

// secClient is an HTTP client whose connections come from local address
// from (a 127.0.0.0/8 address).
func secClient(t *testing.T, from string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// secGet sends a request and returns the status and up to 64 KiB of the
// body (an FLV response never ends).
func secGet(t *testing.T, c *http.Client, method, u string, hdr http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, string(b)
}

// secFLV opens an HTTP-FLV stream; on 200 it requires the FLV signature.
func secFLV(t *testing.T, c *http.Client, u string, hdr http.Header) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		sig := make([]byte, 3)
		if _, err := io.ReadFull(res.Body, sig); err != nil || string(sig) != "FLV" {
			t.Fatalf("GET %s: 200 but no FLV header (%q, %v)", u, sig, err)
		}
	}
	return res.StatusCode
}

// secRTMP connects an RTMP player or publisher from local address from;
// it returns the connected client (the caller closes it) or the refusal.
func secRTMP(t *testing.T, rawURL string, publish bool, from string) (*gortmplib.Client, error) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c := &gortmplib.Client{URL: u, Publish: publish, DialContext: d.DialContext}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// rtmpStatus is "accepted" or "refused: <err>".
func rtmpStatus(t *testing.T, rawURL string, publish bool, from string) string {
	t.Helper()
	c, err := secRTMP(t, rawURL, publish, from)
	if err != nil {
		return "refused: " + err.Error()
	}
	c.Close()
	return "accepted"
}

// secDescribe sends an RTSP DESCRIBE from local address from and returns
// the status code.
func secDescribe(t *testing.T, addr, path, from string, hdr ...string) int {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	req := "DESCRIBE rtsp://" + addr + path + " RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		t.Fatalf("DESCRIBE %s: %v", path, err)
	}
	var code int
	if _, err := fmt.Sscanf(line, "RTSP/1.0 %d", &code); err != nil {
		t.Fatalf("DESCRIBE %s: status line %q", path, line)
	}
	return code
}

// whepPost posts the offer and returns the status, deleting a session
// that was created.
func (e *secEnv) whepPost(t *testing.T, c *http.Client, u string, hdr http.Header) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(e.offer))
	req.Header.Set("Content-Type", "application/sdp")
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode == http.StatusCreated {
		loc := res.Header.Get("Location")
		if loc == "" {
			t.Fatalf("POST %s: 201 without Location", u)
		}
		req, _ := http.NewRequest(http.MethodDelete, e.http+loc, nil)
		if r, err := c.Do(req); err == nil {
			r.Body.Close()
		}
	}
	return res.StatusCode
}

func bearer(q string) http.Header {
	v, _ := url.ParseQuery(q)
	return http.Header{"Authorization": {"Bearer " + v.Get("token")}}
}

func expiresOnly(q string) string {
	v, _ := url.ParseQuery(q)
	return "expires=" + v.Get("expires")
}

// hlsFiles fetches stream's multivariant playlist with query and returns
// the media playlist, a segment, a part and the init file URLs (each as the
// muxer wrote them, query included).
func hlsFiles(t *testing.T, c *http.Client, base, stream, query string) map[string]string {
	t.Helper()
	index := base + "/" + stream + "/index.m3u8?" + query
	code, body := secGet(t, c, http.MethodGet, index, nil, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d", index, code)
	}
	out := map[string]string{"index": index}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	media := resolveURI(t, index, strings.TrimSpace(lines[len(lines)-1]))
	out["media playlist"] = media
	code, body = secGet(t, c, http.MethodGet, media, nil, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d", media, code)
	}
	for _, u := range m3u8URIs(body) {
		abs := resolveURI(t, media, u)
		switch {
		case strings.Contains(u, "_init.mp4"):
			out["init"] = abs
		case strings.Contains(u, "_part"):
			out["part"] = abs
		case strings.Contains(u, "_seg") && out["segment"] == "":
			out["segment"] = abs
		}
	}
	for _, k := range []string{"segment", "part", "init"} {
		if out[k] == "" {
			t.Fatalf("no %s in the media playlist:\n%s", k, body)
		}
		if !strings.Contains(out[k], "token=") || !strings.Contains(out[k], "expires=") {
			t.Fatalf("the %s URI does not carry the viewer's token: %s", k, out[k])
		}
	}
	return out
}

// withStream swaps the stream of an HLS URL and, if query is not "-", its
// query.
func withStream(t *testing.T, raw, from, to, query string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = strings.Replace(u.Path, "/"+from+"/", "/"+to+"/", 1)
	if query != "-" {
		u.RawQuery = query
	}
	return u.String()
}

func TestSecurityAuth(t *testing.T) {
	requireTools(t)
	var relayToken string
	cfg := secConfig(t, func(exp int64) string {
		relayToken = auth.Sign(auth.SHA256, []byte(secSecret), "live/b", exp, netip.Addr{})
		return relayToken
	})
	e := &secEnv{s: startServer(t, cfg), cfgPath: writeFile(t, cfg), issued: []string{relayToken}}
	s := e.s
	e.http = "http://" + s.httpAddr(t)
	e.rtsp = s.rtspAddr(t)
	s.waitLog(t, `msg=listening proto=webrtc addr=127\.0\.0\.1:`, 10*time.Second)
	for _, name := range []string{"live/a", "live/b", "bound/a", "relay/a", "relay/b", "relay/d"} {
		s.waitLog(t, `msg="origin up" stream=`+name, 10*time.Second)
	}
	for _, name := range []string{"relay/c", "relay/e"} {
		s.waitLog(t, `level=(WARN|ERROR).*stream=`+name, 10*time.Second)
	}
	wc, err := whepclient.New(whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wc.Close)
	if e.offer, err = wc.Offer(); err != nil {
		t.Fatal(err)
	}
	local := secClient(t, "127.0.0.1")
	tokA := e.sign(t, "live/a", "1h")

	// A valid token for live/a opens live/a and nothing else, on every
	// protocol: the stream name is part of what is signed.
	t.Run("replay on another stream", func(t *testing.T) {
		for _, tc := range []struct {
			proto string
			a, b  func(t *testing.T) string
		}{
			{proto: "rtmp play",
				a: func(t *testing.T) string { return rtmpStatus(t, s.url("live/a?"+tokA), false, "127.0.0.1") },
				b: func(t *testing.T) string { return rtmpStatus(t, s.url("live/b?"+tokA), false, "127.0.0.1") }},
			{proto: "rtmp publish",
				// A publish token for live/p1 cannot publish live/p2.
				a: func(t *testing.T) string {
					return rtmpStatus(t, s.url("live/p1?"+e.sign(t, "live/p1", "1h")), true, "127.0.0.1")
				},
				b: func(t *testing.T) string {
					return rtmpStatus(t, s.url("live/p2?"+e.sign(t, "live/p1", "1h")), true, "127.0.0.1")
				}},
			{proto: "http-flv",
				a: func(t *testing.T) string { return fmt.Sprint(secFLV(t, local, e.http+"/live/a.flv?"+tokA, nil)) },
				b: func(t *testing.T) string { return fmt.Sprint(secFLV(t, local, e.http+"/live/b.flv?"+tokA, nil)) }},
			{proto: "http-flv .live.flv, bearer",
				a: func(t *testing.T) string {
					return fmt.Sprint(secFLV(t, local, e.http+"/live/a.live.flv?"+expiresOnly(tokA), bearer(tokA)))
				},
				b: func(t *testing.T) string {
					return fmt.Sprint(secFLV(t, local, e.http+"/live/b.live.flv?"+expiresOnly(tokA), bearer(tokA)))
				}},
			{proto: "ws-flv",
				a: func(t *testing.T) string { return wsStatus(t, "ws://"+s.httpAddr(t)+"/live/a.flv?"+tokA) },
				b: func(t *testing.T) string { return wsStatus(t, "ws://"+s.httpAddr(t)+"/live/b.flv?"+tokA) }},
			{proto: "rtsp",
				a: func(t *testing.T) string { return fmt.Sprint(secDescribe(t, e.rtsp, "/live/a?"+tokA, "127.0.0.1")) },
				b: func(t *testing.T) string { return fmt.Sprint(secDescribe(t, e.rtsp, "/live/b?"+tokA, "127.0.0.1")) }},
			{proto: "rtsp basic credentials",
				a: func(t *testing.T) string {
					return fmt.Sprint(secDescribe(t, e.rtsp, "/live/a", "127.0.0.1", basicAuth(tokA)))
				},
				b: func(t *testing.T) string {
					return fmt.Sprint(secDescribe(t, e.rtsp, "/live/b", "127.0.0.1", basicAuth(tokA)))
				}},
			{proto: "whep",
				a: func(t *testing.T) string { return fmt.Sprint(e.whepPost(t, local, e.http+"/live/a/whep?"+tokA, nil)) },
				b: func(t *testing.T) string { return fmt.Sprint(e.whepPost(t, local, e.http+"/live/b/whep?"+tokA, nil)) }},
			{proto: "whep bearer",
				a: func(t *testing.T) string {
					return fmt.Sprint(e.whepPost(t, local, e.http+"/live/a/whep?"+expiresOnly(tokA), bearer(tokA)))
				},
				b: func(t *testing.T) string {
					return fmt.Sprint(e.whepPost(t, local, e.http+"/live/b/whep?"+expiresOnly(tokA), bearer(tokA)))
				}},
			{proto: "webrtc ws signalling",
				a: func(t *testing.T) string { return wsSignal(t, e, "live/a", tokA) },
				b: func(t *testing.T) string { return wsSignal(t, e, "live/b", tokA) }},
			{proto: "webrtc zlm api",
				a: func(t *testing.T) string { return zlmWebRTC(t, e, "live", "a", tokA) },
				b: func(t *testing.T) string { return zlmWebRTC(t, e, "live", "b", tokA) }},
		} {
			t.Run(tc.proto, func(t *testing.T) {
				if got := tc.a(t); !accepted(got) {
					t.Fatalf("the token's own stream: %s, want it accepted", got)
				}
				if got := tc.b(t); !refused(got) {
					t.Fatalf("token for another stream: %s, want a refusal", got)
				}
			})
		}

		t.Run("hls", func(t *testing.T) {
			files := hlsFiles(t, local, e.http, "live/a", tokA)
			tokB := e.sign(t, "live/b", "1h")
			expired := e.sign(t, "live/a", "-1s")
			for _, kind := range []string{"index", "media playlist", "segment", "part", "init"} {
				u := files[kind]
				if code, _ := secGet(t, local, http.MethodGet, u, nil, ""); code != http.StatusOK {
					t.Fatalf("%s %s = %d with its own token", kind, u, code)
				}
				for _, c := range []struct{ what, u string }{
					{"live/a's token on live/b", withStream(t, u, "live/a", "live/b", "-")},
					{"live/b's token on live/a", withStream(t, u, "live/a", "live/a", tokB)},
					{"no token", withStream(t, u, "live/a", "live/a", "")},
					{"expired token", withStream(t, u, "live/a", "live/a", expired)},
				} {
					code, body := secGet(t, local, http.MethodGet, c.u, nil, "")
					if code == http.StatusOK || (code != http.StatusForbidden && code != http.StatusUnauthorized) {
						t.Errorf("%s, %s: %s = %d (%d bytes), want 401/403", kind, c.what, c.u, code, len(body))
					}
				}
			}

			// The muxer is shared, the playlists are not: a second viewer
			// sees its own token in every URI, never the first one's.
			tokA2 := e.sign(t, "live/a", "2h")
			files2 := hlsFiles(t, local, e.http, "live/a", tokA2)
			v1, _ := url.ParseQuery(tokA)
			v2, _ := url.ParseQuery(tokA2)
			for _, u := range []string{files2["media playlist"], files["media playlist"]} {
				_, body := secGet(t, local, http.MethodGet, u, nil, "")
				mine, other := v2.Get("token"), v1.Get("token")
				if u == files["media playlist"] {
					mine, other = other, mine
				}
				if !strings.Contains(body, mine) || strings.Contains(body, other) {
					t.Errorf("media playlist %s does not carry only its viewer's token:\n%s", u, body)
				}
			}

			// A segment fetched with a Bearer header (no token in its URL)
			// must not be stored by shared caches: they would serve it to
			// anyone asking for that URL without the header.
			seg, _ := url.Parse(files["segment"])
			seg.RawQuery = expiresOnly(tokA)
			req, _ := http.NewRequest(http.MethodGet, seg.String(), nil)
			req.Header = bearer(tokA)
			res, err := local.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if cc := res.Header.Get("Cache-Control"); res.StatusCode != http.StatusOK ||
				strings.Contains(cc, "public") || !strings.Contains(cc, "private") {
				t.Errorf("segment with a Bearer header: %d, Cache-Control %q, want private", res.StatusCode, cc)
			}
			if code, _ := secGet(t, local, http.MethodGet, seg.String(), nil, ""); code == http.StatusOK {
				t.Errorf("segment without the Bearer header: %d", code)
			}
		})
	})

	// A token bound to 127.0.0.1 is refused from 127.0.0.2 (a different
	// client address on the loopback interface) and accepted from
	// 127.0.0.1; forwarding headers do not change the address checked.
	t.Run("ip binding", func(t *testing.T) {
		spoof := http.Header{"X-Forwarded-For": {"127.0.0.1"}, "X-Real-Ip": {"127.0.0.1"}, "Forwarded": {"for=127.0.0.1"}}
		for _, tc := range []struct {
			name string
			do   func(t *testing.T, from, stream, q string) string
		}{
			{"rtmp play", func(t *testing.T, from, stream, q string) string {
				return rtmpStatus(t, s.url(stream+"?"+q), false, from)
			}},
			{"rtmp publish", func(t *testing.T, from, stream, q string) string {
				return rtmpStatus(t, s.url(stream+"?"+q), true, from)
			}},
			{"http-flv", func(t *testing.T, from, stream, q string) string {
				return fmt.Sprint(secFLV(t, secClient(t, from), e.http+"/"+stream+".flv?"+q, spoof))
			}},
			{"hls", func(t *testing.T, from, stream, q string) string {
				code, _ := secGet(t, secClient(t, from), http.MethodGet, e.http+"/"+stream+"/index.m3u8?"+q, spoof, "")
				return fmt.Sprint(code)
			}},
			{"rtsp", func(t *testing.T, from, stream, q string) string {
				return fmt.Sprint(secDescribe(t, e.rtsp, "/"+stream+"?"+q, from))
			}},
			{"whep", func(t *testing.T, from, stream, q string) string {
				return fmt.Sprint(e.whepPost(t, secClient(t, from), e.http+"/"+stream+"/whep?"+q, spoof))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for i, c := range []struct {
					from, boundTo string // boundTo "": an unbound token
					ok            bool
				}{
					{"127.0.0.2", "127.0.0.1", false},
					{"127.0.0.2", "", false},
					{"127.0.0.1", "127.0.0.2", false},
					{"127.0.0.1", "127.0.0.1", true},
					{"127.0.0.2", "127.0.0.2", true},
				} {
					stream := "bound/a"
					if tc.name == "rtmp publish" {
						// A new stream each time (bound/a is a pull, and
						// a publisher that left frees its name only
						// after a moment).
						stream = fmt.Sprintf("bound/p%d", i)
					}
					var q string
					if c.boundTo == "" {
						q = e.sign(t, stream, "1h")
					} else {
						q = e.sign(t, stream, "1h", c.boundTo)
					}
					if got := tc.do(t, c.from, stream, q); c.ok && !accepted(got) || !c.ok && !refused(got) {
						t.Errorf("from %s, token bound to %q: %s, want accepted=%v", c.from, c.boundTo, got, c.ok)
					}
				}
			})
		}
	})

	// A token that expired one second ago is refused everywhere (clock
	// skew 0 in this configuration).
	t.Run("expired by one second", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			do   func(t *testing.T, q string) string
		}{
			{"rtmp play", func(t *testing.T, q string) string { return rtmpStatus(t, s.url("live/a?"+q), false, "127.0.0.1") }},
			{"rtmp publish", func(t *testing.T, q string) string { return rtmpStatus(t, s.url("live/p3?"+q), true, "127.0.0.1") }},
			{"http-flv", func(t *testing.T, q string) string { return fmt.Sprint(secFLV(t, local, e.http+"/live/a.flv?"+q, nil)) }},
			{"hls", func(t *testing.T, q string) string {
				code, _ := secGet(t, local, http.MethodGet, e.http+"/live/a/index.m3u8?"+q, nil, "")
				return fmt.Sprint(code)
			}},
			{"rtsp", func(t *testing.T, q string) string {
				return fmt.Sprint(secDescribe(t, e.rtsp, "/live/a?"+q, "127.0.0.1"))
			}},
			{"whep", func(t *testing.T, q string) string {
				return fmt.Sprint(e.whepPost(t, local, e.http+"/live/a/whep?"+q, nil))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				stream := "live/a"
				if tc.name == "rtmp publish" {
					stream = "live/p3"
				}
				// The server logs the reason (the client is never told).
				re := `access refused.*stream=` + stream + `.*reason="auth: token expired`
				n := countLines(s.logLines(), re)
				if got := tc.do(t, e.sign(t, stream, "-1s")); !refused(got) {
					t.Fatalf("token expired 1 s ago: %s, want a refusal", got)
				}
				for deadline := time.Now().Add(5 * time.Second); countLines(s.logLines(), re) <= n; time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the refusal was not logged as an expired token")
					}
				}
			})
		}
	})

	// While viewers hold tokens, the admin listings and the metrics show
	// none of them.
	t.Run("admin listings", func(t *testing.T) {
		a := newAdminClient(t, s)
		c, err := secRTMP(t, s.url("live/a?"+tokA), false, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req, _ := http.NewRequest(http.MethodGet, e.http+"/live/b.flv?"+e.sign(t, "live/b", "1h"), nil)
		res, err := local.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("FLV viewer: %v %v", err, res)
		}
		defer res.Body.Close()
		waitViewers := func(name, proto string) {
			for deadline := time.Now().Add(10 * time.Second); a.viewers(t, name, proto) < 1; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s viewer of %s not listed", proto, name)
				}
			}
		}
		waitViewers("live/a", "rtmp")
		waitViewers("live/b", "flv")
		// Both probes of relay/b's and relay/c's origin (the same but for
		// the token) have finished: the metrics must still be served.
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, body := a.do(t, http.MethodGet, "/api/v1/origins", true)
			var list struct {
				Origins []struct {
					Origin string `json:"origin"`
					Known  bool   `json:"known"`
				} `json:"origins"`
			}
			json.Unmarshal(body, &list)
			n := 0
			for _, o := range list.Origins {
				if o.Known && strings.HasPrefix(o.Origin, "rtmp://") && strings.HasSuffix(o.Origin, "/live/b") {
					n++
				}
			}
			if n >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the two probes of live/b are not both known: %s", body)
			}
		}
		// A token is 64 hex digits (SHA256); session IDs are 32.
		hex64 := regexp.MustCompile(`[0-9a-fA-F]{64}`)
		check := func(p string, code int, body string) {
			t.Helper()
			if code != http.StatusOK {
				t.Errorf("GET %s: %d: %.1000s", p, code, body)
			}
			for _, tok := range e.issued {
				if strings.Contains(body, tok) {
					t.Errorf("GET %s shows a token: %.2000s", p, body)
				}
			}
			if m := hex64.FindString(body); m != "" {
				t.Errorf("GET %s shows a token-like value %s: %.2000s", p, m, body)
			}
			if strings.Contains(body, secSecret) {
				t.Errorf("GET %s shows the auth secret", p)
			}
		}
		for _, p := range []string{"/api/v1/sessions", "/api/v1/streams", "/api/v1/streams/live/a",
			"/api/v1/streams/relay/a", "/api/v1/streams/relay/b", "/metrics", "/api/v1/origins", "/api/v1/proxies",
			"/index/api/getMediaList?secret=" + adminSecret, "/index/api/getAllSession?secret=" + adminSecret,
			"/index/api/getServerConfig?secret=" + adminSecret, "/index/api/listStreamProxy?secret=" + adminSecret} {
			code, body := a.do(t, http.MethodGet, p, true)
			check(p, code, string(body))
		}
		// The pages of the HTTP listener, open to anyone.
		for _, p := range []string{"/", "/status.json", "/relay/a/", "/relay/b/", "/live/a/"} {
			code, body := secGet(t, local, http.MethodGet, e.http+p, nil, "")
			check(p, code, body)
		}
	})

	// Requests with invalid names still carrying a token: their refusals
	// must not log it either.
	t.Run("refusals of bad names", func(t *testing.T) {
		rtmpStatus(t, s.url("live/a/extra?"+tokA), false, "127.0.0.1")
		rtmpStatus(t, s.url("live/a/extra?"+tokA), true, "127.0.0.1")
		secDescribe(t, e.rtsp, "/live/a/x/y?"+tokA, "127.0.0.1")
		secDescribe(t, e.rtsp, "/live/a?"+tokA+"&%zz", "127.0.0.1")
		for _, p := range []string{"/live/a/x.flv?", "/live/a/x/index.m3u8?", "/live/a/x/whep?", "/nope?", "/live/a/index.m3u8?%zz&"} {
			secGet(t, local, http.MethodGet, e.http+p+tokA, nil, "")
		}
		secGet(t, local, http.MethodGet, e.http+"/index/api/webrtc?app=live&stream=a/../b&type=play&"+tokA, nil, "")
	})

	// Every request above carried a token; none reached the log.
	t.Run("tokens not logged", func(t *testing.T) {
		lines := s.logLines()
		if len(e.issued) < 10 {
			t.Fatalf("only %d tokens issued", len(e.issued))
		}
		leak := regexp.MustCompile(`(?i)token=([^&\s"]+)`)
		for _, l := range lines {
			for _, tok := range e.issued {
				if strings.Contains(l, tok) {
					t.Errorf("a log line carries a token: %s", l)
				}
			}
			for _, m := range leak.FindAllStringSubmatch(l, -1) {
				if m[1] != "REDACTED" {
					t.Errorf("a log line carries a token parameter: %s", l)
				}
			}
			if strings.Contains(l, secSecret) || strings.Contains(l, adminSecret) {
				t.Errorf("a log line carries a secret: %s", l)
			}
		}
		// The refusals themselves were logged: the check above saw them.
		for _, proto := range []string{"rtmp", "http-flv|flv", "hls", "rtsp", "webrtc"} {
			if countLines(lines, `access refused.*proto=(`+proto+`) `) == 0 {
				t.Errorf("no refusal logged for %s", proto)
			}
		}
	})
}

// accepted and refused classify the outcomes the helpers report: a status
// code, "accepted"/"refused: …" (RTMP, WebSocket signalling), "code N"
// (ZLMediaKit API). A refusal is an admission refusal: 401 or 403, an
// RTMP error status, a ZLMediaKit error, a signalling error.
func accepted(s string) bool {
	return s == "accepted" || s == "200" || s == "201" || s == "101" || s == "code 0"
}

func refused(s string) bool {
	switch {
	case s == "401", s == "403", strings.HasPrefix(s, "refused: "),
		strings.HasPrefix(s, "error: Forbidden"), strings.HasPrefix(s, "error: Unauthorized"):
		return true
	case strings.HasPrefix(s, "code "):
		return s != "code 0"
	}
	return false
}

func basicAuth(q string) string {
	v, _ := url.ParseQuery(q)
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(v.Get("expires")+":"+v.Get("token")))
}

// wsStatus dials a WS-FLV URL: "101" when the upgrade succeeded.
func wsStatus(t *testing.T, u string) string {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, res, err := d.Dial(u, nil)
	if err == nil {
		c.Close()
		return "101"
	}
	if res != nil {
		return fmt.Sprint(res.StatusCode)
	}
	return err.Error()
}

// wsSignal sends the offer over WebSocket signalling: "accepted" when an
// answer comes back, else the error message.
func wsSignal(t *testing.T, e *secEnv, stream, q string) string {
	t.Helper()
	u := "ws" + strings.TrimPrefix(e.http, "http") + "/" + stream + "/ws?" + q
	c, _, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second}).Dial(u, nil)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	// A refused socket gets its error message at once and is closed: the
	// offer may not even be written.
	werr := c.WriteJSON(map[string]string{"type": "offer", "sdp": e.offer})
	var m struct{ Type, Message string }
	if err := c.ReadJSON(&m); err != nil {
		return fmt.Sprintf("read: %v (write: %v)", err, werr)
	}
	if m.Type == "answer" {
		return "accepted"
	}
	return m.Type + ": " + m.Message
}

// zlmWebRTC posts the offer to the ZLMediaKit-style API: "code 0" when a
// session was created.
func zlmWebRTC(t *testing.T, e *secEnv, app, stream, q string) string {
	t.Helper()
	u := e.http + "/index/api/webrtc?app=" + app + "&stream=" + stream + "&type=play&" + q
	code, body := secGet(t, secClient(t, "127.0.0.1"), http.MethodPost, u, http.Header{"Content-Type": {"text/plain"}}, e.offer)
	var m struct {
		Code int    `json:"code"`
		ID   string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return fmt.Sprintf("http %d: %s", code, body)
	}
	if m.Code == 0 && m.ID != "" {
		// End the session: the API's DELETE counterpart is the WHEP
		// session URL.
		req, _ := http.NewRequest(http.MethodDelete, e.http+"/"+app+"/"+stream+"/whep/"+m.ID, nil)
		if r, err := http.DefaultClient.Do(req); err == nil {
			r.Body.Close()
		}
	}
	return fmt.Sprintf("code %d", m.Code)
}

// TestSecurityClockSkew: with clock_skew 10s a token that expired 9 s ago
// is accepted and one that expired 11 s ago refused, on each protocol.
func TestSecurityClockSkew(t *testing.T) {
	requireTools(t)
	cfg := `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: "127.0.0.1:0", udp_rtp_port: 0}
http: {listen: "127.0.0.1:0"}
admin: {listen: ""}
` + secWebRTC(t) + `
auth:
  secrets: {live: "` + secSecret + `"}
  play: true
  clock_skew: 10s
streams:
  - {match: live/a, mode: static, origins: [demo]}
`
	e := &secEnv{s: startServer(t, cfg), cfgPath: writeFile(t, cfg)}
	s := e.s
	e.http = "http://" + s.httpAddr(t)
	e.rtsp = s.rtspAddr(t)
	s.waitLog(t, `msg="origin up" stream=live/a`, 10*time.Second)
	local := secClient(t, "127.0.0.1")
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, q string) string
	}{
		{"rtmp", func(t *testing.T, q string) string { return rtmpStatus(t, s.url("live/a?"+q), false, "127.0.0.1") }},
		{"http-flv", func(t *testing.T, q string) string { return fmt.Sprint(secFLV(t, local, e.http+"/live/a.flv?"+q, nil)) }},
		{"rtsp", func(t *testing.T, q string) string {
			return fmt.Sprint(secDescribe(t, e.rtsp, "/live/a?"+q, "127.0.0.1"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Signed just before use: expires = floor(now) - 9, accepted
			// while the server's clock reads less than floor(now) + 2,
			// i.e. if the request arrives within a second.
			if got := tc.do(t, e.sign(t, "live/a", "-9s")); !accepted(got) {
				t.Errorf("expired 9 s ago, skew 10 s: %s, want it accepted", got)
			}
			if got := tc.do(t, e.sign(t, "live/a", "-11s")); !refused(got) {
				t.Errorf("expired 11 s ago, skew 10 s: %s, want a refusal", got)
			}
		})
	}
}

// TestSecurityAdminSecret: the admin listener wants its secret (Bearer
// header or secret parameter) on every endpoint; a wrong or missing one is
// a 401 (or a ZLMediaKit code != 0). A non-loopback admin listener
// without a secret is a configuration error.
func TestSecurityAdminSecret(t *testing.T) {
	requireTools(t)
	s := startServer(t, strings.Replace(adminConfig, "%s", "", 1))
	a := newAdminClient(t, s)
	c := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)

	for _, p := range []string{"/api/v1/streams", "/api/v1/sessions", "/api/v1/version", "/metrics",
		"/api/v1/config", "/api/v1/nope"} {
		for _, h := range []struct {
			name string
			hdr  http.Header
			q    string
		}{
			{"none", nil, ""},
			{"wrong bearer", http.Header{"Authorization": {"Bearer wrong"}}, ""},
			{"secret as a prefix", http.Header{"Authorization": {"Bearer " + adminSecret[:4]}}, ""},
			{"secret plus a suffix", http.Header{"Authorization": {"Bearer " + adminSecret + "x"}}, ""},
			{"basic scheme", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminSecret))}}, ""},
			{"empty bearer", http.Header{"Authorization": {"Bearer "}}, ""},
			{"wrong param", nil, "secret=wrong"},
			{"empty param", nil, "secret="},
			// A wrong header beats a good parameter: nothing is accepted
			// that carries a wrong credential.
			{"wrong bearer, good param", http.Header{"Authorization": {"Bearer wrong"}}, "secret=" + adminSecret},
		} {
			u := a.base + p
			if h.q != "" {
				u += "?" + h.q
			}
			if code, body := secGet(t, c, http.MethodGet, u, h.hdr, ""); code != http.StatusUnauthorized {
				t.Errorf("GET %s with %s: %d, want 401: %.200s", p, h.name, code, body)
			}
		}
	}
	for _, p := range []string{"/api/v1/streams", "/metrics"} {
		if code, _ := secGet(t, c, http.MethodGet, a.base+p, http.Header{"Authorization": {"Bearer " + adminSecret}}, ""); code != http.StatusOK {
			t.Errorf("GET %s with the bearer secret: %d", p, code)
		}
		if code, _ := secGet(t, c, http.MethodGet, a.base+p+"?secret="+url.QueryEscape(adminSecret), nil, ""); code != http.StatusOK {
			t.Errorf("GET %s with the secret parameter: %d", p, code)
		}
	}
	// Mutating calls too.
	for _, r := range []struct{ method, path string }{
		{http.MethodDelete, "/api/v1/sessions/1"},
		{http.MethodPost, "/api/v1/reload"},
		{http.MethodPost, "/api/v1/proxies"},
		{http.MethodDelete, "/api/v1/proxies/live/demo"},
	} {
		if code, _ := secGet(t, c, r.method, a.base+r.path, nil, "{}"); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a secret: %d, want 401", r.method, r.path, code)
		}
	}
	// Paths that try to slip past the check.
	for _, p := range []string{"/index/api/../../api/v1/streams", "/index/api/..%2f..%2fapi/v1/streams",
		"/index/api/%2e%2e/%2e%2e/metrics", "//api/v1/streams", "/api/v1/../../metrics", "/METRICS",
		"/index/api/getMediaList/../../../metrics"} {
		code, body := rawHTTP(t, strings.TrimPrefix(a.base, "http://"), "GET", p, nil)
		if code == http.StatusOK && (strings.Contains(body, "go_goroutines") || strings.Contains(body, "live/demo")) {
			t.Errorf("GET %s without a secret: %d %.300s", p, code, body)
		}
	}

	// The ZLMediaKit API: code != 0 without the right secret, in the
	// query or in a form or JSON body.
	for _, tc := range []struct {
		name, method, q, ctype, body string
		ok                           bool
	}{
		{"none", "GET", "", "", "", false},
		{"wrong", "GET", "secret=wrong", "", "", false},
		{"empty", "GET", "secret=", "", "", false},
		{"wrong form", "POST", "", "application/x-www-form-urlencoded", "secret=wrong", false},
		{"wrong json", "POST", "", "application/json", `{"secret":"wrong"}`, false},
		{"json number", "POST", "", "application/json", `{"secret":0}`, false},
		{"good", "GET", "secret=" + adminSecret, "", "", true},
		{"good form", "POST", "", "application/x-www-form-urlencoded", "secret=" + adminSecret, true},
		{"good json", "POST", "", "application/json", `{"secret":"` + adminSecret + `"}`, true},
	} {
		u := a.base + "/index/api/getMediaList"
		if tc.q != "" {
			u += "?" + tc.q
		}
		var hdr http.Header
		if tc.ctype != "" {
			hdr = http.Header{"Content-Type": {tc.ctype}}
		}
		_, body := secGet(t, c, tc.method, u, hdr, tc.body)
		var m struct {
			Code *int `json:"code"`
		}
		if err := json.Unmarshal([]byte(body), &m); err != nil || m.Code == nil {
			t.Errorf("getMediaList %s: %q", tc.name, body)
			continue
		}
		if (*m.Code == 0) != tc.ok {
			t.Errorf("getMediaList %s: code %d (ok %v): %.200s", tc.name, *m.Code, tc.ok, body)
		}
	}

	for _, l := range s.logLines() {
		if strings.Contains(l, adminSecret) {
			t.Errorf("a log line carries the admin secret: %s", l)
		}
	}

	// A listener that is not loopback-only needs a secret: the rule is
	// checked on the configuration, so no such listener is opened here.
	for _, tc := range []struct {
		listen, secret string
		ok             bool
	}{
		{"0.0.0.0:9997", "", false},
		{":9997", "", false},
		{"[::]:9997", "", false},
		{"192.0.2.1:9997", "", false},
		{"admin.example:9997", "", false},
		{"0.0.0.0:9997", "x", true},
		{"127.0.0.1:9997", "", true},
		{"[::1]:9997", "", true},
		{"localhost:9997", "", true},
	} {
		f := writeFile(t, fmt.Sprintf("rtmp: {listen: \"127.0.0.1:0\"}\nadmin: {listen: %q, secret: %q}\n", tc.listen, tc.secret))
		var stdout, stderr bytes.Buffer
		code := run([]string{"--config", f, "--check-config"}, &stdout, &stderr)
		if (code == 0) != tc.ok {
			t.Errorf("admin.listen %q secret %q: exit %d (%s)", tc.listen, tc.secret, code, stderr.String())
		}
		if !tc.ok && !strings.Contains(stderr.String()+stdout.String(), "admin.secret") {
			t.Errorf("admin.listen %q: the error does not name admin.secret: %s", tc.listen, stderr.String())
		}
	}
}

// TestSecurityAdminNoCORS: the admin port answers neither a preflight nor
// a cross-origin GET with Access-Control-Allow-* headers.
func TestSecurityAdminNoCORS(t *testing.T) {
	requireTools(t)
	s := startServer(t, strings.Replace(adminConfig, "%s", "", 1))
	a := newAdminClient(t, s)
	c := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	origin := http.Header{"Origin": {"http://evil.example"}}
	for _, p := range []string{"/api/v1/streams", "/metrics", "/index/api/getMediaList", "/api/v1/sessions/1", "/nope"} {
		for _, tc := range []struct {
			method string
			hdr    http.Header
		}{
			{http.MethodOptions, http.Header{"Origin": {"http://evil.example"}, "Access-Control-Request-Method": {"DELETE"},
				"Access-Control-Request-Headers": {"authorization"}}},
			{http.MethodOptions, http.Header{"Origin": {"null"}, "Access-Control-Request-Method": {"GET"}}},
			{http.MethodGet, origin},
			{http.MethodGet, http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer " + adminSecret}}},
			{http.MethodGet, http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer wrong"}}},
			{http.MethodPost, http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer " + adminSecret}}},
		} {
			req, _ := http.NewRequest(tc.method, a.base+p+"?secret="+adminSecret, nil)
			req.Header = tc.hdr
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			for k := range res.Header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Errorf("%s %s %v: CORS header %s: %s", tc.method, p, tc.hdr, k, res.Header.Get(k))
				}
			}
			if tc.method == http.MethodOptions && res.StatusCode/100 == 2 {
				t.Errorf("%s %s: preflight answered %d", tc.method, p, res.StatusCode)
			}
		}
	}
}

// rawHTTP sends a request line with path byte for byte (no client-side
// cleaning or escaping) and returns the status and up to 64 KiB of body; 0
// when the connection closed without a response.
func rawHTTP(t *testing.T, addr, method, path string, hdr []string) (int, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, string(b)
}

// TestSecurityTraversal: no path on the HTTP listener (pages, vendored
// files, HLS with hls.dir, FLV, WHEP) reads a file outside what it serves:
// "..", encoded dots and slashes, backslashes, absolute paths and NUL
// bytes give no 200 with a file's contents and never crash the server.
func TestSecurityTraversal(t *testing.T) {
	requireTools(t)
	root := t.TempDir()
	hlsDir := filepath.Join(root, "hls")
	if err := os.Mkdir(hlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const sentinel = "SENTINEL-2f1c9a-outside-hls-dir"
	for _, f := range []string{filepath.Join(root, "secret.txt"), filepath.Join(root, "index.m3u8"),
		filepath.Join(root, "a.flv")} {
		if err := os.WriteFile(f, []byte(sentinel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, hlsBaseConfig+secWebRTC(t)+`
hls: {dir: "`+hlsDir+`"}
streams:
  - {match: live/a, mode: static, origins: [demo]}
`)
	addr := s.httpAddr(t)
	s.waitLog(t, `msg="origin up" stream=live/a`, 10*time.Second)
	// A muxer with its directory under hls.dir.
	media := mediaPlaylist(t, "http://"+addr+"/live/a/index.m3u8")
	_, body := httpGet(t, media)
	var seg string
	for _, u := range m3u8URIs(body) {
		if strings.Contains(u, "_seg") {
			seg = strings.SplitN(u, "?", 2)[0]
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(hlsDir, "liveedge-*"))
	if seg == "" || len(dirs) != 1 {
		t.Fatalf("no segment (%q) or no muxer directory (%v)", seg, dirs)
	}
	mdir := filepath.Base(dirs[0])
	if _, err := os.Stat(filepath.Join(dirs[0], seg)); err != nil {
		t.Logf("segment %s not in the muxer directory (%v): served from memory", seg, err)
	}
	abs := filepath.ToSlash(root)

	var paths []string
	for _, target := range []string{"secret.txt", "index.m3u8", "a.flv"} {
		for _, p := range []string{
			"/../" + target, "/../../" + target,
			"/live/a/../../" + target, "/live/a/../../../" + target,
			"/live/a/" + mdir + "/../../" + target,
			"/live/../" + mdir + "/../../" + target,
			"/%2e%2e/" + target, "/%2E%2E/%2e%2e/" + target,
			"/live/a/%2e%2e/%2e%2e/%2e%2e/" + target,
			"/..%2f" + target, "/live/a/..%2f..%2f..%2f" + target,
			"/live/a/%2e%2e%2f%2e%2e%2f%2e%2e%2f" + target,
			"/live/%2e%2e%2f%2e%2e%2f" + target,
			"/live/a/..%5c..%5c..%5c" + target, "/live/a/%5c..%5c..%5c" + target,
			"/..%5c..%5c" + target, "/live\\..\\..\\" + target,
			"/live/a/%252e%252e%252f" + target,
			"/live/a/..%c0%af..%c0%af" + target,
			abs + "/" + target, "/" + abs + "/" + target, "//" + abs + "/" + target,
			"/live/a/" + url.PathEscape(abs+"/"+target),
			"/live/a/%2f" + strings.ReplaceAll(strings.TrimPrefix(abs, "/"), "/", "%2f") + "%2f" + target,
			"/static/vendor/../../" + target, "/static/vendor/..%2f..%2f" + target,
			"/static/vendor/%2e%2e%2f" + target, "/static/vendor/" + url.PathEscape(abs+"/"+target),
			"/live/a/" + target + "%00", "/live/a/" + target + "%00.m3u8",
			"/live/a%00/../../" + target,
		} {
			paths = append(paths, p)
		}
	}
	paths = append(paths,
		"/etc/passwd", "//etc/passwd", "/live/a/%2fetc%2fpasswd", "/live/a/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
		"/static/vendor/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "/live/..%2f..%2f..%2f..%2fetc%2fpasswd.flv",
		"/live/a/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
		"/live/a/"+mdir+"/"+seg, "/"+mdir+"/"+seg, "/live/"+mdir+"/"+seg,
		"/live/a/..%2f"+mdir+"%2f"+seg, "/live/a/../"+mdir+"/"+seg,
		// FLV and WHEP path shapes.
		"/live/..%2f..%2fsecret.flv", "/..%2fsecret.flv", "/live/a/../../secret.flv", "/%2e%2e/secret.live.flv",
		"/live/a%00.flv", "/live/a%5c..%5csecret.flv", "/"+abs+"/a.flv",
		"/live/a/../../secret/whep", "/live/..%2fa/whep", "/live/a/whep/..%2f..%2f..%2fsecret.txt",
		"/live/a/whep/../../../secret.txt", "/live/%2e%2e/whep", "/live/a/ws/../../../secret.txt",
		"/index/api/webrtc/../../../secret.txt",
		// Player pages.
		"/live/..%2f..%2f/", "/../live/a/", "/%2e%2e/%2e%2e/", "/status.json/../secret.txt",
		"/live/a/%00/", "/live%00/a/",
		// The admin endpoints are not on the public listener.
		"/metrics", "/api/v1/streams", "/api/v1/sessions", "/index/api/getMediaList",
		"/index/api/getServerConfig", "/index/api/addStreamProxy", "/index/api/webrtc/../getServerConfig",
	)
	for _, p := range paths {
		for _, method := range []string{"GET", "POST", "OPTIONS"} {
			code, body := rawHTTP(t, addr, method, p, []string{"Content-Type: application/sdp", "Content-Length: 0"})
			if strings.Contains(body, sentinel) || strings.Contains(body, "root:x:0:0") {
				t.Errorf("%s %s: %d with a file's contents outside: %.200s", method, p, code, body)
			}
			if code == http.StatusOK && method != "POST" {
				t.Errorf("%s %s: 200 (%d bytes): %.120q", method, p, len(body), body)
			}
		}
	}
	// A raw NUL byte in the request line.
	if code, body := rawHTTP(t, addr, "GET", "/live/a/\x00../../secret.txt", nil); code == http.StatusOK || strings.Contains(body, sentinel) {
		t.Errorf("raw NUL: %d %.100s", code, body)
	}

	// Still serving, no panic.
	select {
	case <-s.done:
		t.Fatalf("liveedge exited: %v", s.err)
	default:
	}
	if res, _ := httpGet(t, "http://"+addr+"/live/a/index.m3u8"); res.StatusCode != http.StatusOK {
		t.Fatalf("after the traversal attempts: index.m3u8 = %d", res.StatusCode)
	}
	for _, l := range s.logLines() {
		if strings.Contains(l, "panic") || strings.Contains(l, "goroutine ") {
			t.Errorf("log: %s", l)
		}
	}
}

// TestSecurityAdminOpenLoopback: an admin listener on loopback without a
// secret is open to local tools, but not to web pages the operator
// visits: a cross-site GET or form POST needs no CORS preflight, and DNS
// rebinding makes a page same-origin with a name resolving to 127.0.0.1.
// Such requests (another site's Sec-Fetch-Site or Origin, a Host that is
// not a loopback name) are refused, and change nothing.
func TestSecurityAdminOpenLoopback(t *testing.T) {
	requireTools(t)
	s := startServer(t, strings.Replace(baseConfig, `admin: {listen: ""}`, `admin: {listen: "127.0.0.1:0"}`, 1)+`
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	line := s.waitLog(t, `msg=listening proto=admin addr=`, 10*time.Second)
	addr := adminListenRe.FindStringSubmatch(line)[1]
	_, port, _ := net.SplitHostPort(addr)
	c := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	send := func(method, path, host string, hdr http.Header, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if host != "" {
			req.Host = host
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	zlmOK := func(code int, body string) bool {
		var m struct {
			Code *int `json:"code"`
		}
		return code == http.StatusOK && json.Unmarshal([]byte(body), &m) == nil && m.Code != nil && *m.Code == 0
	}

	// Local tools and the operator's own browser tab are served.
	for _, tc := range []struct {
		name string
		host string
		hdr  http.Header
	}{
		{"curl", "", nil},
		{"localhost", "localhost:" + port, nil},
		{"typed in the address bar", "", http.Header{"Sec-Fetch-Site": {"none"}}},
		{"same origin", "", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"http://" + addr}}},
	} {
		if code, body := send("GET", "/api/v1/streams", tc.host, tc.hdr, ""); code != http.StatusOK {
			t.Errorf("%s: GET /api/v1/streams = %d %s", tc.name, code, body)
		}
		if code, body := send("GET", "/index/api/getMediaList", tc.host, tc.hdr, ""); !zlmOK(code, body) {
			t.Errorf("%s: getMediaList = %d %s", tc.name, code, body)
		}
	}

	proxy := url.Values{"vhost": {"__defaultVhost__"}, "app": {"evil"}, "stream": {"x"},
		"url": {"rtmp://127.0.0.1:1/evil/x"}}.Encode()
	for _, tc := range []struct {
		name string
		host string
		hdr  http.Header
	}{
		{"dns rebinding", "attacker.example:" + port, nil},
		{"dns rebinding, same-origin fetch", "attacker.example:" + port,
			http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"http://attacker.example:" + port}}},
		{"cross-site img/form", "", http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"same-site other port", "", http.Header{"Sec-Fetch-Site": {"same-site"}}},
		{"cross-site form post (older browser)", "", http.Header{"Origin": {"http://attacker.example"}}},
		{"opaque origin", "", http.Header{"Origin": {"null"}}},
	} {
		for _, r := range []struct{ method, path, ctype, body string }{
			{"GET", "/api/v1/streams", "", ""},
			{"GET", "/metrics", "", ""},
			{"GET", "/index/api/getMediaList", "", ""},
			{"GET", "/index/api/addStreamProxy?" + proxy, "", ""},
			{"POST", "/index/api/addStreamProxy", "application/x-www-form-urlencoded", proxy},
			{"POST", "/api/v1/proxies", "text/plain", `{"stream":"evil/y","origins":["rtmp://127.0.0.1:1/evil/y"]}`},
			{"POST", "/api/v1/reload", "text/plain", ""},
		} {
			hdr := http.Header{}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			if r.ctype != "" {
				hdr.Set("Content-Type", r.ctype)
			}
			code, body := send(r.method, r.path, tc.host, hdr, r.body)
			if code == http.StatusOK && !strings.Contains(body, `"code":-100`) {
				t.Errorf("%s: %s %s = %d: %.200s", tc.name, r.method, r.path, code, body)
			}
		}
	}
	// Nothing was added.
	if code, body := send("GET", "/api/v1/proxies", "", nil, ""); code != http.StatusOK || strings.Contains(body, "evil") {
		t.Errorf("GET /api/v1/proxies = %d %s", code, body)
	}
}

// signArgs runs `liveedge token sign` with args and returns the query it
// printed, requiring exit 0 and nothing on stderr.
func signArgs(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"token", "sign"}, args...), &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Fatalf("token sign %q: exit %d: %s", args, code, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// signedWith reports whether query q (expires=…&token=…) holds an unbound
// SHA-256 token for stream signed with secret.
func signedWith(t *testing.T, q, secret, stream string) bool {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil || len(v) != 2 {
		t.Fatalf("token sign printed %q", q)
	}
	exp, err := strconv.ParseInt(v.Get("expires"), 10, 64)
	if err != nil {
		t.Fatalf("token sign printed %q", q)
	}
	return v.Get("token") == auth.Sign(auth.SHA256, []byte(secret), stream, exp, netip.Addr{})
}

// TestSecurityPublishSecretTokenSign: `token sign --publish` signs with
// the app's publish secret (its own, "*", or from the environment), and
// with its secret when it has none, printing nothing else.
func TestSecurityPublishSecretTokenSign(t *testing.T) {
	split := writeFile(t, `
auth:
  secrets: {live: play-S1, "*": play-S0}
  publish_secrets: {live: pub-S2, "*": pub-S3, empty: ""}
`)
	plain := writeFile(t, "auth: {secrets: {live: play-S1}}\n")
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		stream string
		secret string
	}{
		{"play token", nil, []string{"--config", split}, "live/a", "play-S1"},
		{"publish token", nil, []string{"--config", split, "--publish"}, "live/a", "pub-S2"},
		{"publish token, default publish secret", nil, []string{"--config", split, "--publish"}, "tv/a", "pub-S3"},
		{"publish token, empty own publish secret", nil, []string{"--config", split, "--publish"}, "empty/a", "pub-S3"},
		{"publish token without publish secret", nil, []string{"--config", plain, "--publish"}, "live/a", "play-S1"},
		{"publish token, app publish secret from env", map[string]string{"LIVEEDGE_AUTH_PUBLISH_SECRET_LIVE": "pub-env"},
			[]string{"--config", plain, "--publish"}, "live/a", "pub-env"},
		{"publish token, default publish secret from env", map[string]string{"LIVEEDGE_AUTH_PUBLISH_SECRET": "pub-env-default"},
			[]string{"--config", plain, "--publish"}, "live/a", "pub-env-default"},
		{"play token ignores publish env", map[string]string{"LIVEEDGE_AUTH_PUBLISH_SECRET_LIVE": "pub-env"},
			[]string{"--config", plain}, "live/a", "play-S1"},
		{"publish token, only env secrets", map[string]string{"LIVEEDGE_AUTH_SECRET_CAM": "play-env", "LIVEEDGE_AUTH_PUBLISH_SECRET_CAM": "pub-env-cam"},
			[]string{"--publish"}, "cam/a", "pub-env-cam"},
		{"publish token, explicit secret", nil, []string{"--config", split, "--publish", "--secret", "given"}, "live/a", "given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			q := signArgs(t, append(tc.args, "--stream", tc.stream, "--ttl", "1h")...)
			if !signedWith(t, q, tc.secret, tc.stream) {
				t.Fatalf("token sign %q printed %q, not signed with %q", tc.args, q, tc.secret)
			}
		})
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"token"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "[--publish]") {
		t.Errorf("usage: exit %d, %q; want 2 and a usage line naming --publish", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"token", "sign", "--publish", "--stream", "nosuch/a"}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "LIVEEDGE_AUTH_PUBLISH_SECRET_NOSUCH") {
		t.Errorf("no secret: exit %d, %q", code, stderr.String())
	}
}

// TestSecurityPublishSecret: with auth.publish_secrets a viewer's play
// token cannot publish (hijack) the stream, a publish token can, and a
// publish token cannot play.
func TestSecurityPublishSecret(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe")
	const playSecret, pubSecret = "play-s3cret-S1", "publish-s3cret-S2"
	cfg := baseConfig + fmt.Sprintf(`
auth:
  secrets: {live: %q}
  publish_secrets: {live: %q}
  play: true
  publish: true
  clock_skew: 0s
`, playSecret, pubSecret)
	s := startServer(t, cfg)
	cfgPath := writeFile(t, cfg)
	const stream = "live/hijack"
	playTok := signArgs(t, "--config", cfgPath, "--stream", stream, "--ttl", "1h")
	pubTok := signArgs(t, "--config", cfgPath, "--stream", stream, "--ttl", "1h", "--publish")
	if !signedWith(t, playTok, playSecret, stream) || !signedWith(t, pubTok, pubSecret, stream) {
		t.Fatalf("token sign: play %q, publish %q", playTok, pubTok)
	}

	// A play token, whose only difference from a publish token is its
	// secret, is refused for publishing.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-stream_loop", "-1", "-i", clipPath(t), "-c", "copy", "-f", "flv", s.url(stream+"?"+playTok)).CombinedOutput()
	timedOut := ctx.Err() != nil
	cancel()
	if err == nil || timedOut {
		t.Fatalf("publish with a play token was accepted (err %v, ran until the timeout: %v): %s", err, timedOut, out)
	}
	s.waitLog(t, `msg="access refused" stream=live/hijack action=publish .*reason="auth: bad token signature`, 5*time.Second)
	if n := countLines(s.logLines(), `msg=publishing .*stream=live/hijack`); n != 0 {
		t.Fatalf("the play token published (%d publishing lines)", n)
	}

	// The publish token goes live.
	publish(t, s.url(stream+"?"+pubTok))
	s.waitLog(t, `msg=publishing .*stream=live/hijack`, 15*time.Second)

	// The publish token cannot play; the play token can.
	if _, err := probe(t, s.url(stream+"?"+pubTok), 20); err == nil {
		t.Fatal("play with a publish token was accepted")
	}
	s.waitLog(t, `msg="access refused" stream=live/hijack action=play .*reason="auth: bad token signature`, 5*time.Second)
	r, err := probe(t, s.url(stream+"?"+playTok), 100)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 30)

	// Separate secrets: no warning; no secret or token in the log.
	lines := s.logLines()
	if n := countLines(lines, `play tokens of app`); n != 0 {
		t.Errorf("%d warnings about play tokens publishing with a publish secret set", n)
	}
	for _, l := range lines {
		for _, secret := range []string{playSecret, pubSecret, "token="} {
			if strings.Contains(l, secret) {
				t.Fatalf("a log line carries a token or secret: %s", l)
			}
		}
	}
}

// TestSecurityPublishSecretWarning: an app that requires tokens to play and
// publish but has no publish secret is warned about once at start-up and
// once per reload; a publish secret silences the warning. The reloads go
// through the admin API (the same Reload as SIGHUP), which cannot arrive
// before the server is ready for them.
func TestSecurityPublishSecretWarning(t *testing.T) {
	requireTools(t)
	shared := strings.Replace(baseConfig, `admin: {listen: ""}`, `admin: {listen: "127.0.0.1:0"}`, 1) + `
auth:
  secrets: {live: "S1", "*": "S0"}
  play: true
  publish: true
  apps: {open: {play: false}, nopub: {publish: false}}
`
	s := startServer(t, shared)
	admin := openAdmin(t, s)
	const (
		liveWarn    = `level=WARN msg="play tokens of app live can also publish; set auth\.publish_secrets" app=live env=LIVEEDGE_AUTH_PUBLISH_SECRET_LIVE`
		defaultWarn = `level=WARN msg="play tokens of app \* \(the default\) can also publish; set auth\.publish_secrets" app=\* env=LIVEEDGE_AUTH_PUBLISH_SECRET$`
		anyWarn     = `play tokens of app`
		reloaded    = `msg="configuration reloaded"`
	)
	// want waits for n lines matching reloaded, then requires the counts.
	want := func(reloads, live, def, all int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); countLines(s.logLines(), reloaded) < reloads; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no reload %d within 5s", reloads)
			}
		}
		lines := s.logLines()
		for _, c := range []struct {
			what string
			re   string
			n    int
		}{{"app live", liveWarn, live}, {"the default", defaultWarn, def}, {"in all", anyWarn, all}} {
			if got := countLines(lines, c.re); got != c.n {
				t.Errorf("after %d reloads: %d warnings for %s, want %d", reloads, got, c.what, c.n)
			}
		}
	}
	s.waitLog(t, liveWarn, 5*time.Second)
	want(0, 1, 1, 2) // "open" and "nopub" need no token for one action: no warning

	reload := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(s.conf, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := http.Post(admin+"/api/v1/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("reload: %d %s", res.StatusCode, body)
		}
	}
	reload(shared) // unchanged: warned again, once
	want(1, 2, 2, 4)
	reload(strings.Replace(shared, "play: true\n", "play: true\n  publish_secrets: {\"*\": \"P0\"}\n", 1))
	want(2, 2, 2, 4) // every app has a publish secret now
	reload(strings.Replace(shared, "play: true\n", "play: true\n  publish_secrets: {live: \"S1\", tv: \"P1\"}\n", 1))
	want(3, 2, 3, 6) // live's publish secret is its secret; tv is fine
	if n := countLines(s.logLines(), `level=WARN msg="play tokens of app live can also publish: its publish secret is its secret`); n != 1 {
		t.Errorf("%d warnings for a publish secret equal to the secret, want 1", n)
	}
}
