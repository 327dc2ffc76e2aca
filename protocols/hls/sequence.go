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
// player of the new configuration.

// llGaps is how many gap segments gohlslib's LL-HLS muxer starts with.
const llGaps = 7

// sequence follows the media sequence numbers a stream served.
type sequence struct {
	mu   sync.Mutex
	next uint64 // the highest next media sequence number served
}

// baseFor returns the offset of a new muxer's numbers: its first segment
// after the initial gaps (LL-HLS) follows the last segment served, or
// the one in progress, whose parts a player may have had.
func (q *sequence) baseFor(lowLatency bool) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !lowLatency {
		return q.next
	}
	if q.next+1 < llGaps {
		return 0
	}
	return q.next + 1 - llGaps
}

// rewrite offsets the media sequence numbers of a media playlist by base
// and notes the next number it implies.
func (q *sequence) rewrite(pl []byte, base uint64) []byte {
	if base > 0 {
		pl = addToAttr(pl, "#EXT-X-MEDIA-SEQUENCE:", base)
		pl = addToAttr(pl, "LAST-MSN=", base)
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
