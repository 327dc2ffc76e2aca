package fanout

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"github.com/liveedge/liveedge/hub"
)

// shard is one fast-path writer goroutine and the players it serves.
type shard struct {
	format *Format
	sub    *hub.Subscriber
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	players []*player     // copy on write
	pos     uint64        // the fast players have been (or are being) written up to here
	tracks  *hub.Tracks   // tracks of the unit before pos
	moved   chan struct{} // closed and replaced whenever pos moves
	err     error         // set when the shard stopped
}

// player is a connection's state as seen by the fast path.
type player struct {
	raw     syscall.RawConn
	handoff chan handoff // receives one handoff per stint on the fast path
}

// handoff returns a player to its own goroutine: the bytes of the batch it
// did not take, the position after that batch, and why.
type handoff struct {
	rest   net.Buffers
	pos    uint64
	tracks *hub.Tracks
	werr   error // the player's socket failed
	err    error // the shard stopped
}

// tryJoin adds p to the fast path if the shard's position is the player's.
// Otherwise it returns the channel to wait on when the shard is behind the
// player, or nothing when the player should catch up first.
func (sh *shard) tryJoin(p *player, pos uint64, tracks *hub.Tracks) (wait <-chan struct{}, ok bool, err error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.err != nil {
		return nil, false, sh.err
	}
	if sh.pos > pos {
		return nil, false, nil
	}
	if sh.pos < pos || sh.tracks != tracks {
		return sh.moved, false, nil
	}
	sh.players = append(append(make([]*player, 0, len(sh.players)+1), sh.players...), p)
	return nil, true, nil
}

// leave removes p from the fast path; it reports false if p was already
// handed back (a handoff is then waiting in p.handoff).
func (sh *shard) leave(p *player) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i, q := range sh.players {
		if q == p {
			next := make([]*player, 0, len(sh.players)-1)
			next = append(next, sh.players[:i]...)
			sh.players = append(next, sh.players[i+1:]...)
			return true
		}
	}
	return false
}

func (sh *shard) run() {
	defer close(sh.done)
	defer sh.sub.Close()
	batch := make([]*hub.Unit, 0, 32)
	bufs := make(net.Buffers, 0, 40)
	iov := make([]syscall.Iovec, 0, 40)
	var cur *hub.Tracks
	for {
		units, err := sh.sub.Next(sh.ctx, batch)
		if err != nil {
			sh.stopWith(err)
			return
		}
		var total int
		bufs, cur, total = sh.format.Append(bufs[:0], cur, units)
		sh.mu.Lock()
		players := sh.players
		pos := sh.sub.Position()
		sh.pos, sh.tracks = pos, cur
		close(sh.moved)
		sh.moved = make(chan struct{})
		sh.mu.Unlock()
		if total == 0 {
			continue
		}

		iov = iovecs(iov, bufs) // the same for every player of the batch
		sent := 0
		for _, p := range players {
			n, err := writeNonBlocking(p.raw, iov)
			sent += n
			if err == nil && n == total {
				continue
			}
			if sh.leave(p) {
				p.handoff <- handoff{rest: remainder(bufs, n), pos: pos, tracks: cur, werr: err}
			}
		}
		sh.sub.CountOut(sent) // once per batch for all its players
	}
}

// stopWith ends the fast path: every player is handed back with err.
func (sh *shard) stopWith(err error) {
	sh.mu.Lock()
	players := sh.players
	sh.players = nil
	sh.err = err
	if errors.Is(err, context.Canceled) {
		sh.err = ErrStopped
	}
	pos, tracks, serr := sh.pos, sh.tracks, sh.err
	close(sh.moved)
	sh.moved = make(chan struct{})
	sh.mu.Unlock()
	for _, p := range players {
		p.handoff <- handoff{pos: pos, tracks: tracks, err: serr}
	}
}

// remainder returns what is left of bufs after n bytes were written.
func remainder(bufs net.Buffers, n int) net.Buffers {
	var rest net.Buffers
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		rest = append(rest, b[n:])
		n = 0
	}
	return rest
}

// iovecs describes bufs for writev, reusing v's storage.
func iovecs(v []syscall.Iovec, bufs net.Buffers) []syscall.Iovec {
	v = v[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v = append(v, syscall.Iovec{Base: &b[0], Len: uint64(len(b))})
		}
	}
	return v
}

// writeNonBlocking writes as much of v as the socket takes now, with one
// writev; it never waits.
func writeNonBlocking(raw syscall.RawConn, v []syscall.Iovec) (int, error) {
	if len(v) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := raw.Write(func(fd uintptr) bool {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&v[0])), uintptr(len(v)))
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	switch errno {
	case 0:
		return n, nil
	case syscall.EAGAIN, syscall.EINTR:
		return 0, nil
	}
	return 0, errno
}
