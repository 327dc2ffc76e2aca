package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/liveedge/liveedge/protocols/rtmp"
)

// RTMP message types.
const (
	msgSetChunkSize  = 1
	msgAbort         = 2
	msgAck           = 3
	msgUserControl   = 4
	msgWindowAckSize = 5
	msgPeerBandwidth = 6
	msgAudio         = 8
	msgVideo         = 9
	msgDataAMF0      = 18
	msgCommandAMF0   = 20
)

// defaultChunkSize is the chunk size of both directions until a Set Chunk
// Size message changes it.
const defaultChunkSize = 128

// maxChunkSize bounds what a peer may announce; larger values are refused
// (the protocol allows 2^31-1, but nothing sane sends more than 16 MiB).
const maxChunkSize = 1 << 24

// rtmpMessage is one reassembled message. Body is owned by the chunk
// reader and valid until the next ReadMessage call.
type rtmpMessage struct {
	CSID      uint32
	Type      uint8
	Timestamp uint32
	StreamID  uint32
	Body      []byte
}

// chunkStream is the header state of one chunk stream and the message
// being reassembled on it.
type chunkStream struct {
	msg        rtmpMessage
	length     uint32
	delta      uint32
	ext        bool // the last header had an extended timestamp
	seen       bool // a header with a message length was received
	inProgress bool
}

// chunkReader parses the chunk stream of an RTMP connection into messages.
// It reuses one read buffer and one body buffer per chunk stream, so that
// steady-state reading allocates nothing. It applies Set Chunk Size and
// Abort itself (and still returns them).
type chunkReader struct {
	r          io.Reader
	buf        []byte
	rpos, wpos int
	chunkSize  uint32
	low        [64]*chunkStream
	high       map[uint32]*chunkStream
	partial    int // messages in progress
	// Received counts the bytes read from r (for acknowledgements).
	Received uint64
}

func newChunkReader(r io.Reader, bufSize int) *chunkReader {
	if bufSize < 64 {
		bufSize = 64
	}
	return &chunkReader{r: r, buf: make([]byte, bufSize), chunkSize: defaultChunkSize}
}

// ChunkSize returns the current incoming chunk size.
func (c *chunkReader) ChunkSize() uint32 { return c.chunkSize }

// setBuffered primes the reader with bytes already read from the
// connection (they count as received).
func (c *chunkReader) setBuffered(b []byte) {
	if len(b) > len(c.buf) {
		c.buf = make([]byte, len(b))
	}
	c.rpos, c.wpos = 0, copy(c.buf, b)
	c.Received += uint64(len(b))
}

