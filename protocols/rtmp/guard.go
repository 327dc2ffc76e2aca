package rtmp

import (
	"errors"
	"fmt"
	"net"
)

// ErrChunkBudget is returned when a peer's chunk stream (a client's on a
// served connection, an origin's on a pull) would make us hold more than
// its budget.
var ErrChunkBudget = errors.New("rtmp: chunk stream over its memory budget")

// ErrEncrypted is returned when the peer opens an encrypted handshake
// (RTMPE, C0 = 6 or 8). Its chunk stream cannot be followed, so what it
// would make gortmplib hold cannot be bounded: it is refused. RTMPS (RTMP
// over TLS) is the encrypted transport liveedge serves.
var ErrEncrypted = errors.New("rtmp: encrypted RTMP (RTMPE) is not served; use rtmps")

// Memory budgets of one connection's incoming chunk stream (see chunkGuard).
const (
	// budgetConnect bounds it until play or publish is admitted: a client
	// sends only small commands before that.
	budgetConnect = 256 << 10
	// budgetMedia bounds it afterwards: one message of the largest size
	// gortmplib accepts (10 MiB) plus room for audio and data.
	budgetMedia = 12 << 20
	// maxMessage is gortmplib's own limit on a message (and a chunk size).
	maxMessage = 10 << 20

	// handshakeIn is what the peer sends in a plain handshake before its
	// chunk stream: C0, C1, C2 from a client, S0, S1, S2 from an origin
	// (the same sizes, and version 3 in the first byte either way).
	handshakeIn = 1 + 1536 + 1536
)

// chunkGuard sits between the connection and gortmplib and follows the
// peer's chunk stream byte by byte (the same header rules as gortmplib's
// rawmessage reader) to bound what gortmplib will hold for it. Unguarded,
// gortmplib allocates a chunk's body (up to the chunk size the peer
// chose, 10 MiB) before the bytes arrive, and keeps the fragments of an
// unfinished message on each of 62 chunk streams at once: a single client
// (or origin) can make it hold over 600 MiB. The guard counts the bytes of
// unfinished messages on every chunk stream plus the chunk being read, and
// fails the read that would take them past the budget.
//
// The guard reads only what the peer sends, so it works the same on
// either side: the Set Chunk Size it follows is the peer's (the one our
// reader applies), and our own writes pass through untouched.
//
// Peers that open an encrypted handshake (RTMPE) are refused: their stream
// cannot be parsed here (ErrEncrypted).
type chunkGuard struct {
	net.Conn
	budget int64
	err    error

	// peer names the other side in errors ("client", "origin").
	peer string
	// mediaBudget, if set, becomes the budget at the first header of a
	// media or data message. A pull sets it: an origin sends media right
	// after its play status, often in the same read, so the guard sees
	// the first media chunk before the client returns from its play and
	// the pull can raise the budget.
	mediaBudget int64

	skip int  // handshake bytes still to pass
	off  bool // not followed (RTMPE, or a header gortmplib refuses anyway)

	chunkSize uint32
	streams   [64]guardStream
	pending   int64 // bytes held: unfinished messages, all chunk streams

	hdr    [16]byte // the chunk header being read
	hdrLen int
	need   int  // header length once known
	extChk bool // the extended timestamp check was done
	cur    *guardStream
	body   uint32 // body bytes of the current chunk still to come
	chunk  uint32 // body length of the current chunk
}

type guardStream struct {
	started bool // a header with a timestamp was seen
	length  uint32
	typ     byte
	ext     bool   // the last header used an extended timestamp
	recv    uint32 // bytes received of the unfinished message
	ctl     [4]byte
	ctlN    int
}

func newChunkGuard(nc net.Conn, budget int64) *chunkGuard {
	return &chunkGuard{Conn: nc, budget: budget, peer: "client", skip: handshakeIn, chunkSize: 128}
}

// newOriginGuard guards a pull's connection to an origin: budgetConnect
// until the origin starts sending media (or the pull raises it after
// play), then budgetMedia.
func newOriginGuard(nc net.Conn) *chunkGuard {
	g := newChunkGuard(nc, budgetConnect)
	g.peer, g.mediaBudget = "origin", budgetMedia
	return g
}

// setBudget changes the budget; it must be called from the goroutine that
// reads.
func (g *chunkGuard) setBudget(b int64) { g.budget = b }

func (g *chunkGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.Conn.Read(p)
	if n > 0 && !g.off {
		if ferr := g.feed(p[:n]); ferr != nil {
			g.err = ferr
			return 0, ferr
		}
	}
	return n, err
}

var headerLen = [4]int{12, 8, 4, 1} // by chunk type, basic header included

