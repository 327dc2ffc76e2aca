package rtsp

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestOutConnRequestDeadline: before PLAY, a request must arrive whole
// within the idle bound. One trickled a byte at a time times out although
// every read gets data; whole requests, however slowly they follow each
// other within the bound, do not; once playing, nothing times out.
func TestOutConnRequestDeadline(t *testing.T) {
	const idle = 300 * time.Millisecond
	cases := []struct {
		name    string
		chunks  []string
		every   time.Duration
		playing bool
		timeout bool
	}{
		{"trickled request", []string{"O", "P", "T", "I", "O", "N", "S", " ", "r", "t", "s", "p"}, 60 * time.Millisecond, false, true},
		{"whole requests", []string{"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", "OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n",
			"OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n", "OPTIONS * RTSP/1.0\r\nCSeq: 4\r\n\r\n"}, 200 * time.Millisecond, false, false},
		{"request in pieces, in time", []string{"OPTIONS * RTSP/1.0\r\n", "CSeq: 1\r\n", "\r\n", "OPTIONS * RTSP/1.0\n\n"},
			80 * time.Millisecond, false, false},
		{"playing", []string{"$", "x", "y"}, 200 * time.Millisecond, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			c := &outConn{Conn: a, idle: idle}
			c.playing.Store(tc.playing)
			go func() {
				for _, s := range tc.chunks {
					time.Sleep(tc.every)
					if _, err := b.Write([]byte(s)); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 256)
			got := 0
			want := 0
			for _, s := range tc.chunks {
				want += len(s)
			}
			for got < want {
				n, err := c.Read(buf)
				got += n
				if err != nil {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatal(err)
					}
					if !tc.timeout {
						t.Fatalf("timed out after %d of %d bytes", got, want)
					}
					return
				}
			}
			if tc.timeout {
				t.Fatalf("read all %d bytes without timing out", got)
			}
		})
	}
}
