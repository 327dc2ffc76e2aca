package hls

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cache policies: playlists change all the time; a segment, part or init
// file never changes under its name (the muxer's names carry a random
// per-muxer prefix).
// A segment asked for with an Authorization header is private: with
// "public", a shared cache would store it and serve its URL (which then
// carries no token) to anyone.
const (
	cachePlaylist       = "no-cache"
	cacheSegment        = "public, max-age=3600, immutable"
	cachePrivateSegment = "private, max-age=3600, immutable"
)

// gzipMinSize: smaller playlists are sent as they are.
const gzipMinSize = 256

// responseWriter sits between the muxer and the client. It sets our cache
// policy, buffers playlists (to fix them up, gzip them and send a
// Content-Length, also on HEAD), buffers a segment asked for with a Range
// header (to answer the range with http.ServeContent; the muxer only sends
// whole files), turns "nothing written" (a name the muxer does not know)
// into 404 and a muxer that closed under the request into 503. Other
// segment requests stream through.
type responseWriter struct {
	w      http.ResponseWriter
	r      *http.Request
	kind   fileKind
	gz     *gzipCache // the stream's; nil: no gzip
	ranged bool       // a segment request with a Range header
	status int
	buf    bytes.Buffer // playlists and ranged segments
	passed bool         // segment headers were sent to the client
	sent   int          // body bytes written to the client
}

func newResponseWriter(w http.ResponseWriter, r *http.Request, kind fileKind, gz *gzipCache) *responseWriter {
	rw := &responseWriter{w: w, r: r, kind: kind, gz: gz}
	rw.ranged = !kind.playlist() && r.Header.Get("Range") != ""
	return rw
}

func (rw *responseWriter) buffered() bool { return rw.kind.playlist() || rw.ranged }

func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

func (rw *responseWriter) WriteHeader(code int) {
	if rw.status != 0 {
		return
	}
	rw.status = code
	if rw.kind.playlist() {
		return
	}
	if code == http.StatusOK {
		cc := cacheSegment
		if rw.r.Header.Get("Authorization") != "" {
			cc = cachePrivateSegment
		}
		rw.w.Header().Set("Cache-Control", cc)
		rw.w.Header().Set("Accept-Ranges", "bytes")
	}
	// Segments stream through; a 500 is held back for finish, and so is
	// a ranged one.
	if code != http.StatusInternalServerError && !(rw.ranged && code == http.StatusOK) {
		rw.passed = true
		rw.w.WriteHeader(code)
	}
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.buffered() && !rw.passed {
		return rw.buf.Write(b)
	}
	if !rw.passed {
		return len(b), nil
	}
	n, err := rw.w.Write(b)
	rw.sent += n
	return n, err
}

