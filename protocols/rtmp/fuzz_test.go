package rtmp

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/liveedge/liveedge/hub"
)

// FuzzClientURL: a URL clientURL accepts keeps its scheme, host and
// credentials, names the app alone as the path and carries the rest of
// the path and the query as the stream key; the redacted form never
// shows a password or query.
func FuzzClientURL(f *testing.F) {
	for _, s := range []string{
		"rtmp://origin:1935/live/cam1",
		"rtmp://origin/live/cam1?expires=10&token=ab%2B",
		"rtmp://origin/live/a/b",
		"rtmps://origin/app/s",
		"rtmp://user:secret@origin/app/s?token=t",
		"http://origin/live/x",
		"rtmp://origin/live",
		"rtmp:///live/x",
		"rtmp://[::1]:1935/live/x#frag",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if red := RedactURL(raw); red != "(invalid URL)" {
			if r, err := url.Parse(red); err == nil && (r.User != nil || r.RawQuery != "") {
				t.Fatalf("RedactURL(%q) = %q keeps credentials or the query", raw, red)
			}
		}
		cu, err := clientURL(raw)
		if err != nil {
			return
		}
		u, _ := url.Parse(raw)
		if cu.Scheme != u.Scheme || cu.Host != u.Host || cu.Host == "" || cu.User.String() != u.User.String() {
			t.Fatalf("clientURL(%q) = %#v", raw, cu)
		}
		app := strings.TrimPrefix(cu.Path, "/")
		if app == "" || strings.Contains(app, "/") || cu.Fragment == "" || cu.RawQuery != "" {
			t.Fatalf("clientURL(%q): app %q key %q", raw, app, cu.Fragment)
		}
		want := strings.TrimPrefix(u.Path, "/")
		if u.RawQuery != "" {
			want += "?" + u.RawQuery
		}
		if app+"/"+cu.Fragment != want {
			t.Fatalf("clientURL(%q): app %q key %q, want %q", raw, app, cu.Fragment, want)
		}
	})
}

// rtmpSeed is what a client sends after the handshake: connect,
// createStream and play or publish (then a sequence header and a frame),
// encoded with gortmplib's writer.
func rtmpSeed(t testing.TB, publish bool) []byte {
	var buf bytes.Buffer
	w := message.NewWriter(&buf, bytecounter.NewWriter(&buf), false)
	msgs := []message.Message{
		&message.SetChunkSize{Value: 65536},
		&message.CommandAMF0{ChunkStreamID: 3, Name: "connect", CommandID: 1, Arguments: []any{amf0.Object{
			{Key: "app", Value: "live"}, {Key: "flashVer", Value: "LNX 9,0,124,2"},
			{Key: "tcUrl", Value: "rtmp://127.0.0.1/live"}, {Key: "fpad", Value: false},
			{Key: "capabilities", Value: float64(15)}, {Key: "audioCodecs", Value: float64(4071)},
			{Key: "videoCodecs", Value: float64(252)}, {Key: "videoFunction", Value: float64(1)},
		}}},
		&message.CommandAMF0{ChunkStreamID: 3, Name: "createStream", CommandID: 2, Arguments: []any{nil}},
	}
	if publish {
		msgs = append(msgs,
			&message.CommandAMF0{ChunkStreamID: 4, MessageStreamID: 1, Name: "publish", CommandID: 3,
				Arguments: []any{nil, "fuzz", "live"}},
			&message.Video{ChunkStreamID: 6, MessageStreamID: 1, Codec: message.CodecH264, IsKeyFrame: true,
				Type: message.VideoTypeAU, AU: []byte{0, 0, 0, 4, 0x65, 0x88, 0x84, 0x00}},
			&message.Audio{ChunkStreamID: 4, MessageStreamID: 1, Codec: message.CodecMPEG4Audio, Rate: 3, Depth: 1,
				IsStereo: true, AACType: message.AudioAACTypeAU, AU: []byte{0x21, 0x10, 0x04}},
		)
	} else {
		msgs = append(msgs, &message.CommandAMF0{ChunkStreamID: 4, MessageStreamID: 1, Name: "play", CommandID: 3,
			Arguments: []any{nil, "fuzz?token=x"}})
	}
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzServerConn sends arbitrary bytes after a valid handshake to a real
// server (loopback TCP), then closes its side: the server must end the
// connection within a deadline, without a panic.
func FuzzServerConn(f *testing.F) {
	f.Add(rtmpSeed(f, false))
	f.Add(rtmpSeed(f, true))
	f.Add([]byte{})
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}) // chunk size 2^31-1
	f.Add([]byte{0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0x14, 0, 0, 0, 0})             // a 16 MiB command, announced only

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := hub.New(hub.Params{Logger: log, StartTimeout: 100 * time.Millisecond})
	s, err := Listen(Params{Listen: "127.0.0.1:0", Hub: h, Logger: log,
		HandshakeTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		h.Close()
		s.Close()
	})
	addr := s.Addr().String()

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		if _, _, err := handshake.DoClient(c, false, false); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		drained := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			drained <- err
		}()
		if _, err := c.Write(data); err == nil {
			c.(*net.TCPConn).CloseWrite() //nolint:errcheck
		}
		if err := <-drained; err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the server did not end the connection within 5s")
			}
		}
	})
}
