package main

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A small media playlist parser and checker written against RFC 8216bis
// (draft-pantos-hls-rfc8216bis), independent of the library that writes
// the playlists, for the live playlists liveedge serves.

type plPart struct {
	dur         float64
	uri         string
	independent bool
}

type plSegment struct {
	msn   int
	dur   float64
	uri   string
	gap   bool
	parts []plPart
}

type mediaPL struct {
	version    int
	target     int // EXT-X-TARGETDURATION, seconds
	seq        int // EXT-X-MEDIA-SEQUENCE
	partTarget float64
	control    map[string]string // EXT-X-SERVER-CONTROL attributes; nil if absent
	hasMap     bool
	segments   []plSegment
	tail       []plPart // parts of the segment in progress (msn = seq + len(segments))
	hint       map[string]string
}

// nextMSN is the media sequence number of the segment in progress.
func (p *mediaPL) nextMSN() int { return p.seq + len(p.segments) }

// parseAttrs reads an attribute list: NAME=value pairs, values quoted or
// not, separated by commas (quoted values may hold commas).
func parseAttrs(s string) (map[string]string, error) {
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("bad attribute list at %q", s)
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted string in %q", s)
			}
			val, rest = rest[1:1+end], rest[2+end:]
		} else if i := strings.IndexByte(rest, ','); i >= 0 {
			val, rest = rest[:i], rest[i:]
		} else {
			val, rest = rest, ""
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("attribute %s twice", name)
		}
		out[name] = val
		if rest != "" {
			if rest[0] != ',' {
				return nil, fmt.Errorf("expected ',' at %q", rest)
			}
			rest = rest[1:]
		}
		s = rest
	}
	return out, nil
}

func parseMediaPlaylist(body string) (*mediaPL, error) {
	lines := strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n")
	if len(lines) == 0 || lines[0] != "#EXTM3U" {
		return nil, fmt.Errorf("first line is not #EXTM3U")
	}
	p := &mediaPL{target: -1, seq: 0}
	var cur plSegment
	var pending []plPart
	haveInf := false
	for n, line := range lines[1:] {
		line = strings.TrimSpace(line)
		tag, val, _ := strings.Cut(line, ":")
		bad := func(err error) error { return fmt.Errorf("line %d %q: %v", n+2, line, err) }
		switch {
		case line == "":
		case tag == "#EXT-X-VERSION":
			v, err := strconv.Atoi(val)
			if err != nil {
				return nil, bad(err)
			}
			p.version = v
		case tag == "#EXT-X-TARGETDURATION":
			v, err := strconv.Atoi(val)
			if err != nil {
				return nil, bad(err)
			}
			p.target = v
		case tag == "#EXT-X-MEDIA-SEQUENCE":
			v, err := strconv.Atoi(val)
			if err != nil {
				return nil, bad(err)
			}
			p.seq = v
		case tag == "#EXT-X-PART-INF":
			a, err := parseAttrs(val)
			if err != nil {
				return nil, bad(err)
			}
			if p.partTarget, err = strconv.ParseFloat(a["PART-TARGET"], 64); err != nil {
				return nil, bad(err)
			}
		case tag == "#EXT-X-SERVER-CONTROL":
			a, err := parseAttrs(val)
			if err != nil {
				return nil, bad(err)
			}
			p.control = a
		case tag == "#EXT-X-MAP":
			p.hasMap = true
		case tag == "#EXT-X-PART":
			a, err := parseAttrs(val)
			if err != nil {
				return nil, bad(err)
			}
			d, err := strconv.ParseFloat(a["DURATION"], 64)
			if err != nil || a["URI"] == "" {
				return nil, bad(fmt.Errorf("EXT-X-PART needs DURATION and URI"))
			}
			pending = append(pending, plPart{dur: d, uri: a["URI"], independent: a["INDEPENDENT"] == "YES"})
		case tag == "#EXT-X-PRELOAD-HINT":
			a, err := parseAttrs(val)
			if err != nil {
				return nil, bad(err)
			}
			p.hint = a
		case tag == "#EXTINF":
			d, _, _ := strings.Cut(val, ",")
			v, err := strconv.ParseFloat(d, 64)
			if err != nil {
				return nil, bad(err)
			}
			cur.dur, haveInf = v, true
		case tag == "#EXT-X-GAP":
			cur.gap = true
		case strings.HasPrefix(line, "#"):
			// Other tags (PROGRAM-DATE-TIME, INDEPENDENT-SEGMENTS, ...).
		default:
			if !haveInf {
				return nil, bad(fmt.Errorf("URI without EXTINF"))
			}
			cur.uri, cur.parts, cur.msn = line, pending, p.seq+len(p.segments)
			p.segments = append(p.segments, cur)
			cur, pending, haveInf = plSegment{}, nil, false
		}
	}
	p.tail = pending
	return p, nil
}

