package hub_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/demo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const name = "live/test"

var loadClip = sync.OnceValues(demo.Default)

// clip returns the demo clip and its frames from the first video keyframe
// on, so that every frame written to a fresh producer is accepted.
func clip(t testing.TB) (*demo.Clip, []demo.Frame) {
	t.Helper()
	c, err := loadClip()
	if err != nil {
		t.Fatalf("demo clip: %v", err)
	}
	for i, f := range c.Frames {
		if f.Video && hub.IsKeyframe(hub.CodecH264, f.NALUs) {
			return c, c.Frames[i:]
		}
	}
	t.Fatal("demo clip has no keyframe")
	return nil, nil
}

func isKey(f demo.Frame) bool { return f.Video && hub.IsKeyframe(hub.CodecH264, f.NALUs) }

// lastKey returns the index of the last keyframe in frames[:n].
func lastKey(frames []demo.Frame, n int) int {
	for i := n - 1; i >= 0; i-- {
		if isKey(frames[i]) {
			return i
		}
	}
	return -1
}

// nextKey returns the index of the first keyframe at or after i.
func nextKey(frames []demo.Frame, i int) int {
	for ; i < len(frames); i++ {
		if isKey(frames[i]) {
			return i
		}
	}
	return -1
}

func newHub(t testing.TB, p hub.Params) *hub.Hub {
	t.Helper()
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	h := hub.New(p)
	t.Cleanup(h.Close)
	return h
}

// publish starts a producer with the clip's tracks.
func publish(t testing.TB, h *hub.Hub) *hub.Producer {
	t.Helper()
	c, _ := clip(t)
	p, err := h.Publish(name, hub.Session{Protocol: "test", Remote: "producer"})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := p.SetTracks(c.Video, c.Audio); err != nil {
		t.Fatalf("SetTracks: %v", err)
	}
	return p
}

func write(p *hub.Producer, f demo.Frame, shift time.Duration) error {
	if f.Video {
		return p.WriteVideo(f.PTS+shift, f.DTS+shift, f.NALUs)
	}
	return p.WriteAudio(f.DTS+shift, f.Payload)
}

func writeAll(t testing.TB, p *hub.Producer, frames []demo.Frame, shift time.Duration) {
	t.Helper()
	for i, f := range frames {
		if err := write(p, f, shift); err != nil {
			t.Fatalf("write frame %d: %v", i, err)
		}
	}
}

// sameFrame reports whether u carries exactly f's data (the hub keeps the
// buffers it is handed, so pointer identity holds).
func sameFrame(u *hub.Unit, f demo.Frame) bool {
	if u.Video != f.Video {
		return false
	}
	if f.Video {
		return len(u.NALUs) == len(f.NALUs) && &u.NALUs[0][0] == &f.NALUs[0][0]
	}
	return len(u.Payload) == len(f.Payload) && &u.Payload[0] == &f.Payload[0]
}

func checkFrames(t testing.TB, got []*hub.Unit, want []demo.Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d units, want %d", len(got), len(want))
	}
	for i := range got {
		if !sameFrame(got[i], want[i]) {
			t.Fatalf("unit %d (video=%v dts=%v) is not frame (video=%v dts=%v)", i, got[i].Video, got[i].DTS, want[i].Video, want[i].DTS)
		}
	}
}