func (g *chunkGuard) feed(b []byte) error {
	for len(b) > 0 && !g.off {
		switch {
		case g.skip > 0:
			if g.skip == handshakeIn && b[0] != 3 {
				if b[0] == 6 || b[0] == 8 {
					return ErrEncrypted
				}
				g.off = true // garbage gortmplib refuses
				return nil
			}
			k := min(g.skip, len(b))
			g.skip -= k
			b = b[k:]
		case g.body > 0:
			k := min(int(g.body), len(b))
			if st := g.cur; (st.typ == 1 || st.typ == 2) && st.ctlN < 4 {
				st.ctlN += copy(st.ctl[st.ctlN:], b[:k])
			}
			g.body -= uint32(k)
			b = b[k:]
			if g.body == 0 {
				g.endChunk()
			}
		default:
			g.hdr[g.hdrLen] = b[0]
			g.hdrLen++
			b = b[1:]
			if err := g.header(); err != nil {
				return err
			}
		}
	}
	return nil
}

// header advances the chunk header after each byte.
func (g *chunkGuard) header() error {
	typ, csid := g.hdr[0]>>6, g.hdr[0]&0x3f
	if g.hdrLen == 1 {
		if csid < 2 {
			g.off = true // gortmplib refuses extended chunk stream IDs
			return nil
		}
		g.need, g.extChk = headerLen[typ], false
		if typ == 3 {
			g.extChk = true
			if g.streams[csid].ext {
				g.need += 4
			}
		}
	}
	if !g.extChk && g.hdrLen == headerLen[typ] {
		g.extChk = true
		if g.hdr[1] == 0xff && g.hdr[2] == 0xff && g.hdr[3] == 0xff {
			g.need += 4
		}
	}
	if g.hdrLen < g.need {
		return nil
	}
	g.hdrLen = 0
	return g.startChunk(typ, csid)
}

// isMedia reports whether a message type is audio, video, data or an
// aggregate: what a play sends after its status.
func isMedia(typ byte) bool {
	switch typ {
	case 8, 9, 15, 18, 22:
		return true
	}
	return false
}

func (g *chunkGuard) startChunk(typ byte, csid byte) error {
	st := &g.streams[csid]
	ts := uint32(g.hdr[1])<<16 | uint32(g.hdr[2])<<8 | uint32(g.hdr[3])
	var chunk uint32
	switch typ {
	case 0, 1:
		if st.recv != 0 || typ == 1 && !st.started {
			g.off = true // gortmplib fails on this
			return nil
		}
		st.started = true
		st.length = uint32(g.hdr[4])<<16 | uint32(g.hdr[5])<<8 | uint32(g.hdr[6])
		st.typ = g.hdr[7]
		st.ext = ts == 0xffffff
		if st.length > maxMessage {
			return fmt.Errorf("%w: the %s sent an oversized message (%d bytes on chunk stream %d; the maximum is %d)",
				ErrChunkBudget, g.peer, st.length, csid, maxMessage)
		}
		if g.mediaBudget > g.budget && isMedia(st.typ) {
			g.budget = g.mediaBudget
		}
		chunk = min(st.length, g.chunkSize)
	case 2:
		if st.recv != 0 || !st.started {
			g.off = true
			return nil
		}
		st.ext = ts == 0xffffff
		chunk = min(st.length, g.chunkSize)
	default:
		if st.recv == 0 && !st.started {
			g.off = true
			return nil
		}
		chunk = min(st.length-st.recv, g.chunkSize)
	}
	if st.recv == 0 {
		st.ctlN = 0
	}
	if held := g.pending + int64(chunk); held > g.budget {
		open := 0
		for i := range g.streams {
			if g.streams[i].recv != 0 || &g.streams[i] == st {
				open++
			}
		}
		streams := "1 chunk stream"
		if open != 1 {
			streams = fmt.Sprintf("%d chunk streams", open)
		}
		return fmt.Errorf("%w: the %s sent more unfinished message data than we hold "+
			"(%d bytes on %s, counting the %d-byte chunk it announced on chunk stream %d; budget %d)",
			ErrChunkBudget, g.peer, held, streams, chunk, csid, g.budget)
	}
	g.cur, g.chunk, g.body = st, chunk, chunk
	if chunk == 0 {
		g.endChunk()
	}
	return nil
}

// endChunk accounts a chunk whose body is in; a finished message frees
// its bytes, and Set Chunk Size and Abort Message take effect.
func (g *chunkGuard) endChunk() {
	st := g.cur
	st.recv += g.chunk
	g.pending += int64(g.chunk)
	if st.recv < st.length {
		return
	}
	g.pending -= int64(st.recv)
	st.recv = 0
	if st.ctlN != 4 || st.length != 4 {
		return
	}
	v := uint32(st.ctl[0])<<24 | uint32(st.ctl[1])<<16 | uint32(st.ctl[2])<<8 | uint32(st.ctl[3])
	switch st.typ {
	case 1: // Set Chunk Size; gortmplib refuses more than maxMessage
		if v > maxMessage {
			g.off = true
			return
		}
		g.chunkSize = v
	case 2: // Abort Message
		if v >= 2 && v <= 63 {
			a := &g.streams[v]
			g.pending -= int64(a.recv)
			a.recv = 0
		}
	}
}
