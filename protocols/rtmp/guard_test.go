package rtmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// plainHandshake is what a client sends before its chunk stream (C0 = 3).
func plainHandshake() []byte {
	b := make([]byte, handshakeIn)
	b[0] = 3
	return b
}

// feedAll feeds b to g in pieces of random sizes.
func feedAll(g *chunkGuard, b []byte, rnd *rand.Rand) error {
	for len(b) > 0 {
		n := min(len(b), 1+rnd.Intn(700))
		if err := g.feed(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// TestChunkGuardFollowsWriter: a stream written by gortmplib (type 0-3
// headers, extended timestamps, chunk size changes, messages of every
// size up to gortmplib's maximum) passes the guard, which ends with
// nothing held, and gortmplib's reader reads it back.
func TestChunkGuardFollowsWriter(t *testing.T) {
	var buf bytes.Buffer
	bcw := bytecounter.NewWriter(&buf)
	w := rawmessage.NewWriter(bcw, bcw, false)
	rnd := rand.New(rand.NewSource(1))
	var msgs []*rawmessage.Message
	write := func(m *rawmessage.Message) {
		t.Helper()
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	setChunkSize := func(v uint32) {
		write(&rawmessage.Message{ChunkStreamID: 2, Type: 1, Body: binary.BigEndian.AppendUint32(nil, v)})
		w.SetChunkSize(v)
	}
	ts := time.Duration(0)
	for i, size := range []int{0, 1, 127, 128, 129, 1000, 4096, 65536, 100000} {
		for _, cs := range []uint32{128, 4096, 60000} {
			if i%2 == 0 {
				setChunkSize(cs)
			}
			for csid := byte(3); csid <= 6; csid++ {
				body := make([]byte, size)
				rnd.Read(body)
				ts += time.Duration(rnd.Intn(50)) * time.Millisecond
				if i == 5 {
					ts += 0x1000000 * time.Millisecond // extended timestamps from here on
				}
				write(&rawmessage.Message{ChunkStreamID: csid, Timestamp: ts, Type: 9, MessageStreamID: 1, Body: body})
			}
		}
	}
	setChunkSize(maxMessage)
	write(&rawmessage.Message{ChunkStreamID: 6, Timestamp: ts, Type: 9, MessageStreamID: 1,
		Body: make([]byte, maxMessage)})

	stream := append(plainHandshake(), buf.Bytes()...)
	g := newChunkGuard(nil, budgetMedia)
	if err := feedAll(g, stream, rnd); err != nil {
		t.Fatal(err)
	}
	if g.off || g.pending != 0 || g.hdrLen != 0 || g.body != 0 {
		t.Fatalf("guard state at the end: off %v pending %d header %d body %d", g.off, g.pending, g.hdrLen, g.body)
	}
	if g.chunkSize != maxMessage {
		t.Fatalf("chunk size %d, want %d", g.chunkSize, maxMessage)
	}

	// The same bytes are what gortmplib reads.
	r := rawmessage.NewReader(bytes.NewReader(buf.Bytes()), bytecounter.NewReader(bytes.NewReader(nil)),
		func(uint32) error { return nil })
	for i, want := range msgs {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got.Type == 1 {
			r.SetChunkSize(binary.BigEndian.Uint32(got.Body))
		}
		if got.ChunkStreamID != want.ChunkStreamID || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("message %d differs", i)
		}
	}
}

func header0(csid byte, length uint32, typ byte) []byte {
	return []byte{csid, 0, 0, 0, byte(length >> 16), byte(length >> 8), byte(length), typ, 1, 0, 0, 0}
}

func TestChunkGuardBudget(t *testing.T) {
	setCS := func(v uint32) []byte {
		return binary.BigEndian.AppendUint32(header0(2, 4, 1), v)
	}
	cases := []struct {
		name   string
		budget int64
		stream func() []byte
		err    bool
	}{
		{"interleaved messages within budget", 1000, func() []byte {
			var b []byte
			b = append(append(b, header0(3, 300, 9)...), make([]byte, 128)...)
			b = append(append(b, header0(4, 200, 8)...), make([]byte, 128)...)
			b = append(append(b, 0xc3), make([]byte, 128)...)
			b = append(append(b, 0xc4), make([]byte, 72)...)
			b = append(append(b, 0xc3), make([]byte, 44)...)
			return b
		}, false},
		{"message over the maximum", budgetMedia, func() []byte {
			return header0(3, maxMessage+1, 9)
		}, true},
		{"chunk allocated before its bytes", budgetConnect, func() []byte {
			return append(setCS(maxMessage), header0(3, maxMessage, 20)...)
		}, true},
		{"1 MiB on each of 61 chunk streams", budgetMedia, func() []byte {
			b := setCS(65536)
			for k := range 16 {
				for csid := byte(3); csid <= 63; csid++ {
					if k == 0 {
						b = append(b, header0(csid, maxMessage, 9)...)
					} else {
						b = append(b, 0xc0|csid)
					}
					b = append(b, make([]byte, 65536)...)
				}
			}
			return b
		}, true},
		{"abort frees a stream", 200, func() []byte {
			var b []byte
			b = append(append(b, header0(3, 1000, 9)...), make([]byte, 128)...)
			b = append(b, header0(2, 4, 2)...)
			b = binary.BigEndian.AppendUint32(b, 3)
			b = append(append(b, header0(4, 1000, 9)...), make([]byte, 128)...)
			return b
		}, false},
		{"no abort", 200, func() []byte {
			var b []byte
			b = append(append(b, header0(3, 1000, 9)...), make([]byte, 128)...)
			b = append(append(b, header0(4, 1000, 9)...), make([]byte, 128)...)
			return b
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newChunkGuard(nil, tc.budget)
			err := feedAll(g, append(plainHandshake(), tc.stream()...), rand.New(rand.NewSource(2)))
			if tc.err != (err != nil) || err != nil && !errors.Is(err, ErrChunkBudget) {
				t.Fatalf("err = %v, want an ErrChunkBudget: %v", err, tc.err)
			}
		})
	}
}

// TestChunkGuardEncrypted: an RTMPE handshake (C0 = 6 or 8) is refused,
// other garbage is left to gortmplib (which refuses it).
func TestChunkGuardEncrypted(t *testing.T) {
	for _, c0 := range []byte{6, 8} {
		g := newChunkGuard(nil, 10)
		b := make([]byte, 5000)
		b[0] = c0
		if err := g.feed(b); !errors.Is(err, ErrEncrypted) {
			t.Fatalf("C0 %d: err %v, want ErrEncrypted", c0, err)
		}
	}
	g := newChunkGuard(nil, 10)
	b := make([]byte, 5000)
	b[0] = 0x47
	if err := g.feed(b); err != nil || !g.off {
		t.Fatalf("C0 0x47: err %v, off %v", err, g.off)
	}
}

// FuzzChunkGuard: any client byte stream, split at any point, neither
// panics the guard nor lets it account for more than its budget without
// failing the read.
func FuzzChunkGuard(f *testing.F) {
	f.Add([]byte{}, uint8(7))
	f.Add(append(header0(3, 100, 20), make([]byte, 100)...), uint8(1))
	f.Add(append(header0(2, 4, 1), 0x00, 0xff, 0xff, 0xff), uint8(3))                // Set Chunk Size 16 MiB
	f.Add(append(header0(4, 0xffffff, 9), 0xc4, 0x01, 0x02, 0x03, 0x04), uint8(200)) // huge message, type 3 follow-up
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		const budget = 64 << 10
		g := newChunkGuard(nil, budget)
		b := append(plainHandshake(), data...)
		n := int(step)%97 + 1
		for len(b) > 0 {
			k := min(n, len(b))
			if err := g.feed(b[:k]); err != nil {
				if !errors.Is(err, ErrChunkBudget) && err.Error() == "" {
					t.Fatalf("empty error")
				}
				return
			}
			if g.pending > budget {
				t.Fatalf("guard holds %d bytes, over its budget %d, without failing", g.pending, budget)
			}
			b = b[k:]
		}
	})
}