func subscribe(t testing.TB, h *hub.Hub, proto string) *hub.Subscriber {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := h.Subscribe(ctx, name, hub.Session{Protocol: proto, Remote: "viewer"})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// readAvailable returns every unit the subscriber can read without
// waiting. The producers in these tests write synchronously, so this is
// everything written so far.
func readAvailable(t testing.TB, sub *hub.Subscriber) []*hub.Unit {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out []*hub.Unit
	buf := make([]*hub.Unit, 0, 16)
	for {
		us, err := sub.Next(ctx, buf)
		if errors.Is(err, context.Canceled) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if len(us) == 0 {
			t.Fatal("Next returned no units and no error")
		}
		out = append(out, us...)
	}
}

// readN reads exactly n units, waiting for them.
func readN(sub *hub.Subscriber, n int, timeout time.Duration) ([]*hub.Unit, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*hub.Unit
	for len(out) < n {
		us, err := sub.Next(ctx, make([]*hub.Unit, 0, n-len(out)))
		if err != nil {
			return out, err
		}
		out = append(out, us...)
	}
	return out, nil
}

// checkMonotonic checks that DTS strictly increases per track.
func checkMonotonic(t testing.TB, units []*hub.Unit) {
	t.Helper()
	var last [2]time.Duration
	var have [2]bool
	for i, u := range units {
		k := 0
		if u.Video {
			k = 1
		}
		if u.PTS < u.DTS {
			t.Fatalf("unit %d: PTS %v < DTS %v", i, u.PTS, u.DTS)
		}
		if have[k] && u.DTS <= last[k] {
			t.Fatalf("unit %d (video=%v): DTS %v after %v", i, u.Video, u.DTS, last[k])
		}
		last[k], have[k] = u.DTS, true
	}
}

// waitFor polls cond until it holds; only for states that have no event.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"live/demo", true},
		{"a/b", true},
		{"live/cam-1_hd.v2", true},
		{"live/caméra", true},
		{"live/" + strings.Repeat("x", 251), true}, // 256 bytes
		{"live/" + strings.Repeat("x", 252), false},
		{"", false},
		{"live", false},
		{"/demo", false},
		{"live/", false},
		{"/", false},
		{"live/a/b", false},
		{"live//b", false},
		{"live/de mo", false},
		{"live/de\tmo", false},
		{"live/de\nmo", false},
		{"live/a\x00", false},
		{"live/a\x7f", false},
		{"live/a?token=x", false},
		{"live/a#frag", false},
		{`live\demo`, false},
		{`live/a\b`, false},
		{"live/..", false},
		{"../etc", false},
		{"live/a..b", false},
	}
	for _, tc := range tests {
		if got := hub.ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestInvalidNameRefused(t *testing.T) {
	h := newHub(t, hub.Params{StartTimeout: 50 * time.Millisecond})
	if _, err := h.Publish("nope", hub.Session{}); !errors.Is(err, hub.ErrInvalidName) {
		t.Errorf("Publish: %v, want ErrInvalidName", err)
	}
	if _, err := h.Subscribe(context.Background(), "a/b/c", hub.Session{}); !errors.Is(err, hub.ErrInvalidName) {
		t.Errorf("Subscribe: %v, want ErrInvalidName", err)
	}
	if s := h.Streams(); len(s) != 0 {
		t.Errorf("streams left behind: %+v", s)
	}
}

// A viewer's first unit is the cached keyframe, delivered at once, and
// every unit after it follows in order.
func TestSubscribeFirstUnitIsKey(t *testing.T) {
	_, frames := clip(t)
	tests := []struct {
		name   string
		before int // frames written before the viewer subscribes; -1: before Publish
	}{
		{"beforePublish", -1},
		{"beforeFirstFrame", 0},
		{"afterKey", 1},
		{"midFirstGOP", 40},
		{"lastOfFirstGOP", nextKey(frames, 1)},
		{"onSecondKey", nextKey(frames, 1) + 1},
		{"midThirdGOP", nextKey(frames, nextKey(frames, 1)+1) + 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, hub.Params{GOP: cacheLimitsLongLag()})
			var sub *hub.Subscriber
			var p *hub.Producer
			if tc.before < 0 {
				type res struct {
					sub *hub.Subscriber
					err error
				}
				ch := make(chan res, 1)
				go func() {
					s, err := h.Subscribe(context.Background(), name, hub.Session{Protocol: "early"})
					ch <- res{s, err}
				}()
				// The waiting viewer creates the stream; no event says so.
				waitFor(t, "the waiting viewer", func() bool { _, ok := h.Stream(name); return ok })
				select {
				case r := <-ch:
					t.Fatalf("Subscribe returned before the stream started: %v", r.err)
				default:
				}
				p = publish(t, h)
				r := <-ch
				if r.err != nil {
					t.Fatalf("Subscribe: %v", r.err)
				}
				sub = r.sub
				t.Cleanup(sub.Close)
				tc.before = 0
			} else {
				p = publish(t, h)
				writeAll(t, p, frames[:tc.before], 0)
				sub = subscribe(t, h, "late")
			}
			// Immediately: the cached GOP, without waiting for a new key.
			got := readAvailable(t, sub)
			start := max(lastKey(frames, tc.before), 0)
			checkFrames(t, got, frames[start:tc.before])
			if len(got) > 0 && !(got[0].Key && got[0].Video) {
				t.Fatalf("first unit: key=%v video=%v", got[0].Key, got[0].Video)
			}
			// Then every following unit, in order.
			writeAll(t, p, frames[tc.before:], 0)
			got = append(got, readAvailable(t, sub)...)
			checkFrames(t, got, frames[start:])
			if !(got[0].Key && got[0].Video) {
				t.Fatalf("first unit: key=%v video=%v", got[0].Key, got[0].Video)
			}
			checkMonotonic(t, got)
			// The first producer's timeline starts at its first unit.
			for i, u := range got {
				if want := frames[start+i].DTS - frames[0].DTS; u.DTS != want {
					t.Fatalf("unit %d: DTS %v, want %v", i, u.DTS, want)
				}
			}
			if sub.Dropped() != 0 || sub.Skips() != 0 {
				t.Fatalf("dropped %d, skips %d", sub.Dropped(), sub.Skips())
			}
		})
	}
}

// cacheLimitsLongLag keeps a minute of media: viewers in these tests read
// after the producer wrote, and must not lag.
func cacheLimitsLongLag() cache.Limits { return cache.Limits{MaxLag: time.Minute} }

// Units written before the first keyframe are dropped by the producer.
func TestUnitsBeforeFirstKeyDropped(t *testing.T) {
	_, frames := clip(t)
	h := newHub(t, hub.Params{GOP: cacheLimitsLongLag()})
	p := publish(t, h)
	sub := subscribe(t, h, "test")
	first := nextKey(frames, 1) // start in the middle of a GOP
	writeAll(t, p, frames[first-20:], 0)
	got := readAvailable(t, sub)
	checkFrames(t, got, frames[first:])
	if got[0].DTS != 0 {
		t.Fatalf("the stream starts at %v, want 0", got[0].DTS)
	}
}

// With a GOP bigger than the cache bound, a new viewer waits for the next
// keyframe instead of starting mid-GOP.
func TestOversizedGOPViewerWaitsForKey(t *testing.T) {
	_, frames := clip(t)
	gop := cacheLimitsLongLag()
	gop.MaxFrames = 20 // the clip's GOPs are about 72 units
	h := newHub(t, hub.Params{GOP: gop})
	p := publish(t, h)
	writeAll(t, p, frames[:40], 0)
	if in, _ := h.Stream(name); in.GOP.GOPValid {
		t.Fatalf("GOP of 40 units valid with MaxFrames 20: %+v", in.GOP)
	}
	sub := subscribe(t, h, "test")
	if got := readAvailable(t, sub); len(got) != 0 {
		t.Fatalf("viewer got %d units before any keyframe", len(got))
	}
	// MaxFrames also sizes the ring (capacity 64 here): stay within it.
	k := nextKey(frames, 40)
	writeAll(t, p, frames[40:k+10], 0)
	got := readAvailable(t, sub)
	checkFrames(t, got, frames[k:k+10])
	if sub.Skips() != 0 {
		t.Fatalf("viewer skipped %d times", sub.Skips())
	}
}

