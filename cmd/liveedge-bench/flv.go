package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// flvKind plays HTTP-FLV: GET /<app>/<stream>.flv on the http listener, a
// chunked response that is one FLV file that never ends. The client
// decodes the chunked body with net/http and reads it tag by tag; video
// tag bodies are the same bytes as RTMP video message bodies and go
// through the same code (videoTag).
type flvKind struct{}

func (flvKind) name() string     { return "HTTP-FLV" }
func (flvKind) listener() string { return "http" }

// configExtra keeps the http listener's WebRTC port off the default one.
func (flvKind) configExtra() string { return loopbackWebRTC() }

const (
	flvSetupTimeout = 10 * time.Second // dial to response headers
	flvIdleTimeout  = 5 * time.Second  // no byte at all for this long ends the viewer
	flvReadBuf      = 16 << 10
)

func (flvKind) play(ctx context.Context, addr, stream string, v *viewer) error {
	d := net.Dialer{Timeout: flvSetupTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	v.mark("dial")
	nc.SetDeadline(time.Now().Add(flvSetupTimeout))

	path := "/" + stream + ".flv"
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: liveedge-bench\r\nAccept: */*\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	v.requests.Add(1)
	cc := &countConn{Conn: nc}
	br := bufio.NewReaderSize(cc, flvReadBuf)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, res.Status)
	}
	v.mark("response")

	// The read deadline is pushed forward at most every second.
	nc.SetDeadline(time.Time{})
	deadlineSet := time.Now()
	nc.SetReadDeadline(deadlineSet.Add(flvIdleTimeout))
	fr := newFLVReader(res.Body)
	if err := fr.readHeader(); err != nil {
		v.bytes.Store(cc.n)
		return err
	}
	v.mark("flv header")
	for {
		tag, err := fr.next()
		v.bytes.Store(cc.n)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("no data for %v", flvIdleTimeout)
			}
			return err
		}
		if tag.typ != flvTagVideo {
			continue
		}
		now := time.Now()
		if now.Sub(deadlineSet) > time.Second {
			deadlineSet = now
			nc.SetReadDeadline(now.Add(flvIdleTimeout))
		}
		videoTag(now, tag.body, v)
	}
}

// countConn counts the bytes read from a connection (read on one
// goroutine only).
type countConn struct {
	net.Conn
	n uint64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += uint64(n)
	return n, err
}

// videoTag reports one FLV video tag body (the same bytes as an RTMP video
// message body) to v: legacy AVC only, coded frames only.
func videoTag(now time.Time, body []byte, v *viewer) {
	if len(body) < 5 || body[0]&0x80 != 0 || body[0]&0x0f != 7 {
		return // not legacy AVC (enhanced RTMP is for H.265 and others)
	}
	if body[1] != 1 {
		return // sequence header or end of sequence
	}
	idr, pub, hasPub := avccInfo(body[5:])
	// A keyframe is flagged as one (frame type 1) and holds an IDR slice.
	v.frame(now, body[0]>>4 == 1 && idr, pub, hasPub)
}

// FLV layout (the file format, not the bench's RTMP chunking).
const (
	flvTagAudio  = 8
	flvTagVideo  = 9
	flvTagScript = 18

	flvFileHeaderSize = 9
	flvTagHeaderSize  = 11
	flvPrevSizeSize   = 4
	// flvMaxTag bounds a tag body; the format allows 16 MiB, a video
	// frame of the bench clip is a few tens of KiB.
	flvMaxTag = 4 << 20
)

// Errors of the FLV reader.
var (
	errFLVSignature = errors.New("flv: not an FLV stream")
	errFLVTagSize   = errors.New("flv: tag too large")
	errFLVPrevSize  = errors.New("flv: previous tag size does not match")
)

// flvTag is one tag; body is valid until the next call to next.
type flvTag struct {
	typ  byte
	ts   uint32 // ms, with the extended byte
	body []byte
}

// flvReader reads an FLV stream tag by tag, checking each
// PreviousTagSize against the tag before it.
type flvReader struct {
	r   io.Reader
	hdr [flvTagHeaderSize + flvPrevSizeSize]byte
	buf []byte
}

func newFLVReader(r io.Reader) *flvReader { return &flvReader{r: r} }

// readHeader reads the file header and PreviousTagSize0.
func (f *flvReader) readHeader() error {
	var h [flvFileHeaderSize]byte
	if _, err := io.ReadFull(f.r, h[:]); err != nil {
		return fmt.Errorf("flv header: %w", err)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return errFLVSignature
	}
	off := int(h[5])<<24 | int(h[6])<<16 | int(h[7])<<8 | int(h[8])
	if off < flvFileHeaderSize || off > 1024 {
		return fmt.Errorf("%w: header size %d", errFLVSignature, off)
	}
	// Skip what a longer header holds, then PreviousTagSize0.
	if _, err := io.CopyN(io.Discard, f.r, int64(off-flvFileHeaderSize+flvPrevSizeSize)); err != nil {
		return fmt.Errorf("flv header: %w", err)
	}
	return nil
}

// next reads one tag and the PreviousTagSize after it.
func (f *flvReader) next() (flvTag, error) {
	h := f.hdr[:flvTagHeaderSize]
	if _, err := io.ReadFull(f.r, h); err != nil {
		return flvTag{}, err
	}
	size := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if size > flvMaxTag {
		return flvTag{}, fmt.Errorf("%w: %d bytes", errFLVTagSize, size)
	}
	t := flvTag{typ: h[0] & 0x1f, ts: uint32(h[7])<<24 | uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6])}
	if cap(f.buf) < size {
		f.buf = make([]byte, size, max(size, 2*cap(f.buf)))
	}
	t.body = f.buf[:size]
	if _, err := io.ReadFull(f.r, t.body); err != nil {
		return flvTag{}, unexpectedEOF(err)
	}
	p := f.hdr[flvTagHeaderSize:]
	if _, err := io.ReadFull(f.r, p); err != nil {
		return flvTag{}, unexpectedEOF(err)
	}
	if prev := int(p[0])<<24 | int(p[1])<<16 | int(p[2])<<8 | int(p[3]); prev != flvTagHeaderSize+size {
		return flvTag{}, fmt.Errorf("%w: %d after a %d-byte tag", errFLVPrevSize, prev, flvTagHeaderSize+size)
	}
	return t, nil
}

// unexpectedEOF turns an EOF inside a tag into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
