package signaling

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/liveedge/liveedge/hub"
)

// FuzzWSMessage decodes a WebSocket text frame as the session loop does
// and, for a candidate, builds the trickle fragment. A fragment is "" (end
// of candidates) or well-formed CRLF lines: at most an ice-ufrag, a mid
// or up to 16 m-lines, then exactly one a=candidate line, last; no line
// holds a CR, LF or NUL of its own, so a message cannot smuggle SDP lines
// into the fragment. Seeds are the messages of the WebSocket tests.
func FuzzWSMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"offer","sdp":"v=0\r\n"}`,
		`{"type":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"1"}`,
		`{"type":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMLineIndex":1}`,
		`{"type":"candidate","candidate":"a=candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","usernameFragment":"abcd"}`,
		`{"type":"candidate","candidate":"","sdpMid":"0"}`,
		`{"type":"candidate"}`,
		`{"type":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host\r\na=ice-ufrag:x","sdpMLineIndex":16}`,
		`{"type":"bye"}`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m wsMessage
		if json.Unmarshal(b, &m) != nil || m.Type != "candidate" {
			return
		}
		frag, err := candidateFrag(m)
		if err != nil || frag == "" {
			if err == nil && m.Candidate == nil {
				t.Fatal("a candidate message without candidate accepted")
			}
			return
		}
		if !strings.HasSuffix(frag, "\r\n") {
			t.Fatalf("fragment %q does not end in CRLF", frag)
		}
		lines := strings.Split(strings.TrimSuffix(frag, "\r\n"), "\r\n")
		mlines := 0
		for i, l := range lines {
			if strings.ContainsAny(l, "\r\n\x00") {
				t.Fatalf("line %q of %q", l, frag)
			}
			last := i == len(lines)-1
			switch {
			case last:
				if !strings.HasPrefix(l, "a=candidate:") {
					t.Fatalf("last line %q is not the candidate", l)
				}
			case strings.HasPrefix(l, "a=ice-ufrag:") && i == 0:
			case strings.HasPrefix(l, "a=mid:"):
			case l == "m=video 9 UDP/TLS/RTP/SAVPF 0":
				mlines++
			default:
				t.Fatalf("unexpected line %q in %q", l, frag)
			}
		}
		if mlines > 16 {
			t.Fatalf("%d m-lines", mlines)
		}
	})
}

// FuzzParsePath: an accepted signalling path names a valid stream (or is
// the ZLMediaKit API path), and a session id is lowercase hex of at most
// 64 digits.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/live/demo/whep", "/live/demo/whep/0123abcd", "/live/demo/ws", zlmPath,
		"/live/demo/whep/XYZ", "/live/../whep", "/live/demo/whep/", "/live/demo", "/a/b/c/d/e", "",
		"/live/demo\x00/whep", `/live\demo/whep`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r, ok := parsePath(p)
		if ok != Handles(p) {
			t.Fatalf("Handles(%q) disagrees with parsePath", p)
		}
		if !ok {
			return
		}
		if r.zlm {
			if p != zlmPath || r.stream != "" || r.id != "" || r.ws {
				t.Fatalf("%q parsed as %+v", p, r)
			}
			return
		}
		if !hub.ValidName(r.stream) || strings.ContainsAny(p, "\\\x00") || strings.Contains(r.stream, "..") {
			t.Fatalf("%q parsed as %+v", p, r)
		}
		if r.id != "" && (r.ws || !validID(r.id)) {
			t.Fatalf("%q parsed as %+v", p, r)
		}
		suffix := "/whep"
		if r.ws {
			suffix = "/ws"
		}
		if r.id != "" {
			suffix += "/" + r.id
		}
		if p != "/"+r.stream+suffix {
			t.Fatalf("%q parsed as %+v", p, r)
		}
	})
}