func TestAudioOnlyStream(t *testing.T) {
	c, frames := clip(t)
	h := newHub(t, hub.Params{GOP: cacheLimitsLongLag()})
	p, err := h.Publish(name, hub.Session{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTracks(nil, c.Audio); err != nil {
		t.Fatal(err)
	}
	var audio []demo.Frame
	for _, f := range frames {
		if !f.Video {
			audio = append(audio, f)
		}
	}
	writeAll(t, p, audio[:10], 0)
	sub := subscribe(t, h, "test")
	got := readAvailable(t, sub)
	// Every audio unit is a starting point: the GOP is the newest one.
	checkFrames(t, got, audio[9:10])
	if !got[0].Key {
		t.Fatal("audio unit of an audio-only stream is not a key")
	}
	if err := p.WriteVideo(0, 0, frames[0].NALUs); err == nil {
		t.Fatal("WriteVideo without a video track succeeded")
	}
}

// Timestamps stay monotonic per track across producer changes and jumps,
// and the first unit after a change of producer or a discontinuity is a
// video keyframe.
func TestTimestampsMonotonic(t *testing.T) {
	_, frames := clip(t)
	const n1 = 100
	type scenario struct {
		name     string
		conflict hub.ConflictPolicy
		// change runs between the batches and returns the second batch's
		// producer.
		change func(t *testing.T, h *hub.Hub, p *hub.Producer) *hub.Producer
		from2  int           // first frame of the second batch
		shift2 time.Duration // its timestamp shift
		reset  bool          // the second batch starts at its first keyframe
		maxGap time.Duration // bound on the per-track DTS step at the change
	}
	same := func(t *testing.T, h *hub.Hub, p *hub.Producer) *hub.Producer { return p }
	restart := func(t *testing.T, h *hub.Hub, p *hub.Producer) *hub.Producer {
		p.Close()
		select {
		case <-p.Done():
		default:
			t.Fatal("Done not closed after Close")
		}
		if err := write(p, frames[0], 0); !errors.Is(err, hub.ErrReplaced) {
			t.Fatalf("write after Close: %v, want ErrReplaced", err)
		}
		return publish(t, h)
	}
	takeover := func(t *testing.T, h *hub.Hub, old *hub.Producer) *hub.Producer {
		p := publish(t, h)
		if !closed(old.Done()) {
			t.Fatal("old producer's Done not closed on takeover")
		}
		c, _ := clip(t)
		for _, err := range []error{
			write(old, frames[0], 0), write(old, frames[1], 0),
			old.SetTracks(c.Video, c.Audio),
		} {
			if !errors.Is(err, hub.ErrReplaced) {
				t.Fatalf("old producer: %v, want ErrReplaced", err)
			}
		}
		old.Discontinuity() // no effect on the new producer
		old.Close()         // must not detach the new producer
		if in, ok := h.Stream(name); !ok || in.Producer == nil || in.Producers != 2 {
			t.Fatalf("after the old producer's Close: %+v %v", in, ok)
		}
		return p
	}
	discontinuity := func(t *testing.T, h *hub.Hub, p *hub.Producer) *hub.Producer {
		p.Discontinuity()
		return p
	}
	const gap = 100 * time.Millisecond
	tests := []scenario{
		{name: "restartAtZero", change: restart, reset: true, maxGap: gap},
		{name: "restartContinuing", change: restart, from2: n1, reset: true, maxGap: gap},
		{name: "restartFarAhead", change: restart, shift2: 10 * time.Hour, reset: true, maxGap: gap},
		{name: "takeoverAtZero", conflict: hub.ConflictTakeover, change: takeover, reset: true, maxGap: gap},
		{name: "takeoverMidGOP", conflict: hub.ConflictTakeover, change: takeover, from2: 30, shift2: time.Minute, reset: true, maxGap: gap},
		{name: "backwardJump", change: same, maxGap: gap},
		{name: "smallBackwardJump", change: same, from2: n1 - 10, maxGap: gap},
		{name: "forwardJump", change: same, from2: n1, shift2: time.Hour, maxGap: gap},
		{name: "discontinuityBack", change: discontinuity, from2: 30, reset: true, maxGap: gap},
		{name: "discontinuityForward", change: discontinuity, from2: n1, shift2: 5 * time.Hour, reset: true, maxGap: gap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, hub.Params{GOP: cacheLimitsLongLag(), Conflict: tc.conflict})
			p := publish(t, h)
			sub := subscribe(t, h, "main")
			writeAll(t, p, frames[:n1], 0)
			p2 := tc.change(t, h, p)
			// A viewer joining now starts on the second batch's keyframe
			// when the GOP was reset, else on the cached one.
			late := subscribe(t, h, "late")
			batch := frames[tc.from2 : tc.from2+n1]
			for i, f := range batch {
				if err := write(p2, f, tc.shift2); err != nil {
					t.Fatalf("batch 2 frame %d: %v", i, err)
				}
			}
			want := slices.Clone(frames[:n1])
			if tc.reset {
				batch = batch[nextKey(batch, 0):]
			}
			want = append(want, batch...)
			got := readAvailable(t, sub)
			checkFrames(t, got, want)
			checkMonotonic(t, got)
			after := got[n1:]
			if tc.reset && !(after[0].Key && after[0].Video) {
				t.Fatalf("first unit after the change: key=%v video=%v", after[0].Key, after[0].Video)
			}
			// No big jump at the change, on either track.
			for _, video := range []bool{false, true} {
				i := slices.IndexFunc(after, func(u *hub.Unit) bool { return u.Video == video })
				var prev *hub.Unit
				for _, u := range got[:n1] {
					if u.Video == video {
						prev = u
					}
				}
				if d := after[i].DTS - prev.DTS; d <= 0 || d > tc.maxGap {
					t.Errorf("video=%v: DTS step %v at the change (%v -> %v)", video, d, prev.DTS, after[i].DTS)
				}
			}
			// One offset for both tracks: the change keeps A/V sync. (A
			// small backward jump is absorbed by nudging units forward.)
			if tc.name != "smallBackwardJump" {
				off := after[0].DTS - (batch[0].DTS + tc.shift2)
				for i, u := range after {
					if d := u.DTS - (batch[i].DTS + tc.shift2); d != off {
						t.Fatalf("unit %d after the change (video=%v): offset %v, want %v", i, u.Video, d, off)
					}
				}
			}
			lateGot := readAvailable(t, late)
			if len(lateGot) == 0 || !(lateGot[0].Key && lateGot[0].Video) {
				t.Fatalf("late viewer's first unit is not a video key")
			}
			if tc.reset && lateGot[0] != after[0] {
				t.Fatalf("late viewer starts at DTS %v, want the new producer's first key at %v", lateGot[0].DTS, after[0].DTS)
			}
			if k := slices.Index(got, lateGot[0]); k < 0 || !slices.Equal(got[k:], lateGot) {
				t.Fatal("late viewer's units are not a suffix of the main viewer's")
			}
			if sub.Dropped() != 0 || late.Dropped() != 0 {
				t.Fatalf("dropped %d / %d", sub.Dropped(), late.Dropped())
			}
		})
	}
}

