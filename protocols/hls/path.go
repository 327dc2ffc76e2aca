package hls

import (
	"regexp"
	"strings"

	"github.com/liveedge/liveedge/hub"
)

// fileKind says how a request is served and cached.
type fileKind int

const (
	kindIndex         fileKind = iota + 1 // index.m3u8 / hls.m3u8: the multivariant playlist
	kindMediaPlaylist                     // a variant's media playlist
	kindSegment                           // a segment, part or init file
)

func (k fileKind) playlist() bool { return k == kindIndex || k == kindMediaPlaylist }

// The names the muxer gives its files: "<id>_stream.m3u8" for a media
// playlist and "<prefix>_<id>_(seg<N>.mp4|seg<N>.ts|part<N>.mp4|init.mp4)"
// for media, where prefix is 12 hex digits chosen per muxer.
var (
	mediaPlaylistRe = regexp.MustCompile(`^[a-z]+[0-9]*_stream\.m3u8$`)
	segmentRe       = regexp.MustCompile(`^[0-9a-f]{12}_[a-z]+[0-9]*_(?:seg[0-9]{1,19}\.(?:mp4|ts)|part[0-9]{1,19}\.mp4|init\.mp4)$`)
)

// hlsPath is a parsed request path: /<app>/<stream>/<file>.
type hlsPath struct {
	stream string // "app/stream"
	file   string // the muxer's file name (hls.m3u8 is given as index.m3u8)
	kind   fileKind
}

// parsePath parses an HLS request path. It accepts only
// /<app>/<stream>/<file> with a valid stream name and a file name the muxer
// serves; anything else (including "..", empty or encoded-slash segments)
// is not an HLS path. Nothing here touches the file system.
func parsePath(p string) (hlsPath, bool) {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok || strings.Contains(p, "..") || strings.ContainsAny(p, "\\\x00") {
		return hlsPath{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return hlsPath{}, false
	}
	name := parts[0] + "/" + parts[1]
	if !hub.ValidName(name) {
		return hlsPath{}, false
	}
	hp := hlsPath{stream: name, file: parts[2]}
	switch {
	case hp.file == "index.m3u8" || hp.file == "hls.m3u8":
		hp.file, hp.kind = "index.m3u8", kindIndex
	case mediaPlaylistRe.MatchString(hp.file):
		hp.kind = kindMediaPlaylist
	case segmentRe.MatchString(hp.file):
		hp.kind = kindSegment
	default:
		return hlsPath{}, false
	}
	return hp, true
}

// Handles reports whether path is one the HLS handler serves, so a shared
// HTTP router can send it there.
func Handles(path string) bool {
	_, ok := parsePath(path)
	return ok
}