// ensure makes at least n (<= len(buf)) unread bytes available.
func (c *chunkReader) ensure(n int) error {
	for c.wpos-c.rpos < n {
		if len(c.buf)-c.rpos < n {
			c.wpos = copy(c.buf, c.buf[c.rpos:c.wpos])
			c.rpos = 0
		}
		m, err := c.r.Read(c.buf[c.wpos:])
		c.wpos += m
		c.Received += uint64(m)
		if err != nil {
			if c.wpos-c.rpos >= n {
				return nil
			}
			if errors.Is(err, io.EOF) && (c.wpos > c.rpos || n > 1) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

func (c *chunkReader) stream(csid uint32) *chunkStream {
	if csid < uint32(len(c.low)) {
		cs := c.low[csid]
		if cs == nil {
			cs = &chunkStream{}
			cs.msg.CSID = csid
			c.low[csid] = cs
		}
		return cs
	}
	if c.high == nil {
		c.high = map[uint32]*chunkStream{}
	}
	cs := c.high[csid]
	if cs == nil {
		cs = &chunkStream{}
		cs.msg.CSID = csid
		c.high[csid] = cs
	}
	return cs
}

func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

// ReadMessage reads chunks until a message is complete and returns it.
func (c *chunkReader) ReadMessage() (*rtmpMessage, error) {
	for {
		if err := c.ensure(1); err != nil {
			if errors.Is(err, io.EOF) && c.partial > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		b0 := c.buf[c.rpos]
		fmtType := b0 >> 6
		csid := uint32(b0 & 0x3f)
		hlen := 1
		switch csid {
		case 0:
			hlen = 2
		case 1:
			hlen = 3
		}
		mlen := [4]int{11, 7, 3, 0}[fmtType]
		if err := c.ensure(hlen + mlen); err != nil {
			return nil, err
		}
		switch csid {
		case 0:
			csid = 64 + uint32(c.buf[c.rpos+1])
		case 1:
			csid = 64 + uint32(c.buf[c.rpos+1]) + uint32(c.buf[c.rpos+2])<<8
		}
		cs := c.stream(csid)
		h := c.buf[c.rpos+hlen : c.rpos+hlen+mlen]
		if fmtType != 3 && cs.inProgress {
			return nil, fmt.Errorf("chunk stream %d: type %d header inside an unfinished message", csid, fmtType)
		}
		if fmtType != 0 && !cs.seen {
			return nil, fmt.Errorf("chunk stream %d: type %d header without a previous type 0 header", csid, fmtType)
		}
		var tsField uint32
		switch fmtType {
		case 0:
			tsField = be24(h)
			cs.length = be24(h[3:])
			cs.msg.Type = h[6]
			cs.msg.StreamID = binary.LittleEndian.Uint32(h[7:])
			cs.seen = true
		case 1:
			tsField = be24(h)
			cs.length = be24(h[3:])
			cs.msg.Type = h[6]
		case 2:
			tsField = be24(h)
		}
		c.rpos += hlen + mlen
		if fmtType != 3 {
			cs.ext = tsField == 0xffffff
		}
		if cs.ext {
			// Type 3 chunks repeat the extended timestamp of the header
			// they continue (RTMP spec 5.3.1.3).
			if err := c.ensure(4); err != nil {
				return nil, err
			}
			ext := binary.BigEndian.Uint32(c.buf[c.rpos:])
			c.rpos += 4
			if fmtType != 3 {
				tsField = ext
			} else if !cs.inProgress {
				tsField = ext
			}
		}
		if !cs.inProgress {
			// A new message. For type 3 the delta of the previous header
			// applies; after a type 0 header that is its absolute
			// timestamp, as ffmpeg and librtmp read it.
			switch fmtType {
			case 0:
				cs.msg.Timestamp = tsField
				cs.delta = tsField
			case 1, 2:
				cs.delta = tsField
				cs.msg.Timestamp += tsField
			case 3:
				if cs.ext {
					cs.delta = tsField
				}
				cs.msg.Timestamp += cs.delta
			}
			if cap(cs.msg.Body) < int(cs.length) {
				cs.msg.Body = make([]byte, 0, cs.length)
			}
			cs.msg.Body = cs.msg.Body[:0]
			cs.inProgress = true
			c.partial++
		}
		need := int(min(cs.length-uint32(len(cs.msg.Body)), c.chunkSize))
		for need > 0 {
			if c.rpos == c.wpos {
				c.rpos, c.wpos = 0, 0
				if err := c.ensure(1); err != nil {
					if errors.Is(err, io.EOF) {
						err = io.ErrUnexpectedEOF
					}
					return nil, err
				}
			}
			n := min(need, c.wpos-c.rpos)
			cs.msg.Body = append(cs.msg.Body, c.buf[c.rpos:c.rpos+n]...)
			c.rpos += n
			need -= n
		}
		if uint32(len(cs.msg.Body)) < cs.length {
			continue
		}
		cs.inProgress = false
		c.partial--
		m := &cs.msg
		if m.StreamID == 0 && len(m.Body) >= 4 {
			switch m.Type {
			case msgSetChunkSize:
				v := binary.BigEndian.Uint32(m.Body) & 0x7fffffff
				if v == 0 || v > maxChunkSize {
					return nil, fmt.Errorf("invalid chunk size %d", v)
				}
				c.chunkSize = v
			case msgAbort:
				if a := binary.BigEndian.Uint32(m.Body); a != csid {
					if as := c.stream(a); as.inProgress {
						as.inProgress = false
						as.msg.Body = as.msg.Body[:0]
						c.partial--
					}
				}
			}
		}
		return m, nil
	}
}

// appendChunks appends one message split into chunks of chunkSize, the
// same way liveedge chunks what it sends.
func appendChunks(dst []byte, csid uint8, typ uint8, ts uint32, streamID uint32, body []byte, chunkSize int) []byte {
	return rtmp.AppendChunks(dst, csid, typ, ts, streamID, body, chunkSize)
}