func TestConflictRefuse(t *testing.T) {
	_, frames := clip(t)
	h := newHub(t, hub.Params{GOP: cacheLimitsLongLag()})
	p1 := publish(t, h)
	sub := subscribe(t, h, "test")
	for range 3 {
		if p, err := h.Publish(name, hub.Session{Remote: "second"}); !errors.Is(err, hub.ErrStreamBusy) || p != nil {
			t.Fatalf("second Publish: %v, %v; want ErrStreamBusy", p, err)
		}
	}
	if closed(p1.Done()) {
		t.Fatal("first producer told to stop by a refused publisher")
	}
	writeAll(t, p1, frames[:10], 0)
	checkFrames(t, readAvailable(t, sub), frames[:10])
	if in, _ := h.Stream(name); in.Producer == nil || in.Producer.Remote != "producer" || in.Producers != 1 {
		t.Fatalf("stream info after refusal: %+v", in)
	}
	// Once the first one leaves, the name is free again.
	p1.Close()
	p2, err := h.Publish(name, hub.Session{Remote: "third"})
	if err != nil {
		t.Fatalf("Publish after Close: %v", err)
	}
	p2.Close()
}

// Another stream name is not busy.
func TestStreamsIndependent(t *testing.T) {
	h := newHub(t, hub.Params{})
	p1, err := h.Publish("live/a", hub.Session{Protocol: "rtmp"})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := h.Publish("live/b", hub.Session{Protocol: "rtmp"})
	if err != nil {
		t.Fatal(err)
	}
	got := h.Streams()
	if len(got) != 2 || got[0].Name != "live/a" || got[1].Name != "live/b" {
		t.Fatalf("Streams: %+v", got)
	}
	p1.Close()
	p2.Close()
	if got := h.Streams(); len(got) != 0 {
		t.Fatalf("streams left after both producers closed: %+v", got)
	}
}

type fakeSourcer struct {
	mu    sync.Mutex
	wants []string
}

func (f *fakeSourcer) Want(name string) {
	f.mu.Lock()
	f.wants = append(f.wants, name)
	f.mu.Unlock()
}

