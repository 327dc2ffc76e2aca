package hls

import (
	"bytes"
	"net/http"
	"strconv"
)

// Cache policies: playlists change all the time; a segment, part or init
// file never changes under its name (the muxer's names carry a random
// per-muxer prefix).
const (
	cachePlaylist = "no-cache"
	cacheSegment  = "public, max-age=3600, immutable"
)

// responseWriter sits between the muxer and the client. It sets our cache
// policy, buffers playlists (to send a Content-Length, also on HEAD),
// turns "nothing written" (a name the muxer does not know) into 404 and a
// muxer that closed under the request into 503.
type responseWriter struct {
	w      http.ResponseWriter
	kind   fileKind
	status int
	buf    bytes.Buffer // playlists only
	passed bool         // segment headers were sent to the client
}

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
		rw.w.Header().Set("Cache-Control", cacheSegment)
	}
	// Segments stream through; a 500 is held back for finish.
	if code != http.StatusInternalServerError {
		rw.passed = true
		rw.w.WriteHeader(code)
	}
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.kind.playlist() {
		return rw.buf.Write(b)
	}
	if !rw.passed {
		return len(b), nil
	}
	return rw.w.Write(b)
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
		http.Error(rw.w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	if rw.status == http.StatusOK {
		h.Set("Cache-Control", cachePlaylist)
		h.Set("Content-Length", strconv.Itoa(rw.buf.Len()))
	}
	rw.w.WriteHeader(rw.status)
	rw.w.Write(rw.buf.Bytes()) //nolint:errcheck // the client may have left
}
