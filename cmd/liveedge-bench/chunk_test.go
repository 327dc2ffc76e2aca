package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

func seq(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// chunkHeader builds a chunk basic header plus message header by hand.
func chunkHeader(fmtType byte, csid uint32, fields ...uint32) []byte {
	var b []byte
	switch {
	case csid < 64:
		b = append(b, fmtType<<6|byte(csid))
	case csid < 320:
		b = append(b, fmtType<<6, byte(csid-64))
	default:
		b = append(b, fmtType<<6|1, byte((csid-64)&0xff), byte((csid-64)>>8))
	}
	put24 := func(v uint32) { b = append(b, byte(v>>16), byte(v>>8), byte(v)) }
	switch fmtType {
	case 0: // ts, length, type, stream id
		put24(fields[0])
		put24(fields[1])
		b = append(b, byte(fields[2]))
		b = binary.LittleEndian.AppendUint32(b, fields[3])
	case 1: // delta, length, type
		put24(fields[0])
		put24(fields[1])
		b = append(b, byte(fields[2]))
	case 2: // delta
		put24(fields[0])
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// syntheticStream is a hand-made chunk stream covering the header types,
// an extended timestamp, a message split across chunks and interleaved
// with another chunk stream, 2- and 3-byte basic headers, Set Chunk Size
// and Abort.
func syntheticStream() ([]byte, []rtmpMessage) {
	var s []byte
	var want []rtmpMessage
	cat := func(parts ...[]byte) {
		for _, p := range parts {
			s = append(s, p...)
		}
	}

	// 1. Video, 300 bytes, extended timestamp 0x01234567, split into
	// 128+128+44 with type 3 chunks repeating the extended timestamp, and
	// an audio message on csid 4 interleaved between its chunks.
	video := seq(300, 1)
	audio := seq(20, 50)
	const ext = 0x01234567
	cat(chunkHeader(0, 6, 0xffffff, 300, msgVideo, 1), be32(ext), video[:128])
	cat(chunkHeader(0, 4, 1000, 20, msgAudio, 1), audio)
	cat(chunkHeader(3, 6), be32(ext), video[128:256])
	cat(chunkHeader(3, 6), be32(ext), video[256:])
	want = append(want,
		rtmpMessage{CSID: 4, Type: msgAudio, Timestamp: 1000, StreamID: 1, Body: audio},
		rtmpMessage{CSID: 6, Type: msgVideo, Timestamp: ext, StreamID: 1, Body: video})

	// 2. Type 1 (delta 40, new length), type 2 (delta 23), type 3 (new
	// message, same delta 23) on csid 4.
	a2, a3, a4 := seq(30, 9), seq(30, 10), seq(30, 11)
	cat(chunkHeader(1, 4, 40, 30, msgAudio), a2)
	cat(chunkHeader(2, 4, 23), a3)
	cat(chunkHeader(3, 4), a4)
	want = append(want,
		rtmpMessage{CSID: 4, Type: msgAudio, Timestamp: 1040, StreamID: 1, Body: a2},
		rtmpMessage{CSID: 4, Type: msgAudio, Timestamp: 1063, StreamID: 1, Body: a3},
		rtmpMessage{CSID: 4, Type: msgAudio, Timestamp: 1086, StreamID: 1, Body: a4})

	// 3. Set Chunk Size 4096 on csid 2, then a 1000-byte message in one
	// chunk on csid 100 (2-byte basic header).
	cat(chunkHeader(0, 2, 0, 4, msgSetChunkSize, 0), be32(4096))
	big := seq(1000, 77)
	cat(chunkHeader(0, 100, 5, 1000, msgDataAMF0, 1), big)
	want = append(want,
		rtmpMessage{CSID: 2, Type: msgSetChunkSize, Body: be32(4096)},
		rtmpMessage{CSID: 100, Type: msgDataAMF0, Timestamp: 5, StreamID: 1, Body: big})

	// 4. A message started on csid 400 (3-byte basic header) and aborted,
	// then a fresh one there.
	cat(chunkHeader(0, 400, 7, 5000, msgVideo, 1), seq(4096, 0))
	cat(chunkHeader(0, 2, 0, 4, msgAbort, 0), be32(400))
	fresh := seq(10, 3)
	cat(chunkHeader(0, 400, 8, 10, msgVideo, 1), fresh)
	want = append(want,
		rtmpMessage{CSID: 2, Type: msgAbort, Body: be32(400)},
		rtmpMessage{CSID: 400, Type: msgVideo, Timestamp: 8, StreamID: 1, Body: fresh})

	// 5. An empty message.
	cat(chunkHeader(0, 3, 9, 0, msgCommandAMF0, 0))
	want = append(want, rtmpMessage{CSID: 3, Type: msgCommandAMF0, Timestamp: 9, Body: []byte{}})
	return s, want
}

func readAll(t *testing.T, cr *chunkReader) []rtmpMessage {
	t.Helper()
	var got []rtmpMessage
	for {
		m, err := cr.ReadMessage()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		c := *m
		c.Body = append([]byte{}, m.Body...)
		got = append(got, c)
	}
}

func sameMessages(t *testing.T, got, want []rtmpMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.CSID != w.CSID || g.Type != w.Type || g.Timestamp != w.Timestamp || g.StreamID != w.StreamID || !bytes.Equal(g.Body, w.Body) {
			t.Errorf("message %d: got csid %d type %d ts %#x sid %d len %d, want csid %d type %d ts %#x sid %d len %d",
				i, g.CSID, g.Type, g.Timestamp, g.StreamID, len(g.Body), w.CSID, w.Type, w.Timestamp, w.StreamID, len(w.Body))
		}
	}
}

func TestChunkReaderSynthetic(t *testing.T) {
	stream, want := syntheticStream()
	for _, tc := range []struct {
		name string
		r    func() io.Reader
		buf  int
	}{
		{"whole", func() io.Reader { return bytes.NewReader(stream) }, 16 << 10},
		{"one byte reads", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }, 16 << 10},
		{"small buffer", func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := newChunkReader(tc.r(), tc.buf)
			sameMessages(t, readAll(t, cr), want)
			if cr.Received != uint64(len(stream)) {
				t.Errorf("Received %d, want %d", cr.Received, len(stream))
			}
			if cr.ChunkSize() != 4096 {
				t.Errorf("chunk size %d, want 4096", cr.ChunkSize())
			}
		})
	}
}