func TestSubscribeNoProducer(t *testing.T) {
	const timeout = 50 * time.Millisecond
	src := &fakeSourcer{}
	h := newHub(t, hub.Params{StartTimeout: timeout, Sourcer: src})
	t0 := time.Now()
	sub, err := h.Subscribe(context.Background(), name, hub.Session{})
	if !errors.Is(err, hub.ErrNotFound) || sub != nil {
		t.Fatalf("Subscribe: %v, %v; want ErrNotFound", sub, err)
	}
	if d := time.Since(t0); d < timeout {
		t.Fatalf("gave up after %v, before StartTimeout %v", d, timeout)
	}
	if s := h.Streams(); len(s) != 0 {
		t.Fatalf("streams left behind: %+v", s)
	}
	src.mu.Lock()
	wants := slices.Clone(src.wants)
	src.mu.Unlock()
	if !slices.Equal(wants, []string{name}) {
		t.Fatalf("Sourcer.Want calls: %q", wants)
	}

	// A cancelled context ends the wait early, also without leftovers.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Subscribe(ctx, name, hub.Session{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with cancelled ctx: %v", err)
	}
	if s := h.Streams(); len(s) != 0 {
		t.Fatalf("streams left behind: %+v", s)
	}

	// A producer that never sets its tracks: the viewer times out, the
	// stream stays while the producer does.
	p, err := h.Publish(name, hub.Session{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(context.Background(), name, hub.Session{}); !errors.Is(err, hub.ErrNotFound) {
		t.Fatalf("Subscribe without tracks: %v, want ErrNotFound", err)
	}
	if s := h.Streams(); len(s) != 1 || len(s[0].Viewers) != 0 {
		t.Fatalf("Streams: %+v", s)
	}
	p.Close()
	if s := h.Streams(); len(s) != 0 {
		t.Fatalf("streams left behind: %+v", s)
	}
}

// A viewer that does not read while the producer writes never blocks the
// producer, and when it reads again it skips to the newest keyframe. A
// viewer that keeps up is not affected.
func TestSlowViewerSkips(t *testing.T) {
	c, frames := clip(t)
	h := newHub(t, hub.Params{GOP: hubLimits(2 * time.Second)})
	p := publish(t, h)
	slow := subscribe(t, h, "slow")
	fast := subscribe(t, h, "fast")

	// Three loops of the clip, 30 s of media, written as fast as possible
	// in chunks; the fast viewer reads after each chunk, the slow one not
	// at all.
	const chunk = 50
	var all []demo.Frame
	for range 3 {
		all = append(all, frames...)
	}
	var fastGot []*hub.Unit
	for i := 0; i < len(all); i += chunk {
		end := min(i+chunk, len(all))
		wrote := make(chan error, 1)
		go func() {
			for j := i; j < end; j++ {
				if err := write(p, all[j], time.Duration(j/len(frames))*c.Duration); err != nil {
					wrote <- err
					return
				}
			}
			wrote <- nil
		}()
		select {
		case err := <-wrote:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("producer blocked writing units %d..%d", i, end)
		}
		fastGot = append(fastGot, readAvailable(t, fast)...)
	}
	checkFrames(t, fastGot, all)
	if fast.Skips() != 0 || fast.Dropped() != 0 {
		t.Fatalf("fast viewer: skips %d, dropped %d", fast.Skips(), fast.Dropped())
	}
	checkMonotonic(t, fastGot)

	got := readAvailable(t, slow)
	if len(got) == 0 || !(got[0].Key && got[0].Video) {
		t.Fatalf("slow viewer's first unit after falling behind is not a video key")
	}
	k := lastKey(all, len(all))
	checkFrames(t, got, all[k:])
	if slow.Skips() != 1 || slow.Dropped() != uint64(k) {
		t.Fatalf("Skips=%d Dropped=%d, want 1 and %d", slow.Skips(), slow.Dropped(), k)
	}
	// It reads the same units as the fast viewer from there on.
	if !slices.Equal(got, fastGot[k:]) {
		t.Fatal("slow viewer's units differ from the fast viewer's")
	}
}

func hubLimits(maxLag time.Duration) cache.Limits { return cache.Limits{MaxLag: maxLag} }

// A viewer that keeps lagging for longer than SlowViewerTimeout is cut
// off; one that caught up in between is not.
func TestSlowViewerTimeout(t *testing.T) {
	c, frames := clip(t)
	const timeout = 50 * time.Millisecond
	tests := []struct {
		name    string
		catchUp bool
		wantErr error
	}{
		{"staysBehind", false, hub.ErrSlowViewer},
		{"caughtUp", true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, hub.Params{GOP: hubLimits(500 * time.Millisecond), SlowViewerTimeout: timeout})
			p := publish(t, h)
			sub := subscribe(t, h, "test")
			writeAll(t, p, frames[:300], 0)
			// Read a single unit: the viewer skips to the newest key.
			got, err := sub.Next(context.Background(), make([]*hub.Unit, 0, 1))
			if err != nil || len(got) != 1 || !got[0].Key || sub.Skips() != 1 {
				t.Fatalf("first Next: %d units, %v, skips %d", len(got), err, sub.Skips())
			}
			if tc.catchUp {
				readAvailable(t, sub)
			}
			// The timeout is wall-clock time: let it pass.
			time.Sleep(2 * timeout)
			writeAll(t, p, frames[300:], 0)
			writeAll(t, p, frames, c.Duration)
			us, err := sub.Next(context.Background(), nil)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Next after lagging again: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (len(us) == 0 || !us[0].Key || sub.Skips() != 2) {
				t.Fatalf("second skip: %d units, skips %d", len(us), sub.Skips())
			}
		})
	}
}

// An in-band SPS/PPS that differs from the current configuration makes a
// new Tracks; re-sending the same one does not.
func TestCodecConfigChange(t *testing.T) {
	c, frames := clip(t)
	sps2 := slices.Clone(c.Video.SPS)
	sps2[3] = 0x28 // level 4.0 instead of 3.1: same picture, new config
	pps2 := slices.Clone(c.Video.PPS)
	pps2 = append(pps2, 0x00) // trailing byte: different bytes
	key := frames[0]
	if !isKey(key) {
		t.Fatal("frames[0] is not a key")
	}
	withParams := func(f demo.Frame, ps ...[]byte) demo.Frame {
		f.NALUs = append(slices.Clone(ps), f.NALUs...)
		return f
	}
	tests := []struct {
		name    string
		frame   demo.Frame
		changed bool
		sps     []byte
		pps     []byte
	}{
		{"noParams", key, false, c.Video.SPS, c.Video.PPS},
		{"sameSPSPPS", withParams(key, c.Video.SPS, c.Video.PPS), false, c.Video.SPS, c.Video.PPS},
		{"sameSPSOnly", withParams(key, c.Video.SPS), false, c.Video.SPS, c.Video.PPS},
		{"newSPS", withParams(key, sps2, c.Video.PPS), true, sps2, c.Video.PPS},
		{"newSPSAlone", withParams(key, sps2), true, sps2, c.Video.PPS},
		{"newPPSAlone", withParams(key, pps2), true, c.Video.SPS, pps2},
		{"invalidSPS", withParams(key, []byte{0x67, 0xff}), false, c.Video.SPS, c.Video.PPS},
		{"paramsOnNonKey", withParams(frames[nextKey(frames, 0)+3], sps2, c.Video.PPS), true, sps2, c.Video.PPS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			h := newHub(t, hub.Params{GOP: cacheLimitsLongLag(),
				Logger: slog.New(slog.NewTextHandler(logs, nil))})
			p := publish(t, h)
			sub := subscribe(t, h, "test")
			writeAll(t, p, frames[:20], 0)
			before := sub.Tracks()
			defer func() {
				bad := strings.Contains(logs.String(), "in-band parameter sets do not parse")
				if bad != (tc.name == "invalidSPS") {
					t.Errorf("warning about unparsable parameter sets logged: %v; log:\n%s", bad, logs.String())
				}
			}()
			// Keep the timeline going: the changed unit and 10 more.
			shift := frames[20].DTS - tc.frame.DTS
			if err := write(p, tc.frame, shift); err != nil {
				t.Fatal(err)
			}
			writeAll(t, p, frames[21:30], 0)
			after := sub.Tracks()
			got := readAvailable(t, sub)
			if len(got) != 30 {
				t.Fatalf("got %d units, want 30", len(got))
			}
			for i, u := range got[:20] {
				if u.Tracks != before {
					t.Fatalf("unit %d before the change points to another Tracks", i)
				}
			}
			for i, u := range got[20:] {
				if u.Tracks != after {
					t.Fatalf("unit %d after the change does not point to the current Tracks", 20+i)
				}
			}
			if (before != after) != tc.changed {
				t.Fatalf("Tracks changed=%v, want %v", before != after, tc.changed)
			}
			if string(after.Video.SPS) != string(tc.sps) || string(after.Video.PPS) != string(tc.pps) {
				t.Fatalf("current SPS/PPS % x / % x, want % x / % x", after.Video.SPS, after.Video.PPS, tc.sps, tc.pps)
			}
			if after.Audio != before.Audio {
				t.Fatal("video config change replaced the audio track")
			}
			// Start is the stream time at which the change took effect:
			// not after the first unit that carries it.
			if tc.changed && after.Start > got[20].DTS {
				t.Fatalf("Tracks.Start %v after the first unit under it (%v)", after.Start, got[20].DTS)
			}
			if in, _ := h.Stream(name); in.Video != after.Video {
				t.Fatal("StreamInfo.Video is not the current track")
			}
			// Re-sending the (now current) configuration changes nothing,
			// neither in-band nor through SetTracks with equal tracks.
			if err := write(p, withParams(frames[30], after.Video.SPS, after.Video.PPS), 0); err != nil {
				t.Fatal(err)
			}
			same := *after.Video
			if err := p.SetTracks(&same, c.Audio); err != nil {
				t.Fatal(err)
			}
			if sub.Tracks() != after {
				t.Fatal("re-sent configuration made a new Tracks")
			}
		})
	}
}

