package fanout

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/liveedge/liveedge/hub"
)

// testFormat writes a unit as its payload and headers as "[H]" ("[H+]" on
// a change), framed like an HTTP chunk when framed.
func testFormat(framed bool) *Format {
	f := &Format{
		Unit: func(u *hub.Unit) []byte { return u.Payload },
		Headers: func(prev, next *hub.Tracks) []byte {
			if prev == nil {
				return []byte("[H]")
			}
			return []byte("[H+]")
		},
	}
	if framed {
		f.Frame = func(n int) (pre, post []byte) { return fmt.Appendf(nil, "%x\r\n", n), []byte("\r\n") }
	}
	return f
}

func TestAppend(t *testing.T) {
	t1, t2 := &hub.Tracks{}, &hub.Tracks{}
	u := func(tr *hub.Tracks, s string) *hub.Unit { return &hub.Unit{Tracks: tr, Payload: []byte(s)} }
	for _, tc := range []struct {
		name   string
		framed bool
		cur    *hub.Tracks
		units  []*hub.Unit
		want   string
		tracks *hub.Tracks
	}{
		{"new player", false, nil, []*hub.Unit{u(t1, "ab"), u(t1, "c")}, "[H]abc", t1},
		{"same tracks", false, t1, []*hub.Unit{u(t1, "ab")}, "ab", t1},
		{"tracks change", false, t1, []*hub.Unit{u(t1, "a"), u(t2, "b")}, "a[H+]b", t2},
		{"framed", true, nil, []*hub.Unit{u(t1, "ab"), u(t1, "cdefghijklmn")}, "11\r\n[H]abcdefghijklmn\r\n", t1},
		{"empty batch", true, t1, nil, "", t1},
		{"empty units", true, t1, []*hub.Unit{u(t1, "")}, "", t1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := net.Buffers{[]byte("kept")}
			bufs, tracks, n := testFormat(tc.framed).Append(prefix, tc.cur, tc.units)
			got := bytes.Join(bufs[1:], nil)
			if string(bufs[0]) != "kept" || string(got) != tc.want || n != len(tc.want) || tracks != tc.tracks {
				t.Fatalf("Append = %q, %d bytes, tracks %p; want %q, %d, %p", got, n, tracks, tc.want, len(tc.want), tc.tracks)
			}
		})
	}
}

// A player handed back after n bytes writes exactly what is left.
func TestRemainder(t *testing.T) {
	bufs := net.Buffers{[]byte("5\r\n"), []byte("ab"), nil, []byte("cde"), []byte("\r\n")}
	all := string(bytes.Join(bufs, nil))
	for n := 0; n <= len(all); n++ {
		if got := string(bytes.Join(remainder(bufs, n), nil)); got != all[n:] {
			t.Errorf("remainder after %d = %q, want %q", n, got, all[n:])
		}
	}
}