func TestChunkReaderTruncated(t *testing.T) {
	stream, _ := syntheticStream()
	for _, n := range []int{1, 5, 12, 13, 140, 144, 200} {
		cr := newChunkReader(bytes.NewReader(stream[:n]), 256)
		var err error
		for err == nil {
			_, err = cr.ReadMessage()
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: got %v, want unexpected EOF", n, err)
		}
	}
}

func TestChunkReaderErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"type 3 first":       chunkHeader(3, 5),
		"bad chunk size":     append(chunkHeader(0, 2, 0, 4, msgSetChunkSize, 0), be32(0)...),
		"header mid-message": append(append(chunkHeader(0, 6, 0, 200, msgVideo, 1), seq(128, 0)...), chunkHeader(0, 6, 0, 10, msgVideo, 1)...),
	} {
		cr := newChunkReader(bytes.NewReader(b), 256)
		if _, err := cr.ReadMessage(); err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: got %v, want a protocol error", name, err)
		}
	}
}

// TestChunkRoundTrip parses what appendChunks writes (commands at chunk
// size 128, and liveedge-style media at 65536) and what an independent
// writer (gortmplib's, which compresses headers to types 1-3) writes.
func TestChunkRoundTrip(t *testing.T) {
	var s []byte
	var want []rtmpMessage
	s = appendChunks(s, 3, msgCommandAMF0, 0, 0, seq(300, 1), 128)
	want = append(want, rtmpMessage{CSID: 3, Type: msgCommandAMF0, Body: seq(300, 1)})
	s = appendChunks(s, 6, msgVideo, 0x1000000, 1, seq(200, 2), 128) // extended
	want = append(want, rtmpMessage{CSID: 6, Type: msgVideo, Timestamp: 0x1000000, StreamID: 1, Body: seq(200, 2)})
	sameMessages(t, readAll(t, newChunkReader(bytes.NewReader(s), 1024)), want)

	var buf bytes.Buffer
	w := rawmessage.NewWriter(&buf, bytecounter.NewWriter(io.Discard), false)
	want = want[:0]
	add := func(csid byte, typ uint8, ts uint32, body []byte) {
		err := w.Write(&rawmessage.Message{ChunkStreamID: csid, Timestamp: time.Duration(ts) * time.Millisecond,
			Type: typ, MessageStreamID: 0x1000000, Body: body}) // gortmplib's byte order: stream 1
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rtmpMessage{CSID: uint32(csid), Type: typ, Timestamp: ts, StreamID: 1, Body: body})
	}
	for i := range 20 {
		add(6, msgVideo, uint32(i*40), seq(100+i*37, byte(i)))
		add(4, msgAudio, uint32(i*23), seq(30, byte(i))) // same size: types 2 and 3
	}
	add(6, msgVideo, 0xfffffe+5, seq(500, 9)) // extended timestamp, type 3 chunks repeat it
	add(6, msgVideo, 0xfffffe+45, seq(500, 10))
	sameMessages(t, readAll(t, newChunkReader(&buf, 512)), want)
}

func BenchmarkChunkReader(b *testing.B) {
	// liveedge-style media: one chunk per message at chunk size 65536.
	s := appendChunks(nil, 2, msgSetChunkSize, 0, 0, be32(65536), 128)
	for i := range 100 {
		s = appendChunks(s, 6, msgVideo, uint32(i*40), 1, seq(10000, byte(i)), 65536)
		s = appendChunks(s, 4, msgAudio, uint32(i*23), 1, seq(200, byte(i)), 65536)
	}
	r := bytes.NewReader(s)
	cr := newChunkReader(r, 16<<10)
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(s)
		cr.rpos, cr.wpos = 0, 0
		for {
			if _, err := cr.ReadMessage(); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

func TestAppendChunksSplit(t *testing.T) {
	b := appendChunks(nil, 3, msgCommandAMF0, 0, 0, make([]byte, 130), 128)
	// 12-byte type 0 header, 128 bytes, 1-byte type 3 header, 2 bytes.
	if len(b) != 12+128+1+2 || b[0] != 3 || b[12+128] != 0xc3 {
		t.Fatalf("got %d bytes, first %#x, continuation %#x", len(b), b[0], b[12+128])
	}
}