// SetTracks with a new configuration makes a new Tracks for the units after it.
func TestSetTracksChange(t *testing.T) {
	c, frames := clip(t)
	h := newHub(t, hub.Params{GOP: cacheLimitsLongLag()})
	p := publish(t, h)
	sub := subscribe(t, h, "test")
	writeAll(t, p, frames[:10], 0)
	before := sub.Tracks()
	opus := hub.NewOpusTrack(2)
	if err := p.SetTracks(c.Video, opus); err != nil {
		t.Fatal(err)
	}
	after := sub.Tracks()
	if after == before || after.Audio.Codec != hub.CodecOpus || after.Video != c.Video {
		t.Fatalf("tracks after SetTracks: %+v", after)
	}
	writeAll(t, p, frames[10:20], 0)
	got := readAvailable(t, sub)
	for i, u := range got {
		if want := map[bool]*hub.Tracks{true: before, false: after}[i < 10]; u.Tracks != want {
			t.Fatalf("unit %d points to the wrong Tracks", i)
		}
	}
}

func TestSetTracksErrors(t *testing.T) {
	c, _ := clip(t)
	tests := []struct {
		name         string
		video, audio *hub.Track
		want         error
	}{
		{"none", nil, nil, hub.ErrNoTracks},
		{"audioAsVideo", c.Audio, nil, hub.ErrUnsupportedCodec},
		{"opusAsVideo", hub.NewOpusTrack(2), c.Audio, hub.ErrUnsupportedCodec},
		{"videoAsAudio", c.Video, c.Video, hub.ErrUnsupportedCodec},
		{"unknownVideo", &hub.Track{Codec: 42}, nil, hub.ErrUnsupportedCodec},
		{"unknownAudio", nil, &hub.Track{Codec: 0}, hub.ErrUnsupportedCodec},
		{"videoOnly", c.Video, nil, nil},
		{"audioOnly", nil, c.Audio, nil},
		{"both", c.Video, c.Audio, nil},
		{"opus", c.Video, hub.NewOpusTrack(1), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, hub.Params{StartTimeout: 50 * time.Millisecond})
			p, err := h.Publish(name, hub.Session{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			err = p.SetTracks(tc.video, tc.audio)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("SetTracks: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("SetTracks: %v, want %v", err, tc.want)
			}
			// A refused configuration does not start the stream.
			if in, _ := h.Stream(name); in.Video != nil || in.Audio != nil {
				t.Fatalf("refused tracks were applied: %+v", in)
			}
		})
	}
}

