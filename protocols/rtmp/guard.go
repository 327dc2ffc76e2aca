package rtmp

import (
	"errors"
	"fmt"
	"net"
)

// ErrChunkBudget is returned when a client's chunk stream would make the
// server hold more than its budget.
var ErrChunkBudget = errors.New("rtmp: chunk stream over its memory budget")

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

	// handshakeIn is what a client sends in a plain handshake: C0, C1, C2.
	handshakeIn = 1 + 1536 + 1536
)

// chunkGuard sits between the connection and gortmplib and follows the
// client's chunk stream byte by byte (the same header rules as gortmplib's
// rawmessage reader) to bound what gortmplib will hold for it. Unguarded,
// gortmplib allocates a chunk's body (up to the chunk size the client
// chose, 10 MiB) before the bytes arrive, and keeps the fragments of an
// unfinished message on each of 62 chunk streams at once: a single client
// can make it hold over 600 MiB. The guard counts the bytes of unfinished
// messages on every chunk stream plus the chunk being read, and fails the
// read that would take them past the budget.
//
// Clients that negotiate an encrypted handshake (RTMPE) are not followed:
// their stream cannot be parsed here.
type chunkGuard struct {
	net.Conn
	budget int64
	err    error

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
	return &chunkGuard{Conn: nc, budget: budget, skip: handshakeIn, chunkSize: 128}
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
				g.off = true // RTMPE (6) or garbage gortmplib refuses
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
	return g.startChunk(typ, &g.streams[csid])
}

func (g *chunkGuard) startChunk(typ byte, st *guardStream) error {
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
			return fmt.Errorf("%w: a %d-byte message (the maximum is %d)", ErrChunkBudget, st.length, maxMessage)
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
		return fmt.Errorf("%w: %d bytes of unfinished messages (budget %d)", ErrChunkBudget, held, g.budget)
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