// finish completes the response after the muxer returned.
func (rw *responseWriter) finish(muxerClosed bool) {
	h := rw.w.Header()
	switch {
	case rw.passed:
		return
	case rw.status == 0:
		h.Del("Cache-Control")
		h.Del("Content-Type")
		http.Error(rw.w, http.StatusText(http.StatusNotFound), http.StatusNotFound)
		return
	case rw.status == http.StatusInternalServerError && muxerClosed:
		h.Del("Cache-Control")
		h.Del("Content-Type")
		h.Del("Accept-Ranges")
		http.Error(rw.w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	if rw.ranged && rw.status == http.StatusOK {
		// Range, If-Range, HEAD and 416 as net/http does for files.
		http.ServeContent(countingWriter{rw.w, &rw.sent}, rw.r, "", time.Time{}, bytes.NewReader(rw.buf.Bytes()))
		return
	}
	body := rw.buf.Bytes()
	if rw.status == http.StatusOK && rw.kind.playlist() {
		h.Set("Cache-Control", cachePlaylist)
		if rw.kind == kindMediaPlaylist {
			body = fixPartHoldBack(body)
		}
		h.Add("Vary", "Accept-Encoding")
		if rw.gz != nil && len(body) >= gzipMinSize && acceptsGzip(rw.r.Header.Values("Accept-Encoding")) {
			if z := rw.gz.compress(body); z != nil {
				h.Set("Content-Encoding", "gzip")
				body = z
			}
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	rw.w.WriteHeader(rw.status)
	n, _ := rw.w.Write(body) // the client may have left
	rw.sent += n
}

// countingWriter adds the body bytes written through it to *n.
type countingWriter struct {
	http.ResponseWriter
	n *int
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	*w.n += n
	return n, err
}

// acceptsGzip reports whether Accept-Encoding values allow gzip: "gzip"
// or "*" listed without q=0 (and gzip not refused by name).
func acceptsGzip(values []string) bool {
	star, gz := false, 0 // gz: 0 not listed, 1 accepted, -1 refused
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			ok := true
			for _, p := range strings.Split(params, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					if q, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && q == 0 {
						ok = false
					}
				}
			}
			switch coding {
			case "gzip", "x-gzip":
				if ok {
					gz = 1
				} else {
					gz = -1
				}
			case "*":
				star = ok
			}
		}
	}
	return gz == 1 || gz == 0 && star
}

// gzipCache compresses a stream's playlists, keeping the last result:
// the clients waiting on the same blocking reload get the same bytes, and
// they are compressed once.
type gzipCache struct {
	mu      sync.Mutex
	raw, gz []byte
	zw      *gzip.Writer
	out     bytes.Buffer
}

// compress returns body gzipped (nil on error). The result must not be
// modified; it stays valid after later calls.
func (c *gzipCache) compress(body []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gz != nil && bytes.Equal(c.raw, body) {
		return c.gz
	}
	c.out.Reset()
	if c.zw == nil {
		c.zw, _ = gzip.NewWriterLevel(&c.out, gzip.BestSpeed)
	} else {
		c.zw.Reset(&c.out)
	}
	if _, err := c.zw.Write(body); err != nil {
		return nil
	}
	if err := c.zw.Close(); err != nil {
		return nil
	}
	c.raw = append(c.raw[:0], body...)
	c.gz = bytes.Clone(c.out.Bytes()) // a new slice: earlier results stay valid
	return c.gz
}

// fixPartHoldBack raises EXT-X-SERVER-CONTROL's PART-HOLD-BACK to three
// part target durations. RFC 8216bis: PART-HOLD-BACK "MUST be at least
// twice the Part Target Duration. Its value SHOULD be at least three times
// the Part Target Duration"; gohlslib writes 2.5 times, and a player that
// starts that close to the live edge stalls more.
func fixPartHoldBack(pl []byte) []byte {
	const phbAttr = "PART-HOLD-BACK="
	i := bytes.Index(pl, []byte(phbAttr))
	if i < 0 {
		return pl
	}
	target, ok := attrFloat(pl, "#EXT-X-PART-INF:", "PART-TARGET=")
	if !ok || target <= 0 {
		return pl
	}
	start := i + len(phbAttr)
	end := start
	for end < len(pl) && pl[end] != ',' && pl[end] != '\n' && pl[end] != '\r' {
		end++
	}
	phb, err := strconv.ParseFloat(string(pl[start:end]), 64)
	if err != nil || phb >= 3*target {
		return pl
	}
	out := make([]byte, 0, len(pl)+8)
	out = append(out, pl[:start]...)
	out = strconv.AppendFloat(out, 3*target, 'f', 5, 64)
	return append(out, pl[end:]...)
}

// attrFloat returns the numeric attribute attr of the line starting with
// tag.
func attrFloat(pl []byte, tag, attr string) (float64, bool) {
	i := bytes.Index(pl, []byte(tag))
	if i < 0 {
		return 0, false
	}
	line := pl[i+len(tag):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	k := bytes.Index(line, []byte(attr))
	if k < 0 {
		return 0, false
	}
	v := line[k+len(attr):]
	if j := bytes.IndexAny(v, ",\r"); j >= 0 {
		v = v[:j]
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}