// check returns the rules a playlist breaks on its own.
func (p *mediaPL) check(ll bool) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	if p.target < 0 {
		add("no EXT-X-TARGETDURATION")
	}
	for _, s := range p.segments {
		// "The EXTINF duration of each Media Segment in a Playlist file,
		// when rounded to the nearest integer, MUST be less than or equal
		// to the Target Duration."
		if r := int(math.Round(s.dur)); r > p.target {
			add("segment %d: EXTINF %.5f rounds to %d > EXT-X-TARGETDURATION %d", s.msn, s.dur, r, p.target)
		}
	}
	if !ll {
		return v
	}
	if p.partTarget <= 0 {
		add("LL-HLS playlist without EXT-X-PART-INF")
	}
	if !p.hasMap {
		add("fMP4 playlist without EXT-X-MAP")
	}
	if p.control == nil {
		add("no EXT-X-SERVER-CONTROL")
	} else {
		if p.control["CAN-BLOCK-RELOAD"] != "YES" {
			add("EXT-X-SERVER-CONTROL without CAN-BLOCK-RELOAD=YES")
		}
		phb, err := strconv.ParseFloat(p.control["PART-HOLD-BACK"], 64)
		switch {
		case err != nil:
			add("EXT-X-SERVER-CONTROL without PART-HOLD-BACK (required with EXT-X-PART-INF)")
		case phb < 3*p.partTarget-1e-6:
			// MUST be at least twice the Part Target Duration; SHOULD be
			// at least three times.
			add("PART-HOLD-BACK %.3f < 3 × PART-TARGET %.3f", phb, p.partTarget)
		}
		if hb, err := strconv.ParseFloat(p.control["HOLD-BACK"], 64); err == nil && hb < 3*float64(p.target) {
			add("HOLD-BACK %.3f < 3 × target duration %d", hb, p.target)
		}
	}
	checkParts := func(msn int, parts []plPart, complete bool) {
		for i, pt := range parts {
			// Part durations MUST be <= PART-TARGET (rounding allowed for
			// the printed decimals).
			if pt.dur > p.partTarget+0.001 {
				add("segment %d part %d: duration %.5f > PART-TARGET %.5f", msn, i, pt.dur, p.partTarget)
			}
		}
		if i := 0; len(parts) > 0 && !parts[i].independent && complete {
			// Segments are cut on keyframes: a segment's first part is
			// independent.
			add("segment %d: first part is not INDEPENDENT", msn)
		}
	}
	for _, s := range p.segments {
		if len(s.parts) == 0 {
			continue
		}
		checkParts(s.msn, s.parts, true)
		sum := 0.0
		for _, pt := range s.parts {
			sum += pt.dur
		}
		// Parts of a completed segment add up to its duration; each
		// figure is printed with 5 decimals.
		if tol := 0.001 * float64(len(s.parts)+1); math.Abs(sum-s.dur) > tol {
			add("segment %d: parts add up to %.5f, EXTINF %.5f", s.msn, sum, s.dur)
		}
	}
	checkParts(p.nextMSN(), p.tail, false)
	if p.hint == nil {
		add("no EXT-X-PRELOAD-HINT")
	} else if p.hint["TYPE"] != "PART" || p.hint["URI"] == "" {
		add("EXT-X-PRELOAD-HINT %v: want TYPE=PART and a URI", p.hint)
	}
	return v
}

// partAt returns the URI of part (msn, i), if the playlist lists it.
func (p *mediaPL) partAt(msn, i int) (string, bool) {
	if msn == p.nextMSN() {
		if i < len(p.tail) {
			return p.tail[i].uri, true
		}
		return "", false
	}
	if k := msn - p.seq; k >= 0 && k < len(p.segments) && i < len(p.segments[k].parts) {
		return p.segments[k].parts[i].uri, true
	}
	return "", false
}

// nextPart returns the position of the part after the last one listed.
func (p *mediaPL) nextPart() (msn, part int) {
	return p.nextMSN(), len(p.tail)
}

// checkReload returns the rules broken between a playlist and its reload.
func checkReload(prev, cur *mediaPL, ll bool) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	if cur.seq < prev.seq {
		add("EXT-X-MEDIA-SEQUENCE went back from %d to %d", prev.seq, cur.seq)
	}
	// A segment keeps its media sequence number (and URI) across reloads.
	byMSN := map[int]plSegment{}
	for _, s := range prev.segments {
		byMSN[s.msn] = s
	}
	for _, s := range cur.segments {
		if o, ok := byMSN[s.msn]; ok && (o.uri != s.uri || o.gap != s.gap) {
			add("segment %d was %q, now %q", s.msn, o.uri, s.uri)
		}
	}
	if cur.target != prev.target {
		add("EXT-X-TARGETDURATION changed from %d to %d", prev.target, cur.target)
	}
	if ll && prev.hint != nil {
		// The preload hint names the part after the last one listed: once
		// the reload lists that position, it is that URI.
		msn, i := prev.nextPart()
		uri, ok := cur.partAt(msn, i)
		if !ok && cur.nextMSN() > msn {
			// The segment ended with the previous part: the hint was the
			// next segment's first part.
			msn, i = msn+1, 0
			uri, ok = cur.partAt(msn, i)
		}
		if ok && uri != prev.hint["URI"] {
			add("PRELOAD-HINT was %q, but part %d.%d is %q", prev.hint["URI"], msn, i, uri)
		}
	}
	return v
}

