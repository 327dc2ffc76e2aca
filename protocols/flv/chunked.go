package flv

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/internal/fanout"
)

// An HTTP/1.1 viewer over plain TCP is served on the hijacked connection:
// the response head is written once, then each batch of shared tags goes
// out as one chunk with one writev — [chunk-size line, tags..., CRLF] —
// without copying the tags and without net/http's per-Write chunk framing
// and buffering. A viewer that keeps up is written by the stream's shared
// fast path (protocols/internal/fanout) with the other viewers, one
// non-blocking writev each per batch; one whose socket is full goes on
// alone from the exact chunk boundary it reached. HTTP/2 and TLS keep the
// ResponseWriter path.

var (
	crlf      = []byte("\r\n")
	lastChunk = []byte("0\r\n\r\n")
)

// hijackable reports whether r is served on the hijacked connection.
func hijackable(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.TLS == nil
}

// responseHead is the status line and headers of a streaming FLV response:
// h (CORS, set by ServeHTTP) plus the FLV and framing headers.
func responseHead(h http.Header, now time.Time) []byte {
	h = h.Clone()
	h.Set("Content-Type", "video/x-flv")
	h.Set("Cache-Control", "no-cache")
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Connection", "close")
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	h.Write(&b) //nolint:errcheck // a bytes.Buffer does not fail
	b.WriteString("\r\n")
	return b.Bytes()
}

// chunked is the hijacked path's Format: each batch of shared tags is one
// HTTP chunk, [size line, tags..., CRLF]. On the fast path the shard frames
// a batch once for all its viewers.
var chunked = fanout.Format{Unit: unitTag, Headers: headers, Frame: chunk}

// chunk returns the framing of a chunk of n bytes. The size line is new
// each time: the fast path shares it with every viewer of the batch, and a
// viewer handed back mid-batch may still have to write it.
func chunk(n int) (pre, post []byte) {
	return append(strconv.AppendUint(make([]byte, 0, 18), uint64(n), 16), '\r', '\n'), crlf
}

// end writes the last chunk, so the client sees the response complete.
func end(w *fanout.Writer) {
	if w.Failed || !w.Sent() {
		return // broken framing, or no response sent yet
	}
	w.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	w.Conn.Write(lastChunk) //nolint:errcheck // best effort, closing anyway
}

// serveConn takes the connection over and streams on it. A ResponseWriter
// that cannot be hijacked gets the ResponseWriter path.
func (s *Server) serveConn(ctx context.Context, cancel context.CancelFunc, w http.ResponseWriter,
	sub *hub.Subscriber) error {
	conn, _, err := http.NewResponseController(w).Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		return s.serveHTTP(ctx, w, sub)
	}
	if err != nil {
		return err
	}
	// Deadlines the server left are ours to clear; the next write sets one.
	conn.SetDeadline(time.Time{})
	s.capSendBuffer(conn)
	fw := &fanout.Writer{Conn: conn, Timeout: s.p.WriteTimeout, Head: responseHead(w.Header(), time.Now())}

	// The server no longer reads the connection: read it to see the client
	// leave. What it sends after the request is discarded.
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer cancel()
		buf := make([]byte, 256)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()

	// Server.Close does not wait a whole write timeout for a viewer whose
	// socket is full: its pending write gets a second more, and a viewer
	// with a backlog stops at the next chunk boundary.
	stop := context.AfterFunc(s.ctx, func() { conn.SetWriteDeadline(time.Now().Add(time.Second)) })
	err = s.fan.Play(ctx, sub, fw)
	stop()
	if errors.Is(err, hub.ErrStreamEnded) || s.ctx.Err() != nil {
		end(fw)
	}
	conn.Close()
	<-read
	return err
}
