// Package flv serves HTTP-FLV and WS-FLV from the hub:
// GET /<app>/<stream>.flv (alias .live.flv) streams an FLV file that never
// ends, over chunked HTTP or, when the request is a WebSocket upgrade, as
// binary WebSocket messages carrying the same bytes.
//
// Every FLV tag is made once per unit (hub.FormatFLV on the unit) and the
// start headers once per configuration (hub.FormatFLV on the Tracks); the
// bytes are shared by every viewer, whose own work is only the write. An
// HTTP/1.1 viewer's connection is taken over once the response is decided,
// and each batch goes out as one chunk with one writev of the shared bytes,
// by the stream's shared fast path for every viewer that keeps up
// (chunked.go); HTTP/2 and TLS viewers use the ResponseWriter.
package flv

import (
	"encoding/binary"
	"strings"

	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/internal/fanout"
	"github.com/liveedge/liveedge/protocols/internal/tags"
)

// Layout sizes.
const (
	fileHeaderSize = 9
	tagHeaderSize  = 11
	prevSize       = 4
)

// Flags of the FLV file header.
const (
	flagAudio = 0x04
	flagVideo = 0x01
)

// appendTag appends one FLV tag (header, body, previous tag size).
func appendTag(b []byte, typ byte, ts uint32, body []byte) []byte {
	n := len(body)
	b = append(b, typ, byte(n>>16), byte(n>>8), byte(n),
		byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, uint32(tagHeaderSize+n))
}

// fileHeader returns the 9-byte FLV header and PreviousTagSize0.
func fileHeader(t *hub.Tracks) []byte {
	var flags byte
	if t.Audio != nil {
		flags |= flagAudio
	}
	if t.Video != nil {
		flags |= flagVideo
	}
	return []byte{'F', 'L', 'V', 1, flags, 0, 0, 0, fileHeaderSize, 0, 0, 0, 0}
}

// encodeStart is what a new viewer gets before its first unit: the file
// header, onMetaData and the sequence headers. Computed once per Tracks.
func encodeStart(t *hub.Tracks) []byte {
	ts := tags.Ms(t.Start)
	b := fileHeader(t)
	b = appendTag(b, tags.TypeData, ts, tags.Metadata(t))
	if t.Video != nil {
		b = appendTag(b, tags.TypeVideo, ts, tags.VideoHeader(t.Video))
	}
	if t.Audio != nil {
		b = appendTag(b, tags.TypeAudio, ts, tags.AudioHeader(t.Audio))
	}
	return b
}

// encodeUnit makes a unit's FLV tag; computed once per unit, shared.
func encodeUnit(u *hub.Unit) []byte {
	typ, body := tags.Body(u)
	return appendTag(make([]byte, 0, tagHeaderSize+len(body)+prevSize), typ, tags.Ms(u.DTS), body)
}

// unitTag returns a unit's shared FLV tag.
func unitTag(u *hub.Unit) []byte { return u.Encoded(hub.FormatFLV, encodeUnit) }

// plain is the FLV body of a batch, unframed: the WebSocket and
// ResponseWriter paths frame it themselves.
var plain = fanout.Format{Unit: unitTag, Headers: headers}

// headers returns what a viewer needs before units produced under next:
// everything for a new viewer (prev nil), only the sequence headers that
// changed for one already playing.
func headers(prev, next *hub.Tracks) []byte {
	if prev == nil {
		return next.Encoded(hub.FormatFLV, encodeStart)
	}
	ts := tags.Ms(next.Start)
	var b []byte
	if next.Video != nil && !next.Video.Equal(prev.Video) {
		b = appendTag(b, tags.TypeVideo, ts, tags.VideoHeader(next.Video))
	}
	if next.Audio != nil && !next.Audio.Equal(prev.Audio) {
		b = appendTag(b, tags.TypeAudio, ts, tags.AudioHeader(next.Audio))
	}
	return b
}

// parsePath returns the stream of /<app>/<stream>.flv or
// /<app>/<stream>.live.flv.
func parsePath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return "", false
	}
	if s, ok := strings.CutSuffix(rest, ".live.flv"); ok {
		rest = s
	} else if s, ok := strings.CutSuffix(rest, ".flv"); ok {
		rest = s
	} else {
		return "", false
	}
	if !hub.ValidName(rest) {
		return "", false
	}
	return rest, true
}

// Handles reports whether path is an FLV path, so a shared HTTP router can
// send it here.
func Handles(path string) bool {
	_, ok := parsePath(path)
	return ok
}