func TestWriteBeforeTracks(t *testing.T) {
	_, frames := clip(t)
	h := newHub(t, hub.Params{})
	p, err := h.Publish(name, hub.Session{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.WriteVideo(0, 0, frames[0].NALUs); err == nil {
		t.Error("WriteVideo before SetTracks succeeded")
	}
	if err := p.WriteAudio(0, []byte{1}); err == nil {
		t.Error("WriteAudio before SetTracks succeeded")
	}
}

// Hub.Close ends viewers (after they drain what they were sent), producers
// and viewers still waiting for the stream to start.
func TestHubClose(t *testing.T) {
	_, frames := clip(t)
	h := hub.New(hub.Params{Logger: slog.New(slog.DiscardHandler), GOP: cacheLimitsLongLag(), StartTimeout: time.Minute})
	p := publish(t, h)
	blocked := subscribe(t, h, "blocked")
	behind := subscribe(t, h, "behind")
	writeAll(t, p, frames[:10], 0)
	readAvailable(t, blocked)
	blockedErr := make(chan error, 1)
	go func() {
		_, err := blocked.Next(context.Background(), nil)
		blockedErr <- err
	}()
	// A viewer of another stream, waiting for it to start.
	waitingErr := make(chan error, 1)
	go func() {
		_, err := h.Subscribe(context.Background(), "live/other", hub.Session{})
		waitingErr <- err
	}()
	waitFor(t, "the waiting viewer", func() bool { _, ok := h.Stream("live/other"); return ok })

	h.Close()

	if !closed(p.Done()) {
		t.Fatal("producer's Done not closed by Hub.Close")
	}
	select {
	case err := <-blockedErr:
		if !errors.Is(err, hub.ErrStreamEnded) {
			t.Fatalf("blocked viewer: %v, want ErrStreamEnded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked viewer not woken by Hub.Close")
	}
	// The viewer that is behind drains first.
	got, err := readN(behind, 10, 5*time.Second)
	if err != nil {
		t.Fatalf("draining: %v", err)
	}
	checkFrames(t, got, frames[:10])
	if _, err := behind.Next(context.Background(), nil); !errors.Is(err, hub.ErrStreamEnded) {
		t.Fatalf("drained viewer: %v, want ErrStreamEnded", err)
	}
	select {
	case err := <-waitingErr:
		if err == nil {
			t.Fatal("waiting viewer subscribed to a closed hub")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("viewer waiting for a stream not released by Hub.Close")
	}

	if s := h.Streams(); len(s) != 0 {
		t.Fatalf("streams after Close: %+v", s)
	}
	if _, err := h.Publish(name, hub.Session{}); !errors.Is(err, hub.ErrHubClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := h.Subscribe(context.Background(), name, hub.Session{}); !errors.Is(err, hub.ErrHubClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	// Closing everything again is harmless.
	p.Close()
	blocked.Close()
	behind.Close()
	h.Close()
}

// Subscriber.Close wakes a blocked Next; the last one out removes the stream.
func TestSubscriberClose(t *testing.T) {
	h := newHub(t, hub.Params{})
	p := publish(t, h)
	a := subscribe(t, h, "rtmp")
	b := subscribe(t, h, "rtmp")
	c := subscribe(t, h, "hls")
	in, _ := h.Stream(name)
	if in.Viewers["rtmp"] != 2 || in.Viewers["hls"] != 1 {
		t.Fatalf("viewers: %v", in.Viewers)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := a.Next(context.Background(), nil)
		errc <- err
	}()
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, hub.ErrStreamEnded) {
			t.Fatalf("Next after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Next")
	}
	a.Close() // idempotent
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Next(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with a deadline: %v", err)
	}
	in, _ = h.Stream(name)
	if in.Viewers["rtmp"] != 1 || in.Viewers["hls"] != 1 {
		t.Fatalf("viewers: %v", in.Viewers)
	}
	p.Close()
	b.Close()
	c.Close()
	if s := h.Streams(); len(s) != 0 {
		t.Fatalf("streams left: %+v", s)
	}
}

// A producer that leaves keeps its viewers for ProducerGrace; a new one
// within it continues the stream, none within it ends the stream.
func TestProducerGrace(t *testing.T) {
	_, frames := clip(t)
	h := newHub(t, hub.Params{GOP: cacheLimitsLongLag(), ProducerGrace: 50 * time.Millisecond})
	p := publish(t, h)
	sub := subscribe(t, h, "test")
	writeAll(t, p, frames[:10], 0)
	p.Close()
	got, err := readN(sub, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkFrames(t, got, frames[:10])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Next(ctx, nil); !errors.Is(err, hub.ErrStreamEnded) {
		t.Fatalf("after the grace period: %v, want ErrStreamEnded", err)
	}
	waitFor(t, "the stream's removal", func() bool { return len(h.Streams()) == 0 })
}

type fakeAuth struct {
	mu   sync.Mutex
	reqs []auth.Request
	deny map[string]error
}

var errDenied = errors.New("fake: token expired (secret detail)")

func (f *fakeAuth) Check(r auth.Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	return f.deny[r.Action.String()+" "+r.Stream]
}

func TestAdmit(t *testing.T) {
	fa := &fakeAuth{deny: map[string]error{
		"publish live/a": errDenied,
		"play live/b":    errDenied,
	}}
	h := newHub(t, hub.Params{Authorizer: fa})
	tests := []struct {
		action auth.Action
		stream string
		ok     bool
	}{
		{auth.Publish, "live/a", false},
		{auth.Play, "live/a", true},
		{auth.Publish, "live/b", true},
		{auth.Play, "live/b", false},
		{auth.Play, "live/c", true},
	}
	for _, tc := range tests {
		q := map[string][]string{"token": {"x"}}
		err := h.Admit(auth.Request{Action: tc.action, Stream: tc.stream, Query: q}, hub.Session{Protocol: "rtmp"})
		if tc.ok && err != nil {
			t.Errorf("%v %s: %v", tc.action, tc.stream, err)
		}
		if !tc.ok && (!errors.Is(err, hub.ErrUnauthorized) || errors.Is(err, errDenied)) {
			t.Errorf("%v %s: %v, want ErrUnauthorized without the reason", tc.action, tc.stream, err)
		}
	}
	fa.mu.Lock()
	n := len(fa.reqs)
	last := fa.reqs[n-1]
	fa.mu.Unlock()
	if n != len(tests) || last.Stream != "live/c" || last.Query.Get("token") != "x" {
		t.Fatalf("authorizer saw %d requests, last %+v", n, last)
	}

	// A real policy, swapped in for a reload.
	secret := []byte("s3cret")
	h.SetAuthorizer(&auth.Policy{Default: auth.AppPolicy{Secret: secret, Play: true}})
	if err := h.Admit(auth.Request{Action: auth.Play, Stream: "live/x"}, hub.Session{}); !errors.Is(err, hub.ErrUnauthorized) {
		t.Fatalf("play without token: %v", err)
	}
	q := auth.Signer{Secret: secret}.Query("live/x", time.Minute, time.Now(), netip.Addr{})
	if err := h.Admit(auth.Request{Action: auth.Play, Stream: "live/x", Query: q}, hub.Session{}); err != nil {
		t.Fatalf("play with a signed token: %v", err)
	}
	if err := h.Admit(auth.Request{Action: auth.Publish, Stream: "live/x"}, hub.Session{}); err != nil {
		t.Fatalf("publish (no token required): %v", err)
	}
	h.SetAuthorizer(nil)
	if err := h.Admit(auth.Request{Action: auth.Play, Stream: "live/x"}, hub.Session{}); err != nil {
		t.Fatalf("no authorizer: %v", err)
	}
}

// Many viewers join at random points while the producer writes: every one
// starts on a video keyframe and sees consecutive frames with monotonic
// timestamps.
func TestConcurrentViewers(t *testing.T) {
	c, frames := clip(t)
	h := newHub(t, hub.Params{GOP: cacheLimitsLongLag()})
	p := publish(t, h)
	index := map[*byte]int{}
	for i, f := range frames {
		if f.Video {
			index[&f.NALUs[0][0]] = i
		} else {
			index[&f.Payload[0]] = i
		}
	}
	idx := func(u *hub.Unit) int {
		if u.Video {
			return index[&u.NALUs[0][0]]
		}
		return index[&u.Payload[0]]
	}
	const loops = 3
	const viewers = 16
	total := loops * len(frames)
	var wg, joined sync.WaitGroup
	errs := make(chan error, viewers)
	viewer := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sub, err := h.Subscribe(ctx, name, hub.Session{Protocol: "test"})
		joined.Done()
		if err != nil {
			errs <- err
			return
		}
		defer sub.Close()
		var got []*hub.Unit
		buf := make([]*hub.Unit, 0, 32)
		for {
			us, err := sub.Next(ctx, buf)
			if errors.Is(err, hub.ErrStreamEnded) {
				break
			}
			if err != nil {
				errs <- err
				return
			}
			got = append(got, us...)
		}
		if len(got) == 0 {
			errs <- errors.New("viewer got nothing")
			return
		}
		if !(got[0].Key && got[0].Video) {
			errs <- errors.New("first unit is not a video key")
			return
		}
		for i := 1; i < len(got); i++ {
			if idx(got[i]) != (idx(got[i-1])+1)%len(frames) {
				errs <- fmt.Errorf("unit %d: frame %d after %d", i, idx(got[i]), idx(got[i-1]))
				return
			}
		}
		if sub.Skips() != 0 {
			errs <- fmt.Errorf("viewer skipped %d times", sub.Skips())
			return
		}
		var last [2]time.Duration
		var have [2]bool
		for i, u := range got {
			k := 0
			if u.Video {
				k = 1
			}
			if have[k] && u.DTS <= last[k] {
				errs <- fmt.Errorf("unit %d: DTS %v after %v", i, u.DTS, last[k])
				return
			}
			last[k], have[k] = u.DTS, true
		}
		errs <- nil
	}
	n := 0
	for i := range total {
		if i%(total/viewers) == 5 && n < viewers {
			joined.Add(1)
			wg.Go(viewer)
			n++
		}
		if err := write(p, frames[i%len(frames)], time.Duration(i/len(frames))*c.Duration); err != nil {
			t.Fatal(err)
		}
	}
	joined.Wait() // every viewer joined before the end
	h.Close()
	wg.Wait()
	close(errs)
	if n != viewers {
		t.Fatalf("started %d viewers, want %d", n, viewers)
	}
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// Producers taking over, leaving and coming back while viewers join and
// leave, on two names: no race, no panic, every viewer starts on a video
// keyframe, and nothing is left once everyone has gone.
func TestChurn(t *testing.T) {
	c, frames := clip(t)
	h := newHub(t, hub.Params{
		GOP:               cacheLimitsLongLag(),
		Conflict:          hub.ConflictTakeover,
		StartTimeout:      20 * time.Millisecond,
		ProducerGrace:     5 * time.Millisecond,
		SlowViewerTimeout: 5 * time.Millisecond,
	})
	names := []string{"live/a", "live/b"}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for i := range 4 {
		wg.Go(func() {
			for j := range 20 {
				p, err := h.Publish(names[(i+j)%2], hub.Session{Protocol: "churn"})
				if err != nil {
					report(fmt.Errorf("Publish: %w", err))
					return
				}
				err = p.SetTracks(c.Video, c.Audio)
				for k := 0; err == nil && k < 30; k++ {
					err = write(p, frames[k], 0)
				}
				if err != nil && !errors.Is(err, hub.ErrReplaced) {
					report(fmt.Errorf("producer: %w", err))
				}
				p.Close()
			}
		})
	}
	for i := range 8 {
		wg.Go(func() {
			for j := range 30 {
				sub, err := h.Subscribe(context.Background(), names[(i+j)%2], hub.Session{Protocol: "churn"})
				if errors.Is(err, hub.ErrNotFound) || errors.Is(err, hub.ErrStreamEnded) {
					continue
				}
				if err != nil {
					report(fmt.Errorf("Subscribe: %w", err))
					return
				}
				first := true
				for range 5 {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
					us, err := sub.Next(ctx, nil)
					cancel()
					if err != nil {
						if errors.Is(err, context.DeadlineExceeded) {
							continue
						}
						if !errors.Is(err, hub.ErrStreamEnded) && !errors.Is(err, hub.ErrSlowViewer) {
							report(fmt.Errorf("Next: %w", err))
						}
						break
					}
					if first && !(us[0].Key && us[0].Video) {
						report(errors.New("viewer's first unit is not a video key"))
					}
					first = false
				}
				sub.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := h.Streams(); len(s) != 0 {
		t.Fatalf("streams left after everyone left: %+v", s)
	}
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
