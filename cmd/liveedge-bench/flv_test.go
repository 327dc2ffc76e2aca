package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// flvFile is an FLV file header with PreviousTagSize0.
func flvFile() []byte {
	return []byte{'F', 'L', 'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0}
}

// appendFLVTag appends a tag and its PreviousTagSize (prev, when not 0,
// replaces the correct value).
func appendFLVTag(b []byte, typ byte, ts uint32, body []byte, prev uint32) []byte {
	n := len(body)
	b = append(b, typ, byte(n>>16), byte(n>>8), byte(n), byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
	b = append(b, body...)
	if prev == 0 {
		prev = uint32(flvTagHeaderSize + n)
	}
	return binary.BigEndian.AppendUint32(b, prev)
}

// avcBody is an FLV video tag body: legacy AVC, coded frames, the NAL
// units with 4-byte lengths.
func avcBody(key bool, nalus ...[]byte) []byte {
	ft := byte(2)
	if key {
		ft = 1
	}
	b := []byte{ft<<4 | 7, 1, 0, 0, 0}
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

var (
	testIDR = []byte{0x65, 0x88, 0x84, 0x21}
	testP   = []byte{0x41, 0x9a, 0x02}
)

func TestFLVReader(t *testing.T) {
	type tag struct {
		typ  byte
		ts   uint32
		size int
	}
	longHeader := []byte{'F', 'L', 'V', 1, 0x01, 0, 0, 0, 12, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0}
	tests := []struct {
		name    string
		in      []byte
		want    []tag
		wantErr error // after the tags; io.EOF for a clean end
		hdrErr  error
	}{
		{
			name: "tags of each type",
			in: appendFLVTag(appendFLVTag(appendFLVTag(flvFile(),
				flvTagScript, 0, []byte{2, 0, 10}, 0),
				flvTagVideo, 40, avcBody(true, testIDR), 0),
				flvTagAudio, 0x01020304, []byte{0xaf, 1, 0x21}, 0),
			want:    []tag{{flvTagScript, 0, 3}, {flvTagVideo, 40, 13}, {flvTagAudio, 0x01020304, 3}},
			wantErr: io.EOF,
		},
		{
			name:    "empty body",
			in:      appendFLVTag(flvFile(), flvTagVideo, 1, nil, 0),
			want:    []tag{{flvTagVideo, 1, 0}},
			wantErr: io.EOF,
		},
		{
			name:    "longer file header",
			in:      appendFLVTag(longHeader, flvTagVideo, 7, []byte{0x17, 0}, 0),
			want:    []tag{{flvTagVideo, 7, 2}},
			wantErr: io.EOF,
		},
		{
			name:   "not FLV",
			in:     []byte("HTTP/1.1 200 OK\r\n\r\n"),
			hdrErr: errFLVSignature,
		},
		{
			name:   "short header",
			in:     []byte{'F', 'L', 'V', 1},
			hdrErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "truncated body",
			in:      appendFLVTag(flvFile(), flvTagVideo, 0, make([]byte, 100), 0)[:13+11+50],
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "truncated previous tag size",
			in:      appendFLVTag(flvFile(), flvTagVideo, 0, []byte{1, 2}, 0)[:13+11+2+1],
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "wrong previous tag size",
			in:      appendFLVTag(flvFile(), flvTagVideo, 0, []byte{1, 2}, 99),
			wantErr: errFLVPrevSize,
		},
		{
			name:    "tag too large",
			in:      append(flvFile(), flvTagVideo, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0),
			wantErr: errFLVTagSize,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newFLVReader(bytes.NewReader(tc.in))
			err := r.readHeader()
			if tc.hdrErr != nil {
				if !errors.Is(err, tc.hdrErr) {
					t.Fatalf("readHeader: %v, want %v", err, tc.hdrErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readHeader: %v", err)
			}
			var got []tag
			for {
				tg, err := r.next()
				if err != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("after %d tags: %v, want %v", len(got), err, tc.wantErr)
					}
					break
				}
				got = append(got, tag{tg.typ, tg.ts, len(tg.body)})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("tags %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("tag %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestVideoTag(t *testing.T) {
	const pub = 1_700_000_000_000_000_000
	sei := appendSEI(nil, pub)
	tests := []struct {
		name           string
		body           []byte
		frames         int
		key, hasPub    bool
		wantNoSEIFrame bool
	}{
		{"keyframe with SEI", avcBody(true, sei, testIDR), 1, true, true, false},
		{"inter frame with SEI", avcBody(false, sei, testP), 1, false, true, false},
		{"flagged key without IDR", avcBody(true, sei, testP), 1, false, true, false},
		{"IDR not flagged key", avcBody(false, testIDR), 1, false, false, true},
		{"sequence header", []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1f}, 0, false, false, false},
		{"enhanced RTMP", []byte{0x91, 'h', 'v', 'c', '1', 0, 0, 0}, 0, false, false, false},
		{"not AVC", []byte{0x12, 1, 0, 0, 0}, 0, false, false, false},
		{"short", []byte{0x17, 1}, 0, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec atomic.Bool
			rec.Store(true)
			v := newViewer(&rec, 4)
			v.start = time.Unix(0, pub).Add(-latencyAfterJoin)
			videoTag(time.Unix(0, pub).Add(2*time.Millisecond), tc.body, v)
			if v.frames != tc.frames {
				t.Fatalf("frames %d, want %d", v.frames, tc.frames)
			}
			if tc.frames == 0 {
				return
			}
			if v.firstKey != tc.key {
				t.Errorf("key %v, want %v", v.firstKey, tc.key)
			}
			if got := len(v.latency) == 1; got != tc.hasPub {
				t.Fatalf("latency samples %v, want one: %v", v.latency, tc.hasPub)
			}
			if tc.hasPub && v.latency[0] != 2000 {
				t.Errorf("latency %dµs, want 2000", v.latency[0])
			}
			if (v.noSEI == 1) != tc.wantNoSEIFrame {
				t.Errorf("noSEI %d", v.noSEI)
			}
		})
	}
}

// TestFLVPlay plays from an HTTP server that streams a chunked FLV: the
// sequence header, a keyframe and an inter frame, each with the SEI.
func TestFLVPlay(t *testing.T) {
	sent := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/live/test.flv" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "video/x-flv")
		b := appendFLVTag(flvFile(), flvTagVideo, 0, []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1f}, 0)
		b = appendFLVTag(b, flvTagVideo, 0, avcBody(true, appendSEI(nil, time.Now().UnixNano()), testIDR), 0)
		w.Write(b)
		w.(http.Flusher).Flush() // a chunk boundary inside the stream
		w.Write(appendFLVTag(nil, flvTagAudio, 20, []byte{0xaf, 1, 0}, 0))
		w.Write(appendFLVTag(nil, flvTagVideo, 40, avcBody(false, appendSEI(nil, time.Now().UnixNano()), testP), 0))
		w.(http.Flusher).Flush()
		close(sent)
		<-r.Context().Done()
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := newViewer(new(atomic.Bool), 0)
	go v.run(ctx, flvKind{}, addr, "live/test")
	<-sent
	for deadline := time.Now().Add(5 * time.Second); v.bytes.Load() < 50 || !v.gotFirst.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("no frame within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the inter frame
	cancel()
	<-v.done
	if v.err != nil {
		t.Fatalf("play: %v", v.err)
	}
	if v.frames != 2 || !v.keyFirst() || v.noSEI != 0 || v.requests.Load() != 1 {
		t.Fatalf("frames %d, key-first %v, no SEI %d, requests %d", v.frames, v.keyFirst(), v.noSEI, v.requests.Load())
	}

	// A 404 ends the viewer with the status.
	v = newViewer(new(atomic.Bool), 0)
	v.run(context.Background(), flvKind{}, addr, "live/missing")
	if v.err == nil || !strings.Contains(v.err.Error(), "404") {
		t.Fatalf("missing stream: %v", v.err)
	}
}
