package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// rtmpKind plays with a minimal RTMP client: plain handshake, connect,
// createStream, play, then a chunk parser that keeps only video.
type rtmpKind struct{}

func (rtmpKind) name() string     { return "RTMP" }
func (rtmpKind) listener() string { return "rtmp" }

const (
	rtmpSetupTimeout = 10 * time.Second // handshake to play
	rtmpIdleTimeout  = 5 * time.Second  // no byte at all for this long ends the viewer
	rtmpReadBuf      = 16 << 10
	handshakeSize    = 1536
)

// c1 is the handshake's C1: time 0, zero version, then filler bytes. A
// plain (version 3, digest-less) handshake needs nothing more.
var c0c1 = func() []byte {
	b := make([]byte, 1+handshakeSize)
	b[0] = 3
	x := uint32(2463534242)
	for i := 9; i < len(b); i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}()

func (rtmpKind) play(ctx context.Context, addr, stream string, v *viewer) error {
	app, key, ok := strings.Cut(stream, "/")
	if !ok {
		return fmt.Errorf("stream %q is not app/name", stream)
	}
	d := net.Dialer{Timeout: rtmpSetupTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	v.mark("dial")
	return rtmpPlayConn(ctx, nc, addr, app, key, v)
}

// rtmpPlayConn plays app/key on a connected nc (addr is only for tcUrl).
func rtmpPlayConn(ctx context.Context, nc net.Conn, addr, app, key string, v *viewer) error {
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	nc.SetDeadline(time.Now().Add(rtmpSetupTimeout))

	// Handshake: C0+C1, then S0+S1+S2, then C2 = S1 (sent with connect).
	if _, err := nc.Write(c0c1); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	s := make([]byte, 1+2*handshakeSize)
	if _, err := io.ReadFull(nc, s); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if s[0] != 3 {
		return fmt.Errorf("handshake: server version %d", s[0])
	}
	v.mark("handshake")
	out := make([]byte, 0, 2048)
	out = append(out, s[1:1+handshakeSize]...) // C2

	tcURL := "rtmp://" + addr + "/" + app
	body, err := amf0.Data{"connect", float64(1), amf0.Object{
		{Key: "app", Value: app},
		{Key: "flashVer", Value: "LNX 9,0,124,2"},
		{Key: "tcUrl", Value: tcURL},
		{Key: "fpad", Value: false},
		{Key: "capabilities", Value: float64(15)},
		{Key: "audioCodecs", Value: float64(0x0fff)},
		{Key: "videoCodecs", Value: float64(0x00ff)},
		{Key: "videoFunction", Value: float64(1)},
		{Key: "objectEncoding", Value: float64(0)},
	}}.Marshal()
	if err != nil {
		return err
	}
	out = appendChunks(out, 3, msgCommandAMF0, 0, 0, body, defaultChunkSize)
	if _, err := nc.Write(out); err != nil {
		return fmt.Errorf("connect: %w", err)
	}

	cr := newChunkReader(nc, rtmpReadBuf)
	var ackWindow uint32
	var lastAck uint64
	// ack sends an Acknowledgement when the server's window is exceeded.
	// liveedge does not wait for them (its player write loop never reads
	// them), but real players send them, so the bench does too.
	ack := func() error {
		if ackWindow == 0 || cr.Received-lastAck < uint64(ackWindow) {
			return nil
		}
		lastAck = cr.Received
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(cr.Received))
		_, err := nc.Write(appendChunks(out[:0], 2, msgAck, 0, 0, b[:], defaultChunkSize))
		return err
	}
	// command waits for the result of transaction txn.
	command := func(txn float64) (amf0.Data, error) {
		for {
			m, err := cr.ReadMessage()
			if err != nil {
				return nil, err
			}
			switch m.Type {
			case msgWindowAckSize:
				if len(m.Body) >= 4 {
					ackWindow = binary.BigEndian.Uint32(m.Body)
				}
			case msgCommandAMF0:
				d, err := amf0.Unmarshal(m.Body)
				if err != nil || len(d) < 2 {
					continue
				}
				if id, _ := d[1].(float64); id == txn {
					return d, nil
				}
			}
		}
	}

	res, err := command(1)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if name, _ := res[0].(string); name != "_result" {
		return fmt.Errorf("connect refused: %v", res)
	}
	v.mark("connect")
	body, _ = amf0.Data{"createStream", float64(2), nil}.Marshal()
	if _, err := nc.Write(appendChunks(out[:0], 3, msgCommandAMF0, 0, 0, body, defaultChunkSize)); err != nil {
		return fmt.Errorf("createStream: %w", err)
	}
	res, err = command(2)
	if err != nil {
		return fmt.Errorf("createStream: %w", err)
	}
	var streamID float64
	if len(res) >= 4 {
		streamID, _ = res[3].(float64)
	}
	if name, _ := res[0].(string); name != "_result" || streamID <= 0 {
		return fmt.Errorf("createStream refused: %v", res)
	}
	v.mark("createStream")
	body, _ = amf0.Data{"play", float64(3), nil, key}.Marshal()
	if _, err := nc.Write(appendChunks(out[:0], 8, msgCommandAMF0, 0, uint32(streamID), body, defaultChunkSize)); err != nil {
		return fmt.Errorf("play: %w", err)
	}

	// Media. The read deadline is pushed forward at most every second, not
	// on every read.
	nc.SetDeadline(time.Time{})
	deadlineSet := time.Now()
	nc.SetReadDeadline(deadlineSet.Add(rtmpIdleTimeout))
	for {
		m, err := cr.ReadMessage()
		v.bytes.Store(cr.Received + uint64(len(s)))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("no data for %v", rtmpIdleTimeout)
			}
			return err
		}
		switch m.Type {
		case msgVideo:
			now := time.Now()
			if now.Sub(deadlineSet) > time.Second {
				deadlineSet = now
				nc.SetReadDeadline(now.Add(rtmpIdleTimeout))
			}
			videoTag(now, m.Body, v) // an RTMP video message body is an FLV video tag body
		case msgWindowAckSize:
			if len(m.Body) >= 4 {
				ackWindow = binary.BigEndian.Uint32(m.Body)
			}
		case msgCommandAMF0:
			code, err := rtmpStatus(m.Body)
			if err != nil {
				return err
			}
			if code == "NetStream.Play.Start" {
				v.mark("play")
			}
		}
		if err := ack(); err != nil {
			return err
		}
	}
}

// rtmpStatus returns the code of an onStatus command, and an error for
// one of level "error" or a stream end.
func rtmpStatus(body []byte) (string, error) {
	d, err := amf0.Unmarshal(body)
	if err != nil || len(d) < 4 {
		return "", nil
	}
	if name, _ := d[0].(string); name != "onStatus" {
		return "", nil
	}
	obj, ok := d[3].(amf0.Object)
	if !ok {
		return "", nil
	}
	level, _ := obj.GetString("level")
	code, _ := obj.GetString("code")
	if level == "error" || code == "NetStream.Play.Stop" || code == "NetStream.Play.UnpublishNotify" {
		return code, fmt.Errorf("server: %s %s", level, code)
	}
	return code, nil
}
