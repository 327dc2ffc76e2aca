package flv

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/liveedge/liveedge/hub"
)

// An HTTP/1.1 viewer over plain TCP is served on the hijacked connection:
// the response head is written once, then each batch of shared tags goes
// out as one chunk with one writev — [chunk-size line, tags..., CRLF] —
// without copying the tags and without net/http's per-Write chunk framing
// and buffering. HTTP/2 and TLS keep the ResponseWriter path.

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

// chunkWriter writes batches as HTTP/1.1 chunks to a hijacked connection.
type chunkWriter struct {
	conn        net.Conn
	timeout     time.Duration
	head        []byte // the response head, sent with the first chunk
	size        [18]byte
	iov         net.Buffers
	out         net.Buffers
	deadlineSet time.Time
	failed      bool // a write failed: the framing is broken
}

// write sends bufs as one chunk with one writev (more only if the socket
// takes it in parts). The write deadline is pushed forward at most every
// timeout/4, as on the ResponseWriter path.
func (c *chunkWriter) write(bufs net.Buffers) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if n == 0 {
		return nil
	}
	c.iov = c.iov[:0]
	if c.head != nil {
		c.iov = append(c.iov, c.head)
		c.head = nil
	}
	line := append(strconv.AppendUint(c.size[:0], uint64(n), 16), '\r', '\n')
	c.iov = append(c.iov, line)
	c.iov = append(c.iov, bufs...)
	c.iov = append(c.iov, crlf)
	if now := time.Now(); now.Sub(c.deadlineSet) > c.timeout/4 {
		if err := c.conn.SetWriteDeadline(now.Add(c.timeout)); err != nil {
			c.failed = true
			return err
		}
		c.deadlineSet = now
	}
	// WriteTo consumes out (a field: a local would escape, one allocation
	// per write); the shared bytes are not touched.
	c.out = c.iov
	if _, err := c.out.WriteTo(c.conn); err != nil {
		c.failed = true
		return err
	}
	return nil
}

// end writes the last chunk, so the client sees the response complete.
func (c *chunkWriter) end() {
	if c.failed || c.head != nil {
		return // broken framing, or no response sent yet
	}
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.conn.Write(lastChunk) //nolint:errcheck // best effort, closing anyway
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
	cw := &chunkWriter{conn: conn, timeout: s.p.WriteTimeout, head: responseHead(w.Header(), time.Now()),
		iov: make(net.Buffers, 0, 76)}

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
	err = s.loop(ctx, sub, func(bufs net.Buffers) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return cw.write(bufs)
	})
	stop()
	if errors.Is(err, hub.ErrStreamEnded) || s.ctx.Err() != nil {
		cw.end()
	}
	conn.Close()
	<-read
	return err
}