func TestPlaylistCheckerCatchesViolations(t *testing.T) {
	bad := `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=NO,PART-HOLD-BACK=0.5
#EXT-X-PART-INF:PART-TARGET=0.2
#EXT-X-MEDIA-SEQUENCE:5
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PART:DURATION=0.2,URI="p0.mp4"
#EXT-X-PART:DURATION=0.3,URI="p1.mp4"
#EXTINF:1.6,
s5.mp4
#EXT-X-PART:DURATION=0.2,URI="p2.mp4",INDEPENDENT=YES
`
	p, err := parseMediaPlaylist(bad)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(p.check(true), "\n")
	for _, want := range []string{"rounds to 2", "CAN-BLOCK-RELOAD", "PART-HOLD-BACK 0.500", "part 1: duration 0.3",
		"first part is not INDEPENDENT", "parts add up", "no EXT-X-PRELOAD-HINT"} {
		if !strings.Contains(got, want) {
			t.Errorf("violations lack %q:\n%s", want, got)
		}
	}
	prev := *p
	prev.hint = map[string]string{"TYPE": "PART", "URI": "px.mp4"}
	cur := *p
	cur.seq = 4
	got = strings.Join(checkReload(&prev, &cur, true), "\n")
	if !strings.Contains(got, "went back") {
		t.Errorf("reload violations lack the media sequence: %s", got)
	}
	prev.tail = nil
	cur.seq = 5
	got = strings.Join(checkReload(&prev, &cur, true), "\n")
	if !strings.Contains(got, `PRELOAD-HINT was "px.mp4", but part 6.0 is "p2.mp4"`) {
		t.Errorf("reload violations lack the preload hint: %s", got)
	}
}

// TestHLSPlaylistConformance reloads the live playlists of the real binary
// for about 5 s, as a player does (LL-HLS: blocking reloads of the next
// part; TS: every half target duration) and checks every one.
func TestHLSPlaylistConformance(t *testing.T) {
	requireTools(t)
	s := startServer(t, hlsBaseConfig+`
hls: {apps: {tv: {variant: mpegts, segment_duration: 1s, segment_count: 3}}}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
  - {match: "tv/demo", mode: static, origins: [demo]}
`)
	addr := s.httpAddr(t)
	for _, tc := range []struct {
		name, stream string
		ll           bool
	}{{"lowlatency", "live/demo", true}, {"mpegts", "tv/demo", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			media := mediaPlaylist(t, "http://"+addr+"/"+tc.stream+"/index.m3u8")
			var prev *mediaPL
			reloads, seqChanges, blocked := 0, 0, 0
			firstSeq := -1
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); reloads++ {
				u := media
				if prev != nil && tc.ll {
					msn, part := prev.nextPart()
					u = media + "?_HLS_msn=" + strconv.Itoa(msn) + "&_HLS_part=" + strconv.Itoa(part)
					blocked++
				} else if prev != nil {
					time.Sleep(time.Duration(prev.target) * time.Second / 2)
				}
				res, body := httpGet(t, u)
				if res.StatusCode != http.StatusOK {
					t.Fatalf("GET %s = %d", u, res.StatusCode)
				}
				p, err := parseMediaPlaylist(body)
				if err != nil {
					t.Fatalf("%v\n%s", err, body)
				}
				for _, v := range p.check(tc.ll) {
					t.Errorf("reload %d: %s\n%s", reloads, v, body)
				}
				if prev != nil {
					for _, v := range checkReload(prev, p, tc.ll) {
						t.Errorf("reload %d: %s\n%s", reloads, v, body)
					}
					if p.seq != prev.seq {
						seqChanges++
					}
				} else {
					firstSeq = p.seq
				}
				if t.Failed() {
					return
				}
				prev = p
			}
			// 1 s segments, 7 kept (LL-HLS, after the 7 initial gaps) or 3
			// (TS): over 5 s the window moves.
			if prev.seq <= firstSeq {
				t.Errorf("media sequence did not advance over %d reloads (stayed %d)", reloads, firstSeq)
			}
			t.Logf("%d reloads (%d blocking), media sequence %d → %d (%d changes)", reloads, blocked, firstSeq, prev.seq, seqChanges)
		})
	}
}
