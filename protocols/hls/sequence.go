package hls

import (
	"bytes"
	"net/url"
	"strconv"
	"sync"
)

// Media sequence numbers across muxer restarts. A codec change (or the
// fall back from hls.dir to memory) replaces a stream's gohlslib muxer,
// whose numbering starts again: a player that follows the playlist would
// wait for numbers that come back only after as many segments as it has
// played (ffmpeg stalls for good when the stream changes again before).
// The numbers of each new muxer are offset so that its first segment
// follows the last one served; a new init section (EXT-X-MAP) tells the
// player of the new configuration. Its playlists also carry
// EXT-X-DISCONTINUITY-SEQUENCE, one more per restart: the playlist reads
// as if the segments before the restart, and the EXT-X-DISCONTINUITY tag
// between them and the new ones, had slid out of it, so a player resets
// its timestamp and decoder state for the new segments.

// llGaps is how many gap segments gohlslib's LL-HLS muxer starts with.
const llGaps = 7

// sequence follows the media sequence numbers a stream served.
type sequence struct {
	mu       sync.Mutex
	next     uint64 // the highest next media sequence number served
	restarts uint64
}

// numbering is how a muxer's playlists are renumbered: base is added to
// its media sequence numbers, disc is its discontinuity sequence number.
// The first muxer's is the zero value.
type numbering struct {
	base, disc uint64
}

// restart returns the numbering of a new muxer (a restart): its first segment
// after the initial gaps (LL-HLS) follows the last segment served, or the
// one in progress, whose parts a player may have had; its discontinuity
// sequence is one more than the previous muxer's.
func (q *sequence) restart(lowLatency bool) numbering {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.restarts++
	n := numbering{base: q.next, disc: q.restarts}
	if lowLatency {
		n.base = 0
		if q.next+1 >= llGaps {
			n.base = q.next + 1 - llGaps
		}
	}
	return n
}

// rewrite renumbers a media playlist with n and notes the next media
// sequence number it implies.
func (q *sequence) rewrite(pl []byte, n numbering) []byte {
	if n.base > 0 {
		pl = addToAttr(pl, "#EXT-X-MEDIA-SEQUENCE:", n.base)
		pl = addToAttr(pl, "LAST-MSN=", n.base)
	}
	if n.disc > 0 {
		pl = addDiscontinuitySequence(pl, n.disc)
	}
	ms, ok := attrUint(pl, "#EXT-X-MEDIA-SEQUENCE:")
	if !ok {
		return pl
	}
	skipped, _ := attrUint(pl, "SKIPPED-SEGMENTS=")
	next := ms + skipped + uint64(bytes.Count(pl, []byte("#EXTINF:")))
	q.mu.Lock()
	q.next = max(q.next, next)
	q.mu.Unlock()
	return pl
}

// addDiscontinuitySequence puts "#EXT-X-DISCONTINUITY-SEQUENCE:<disc>" on
// the line after EXT-X-MEDIA-SEQUENCE (RFC 8216 4.4.3.3: before the first
// segment).
func addDiscontinuitySequence(pl []byte, disc uint64) []byte {
	const tag = "#EXT-X-MEDIA-SEQUENCE:"
	i := bytes.Index(pl, []byte(tag))
	if i < 0 || bytes.Contains(pl, []byte("#EXT-X-DISCONTINUITY-SEQUENCE:")) {
		return pl
	}
	eol := bytes.IndexByte(pl[i:], '\n')
	if eol < 0 {
		return pl
	}
	at := i + eol + 1
	out := make([]byte, 0, len(pl)+48)
	out = append(out, pl[:at]...)
	out = append(out, "#EXT-X-DISCONTINUITY-SEQUENCE:"...)
	out = strconv.AppendUint(out, disc, 10)
	out = append(out, '\n')
	return append(out, pl[at:]...)
}

// mapDirectives turns the _HLS_msn of a blocking playlist request into
// the muxer's numbering; a number before the muxer's first segment (one
// of an earlier muxer) asks for the playlist at once.
func mapDirectives(q url.Values, base uint64, lowLatency bool) {
	v := q.Get("_HLS_msn")
	if v == "" || base == 0 {
		return
	}
	msn, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return // the muxer answers 400
	}
	first := base
	if lowLatency {
		first += llGaps
	}
	if msn < first {
		q.Del("_HLS_msn")
		q.Del("_HLS_part")
		return
	}
	q.Set("_HLS_msn", strconv.FormatUint(msn-base, 10))
}

// addToAttr adds d to every decimal value that follows prefix.
func addToAttr(pl []byte, prefix string, d uint64) []byte {
	var out []byte
	rest := pl
	for {
		i := bytes.Index(rest, []byte(prefix))
		if i < 0 {
			break
		}
		start := i + len(prefix)
		end := start
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		n, err := strconv.ParseUint(string(rest[start:end]), 10, 64)
		if err != nil {
			out = append(out, rest[:end]...)
			rest = rest[end:]
			continue
		}
		out = append(out, rest[:start]...)
		out = strconv.AppendUint(out, n+d, 10)
		rest = rest[end:]
	}
	if out == nil {
		return pl
	}
	return append(out, rest...)
}

// attrUint returns the first decimal value that follows prefix.
func attrUint(pl []byte, prefix string) (uint64, bool) {
	i := bytes.Index(pl, []byte(prefix))
	if i < 0 {
		return 0, false
	}
	start := i + len(prefix)
	end := start
	for end < len(pl) && pl[end] >= '0' && pl[end] <= '9' {
		end++
	}
	n, err := strconv.ParseUint(string(pl[start:end]), 10, 64)
	return n, err == nil
}
