package cache_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/liveedge/liveedge/cache"
)

// item is the test unit: seq is the producer's own sequence number, so that
// readers can check they see a contiguous run.
type item struct {
	seq  uint64
	key  bool
	size int
	t    time.Duration
}

func (it item) IsKey() bool         { return it.key }
func (it item) Size() int           { return it.size }
func (it item) Time() time.Duration { return it.t }

// feeder appends items with increasing seq numbers.
type feeder struct {
	r   *cache.Ring[item]
	seq uint64
}

func (f *feeder) add(key bool, size int, t time.Duration) item {
	it := item{seq: f.seq, key: key, size: size, t: t}
	f.seq++
	f.r.Append(it)
	return it
}

// readAll fetches from cursor until the ring has nothing more, failing on
// any error. It returns the items and the next cursor.
func readAll(t *testing.T, r *cache.Ring[item], cursor uint64) ([]item, uint64) {
	t.Helper()
	var out []item
	buf := make([]item, 0, 7) // odd size: exercises batching
	for {
		got, next, wait, err := r.Fetch(cursor, buf)
		if err != nil {
			t.Fatalf("Fetch(%d): %v", cursor, err)
		}
		if len(got) > cap(buf) {
			t.Fatalf("Fetch returned %d items, more than cap(dst)=%d", len(got), cap(buf))
		}
		if wait != nil {
			if len(got) != 0 {
				t.Fatalf("Fetch returned %d items together with a wait channel", len(got))
			}
			if next != cursor {
				t.Fatalf("Fetch at live moved cursor %d -> %d", cursor, next)
			}
			return out, next
		}
		if len(got) == 0 {
			t.Fatalf("Fetch(%d) returned no items, no wait channel and no error", cursor)
		}
		if next != cursor+uint64(len(got)) {
			t.Fatalf("Fetch(%d) returned %d items but next=%d", cursor, len(got), next)
		}
		out = append(out, got...)
		cursor = next
	}
}

func checkContiguous(t *testing.T, items []item, first uint64) {
	t.Helper()
	for i, it := range items {
		if it.seq != first+uint64(i) {
			t.Fatalf("item %d: seq %d, want %d (gap or duplicate)", i, it.seq, first+uint64(i))
		}
	}
}

func TestGOPBounds(t *testing.T) {
	const ms = time.Millisecond
	type step struct {
		key       bool
		size      int
		t         time.Duration
		wantValid bool
	}
	tests := []struct {
		name   string
		limits cache.Limits
		steps  []step
	}{
		{
			name:   "MaxFrames",
			limits: cache.Limits{MaxFrames: 4, MaxLag: time.Hour},
			steps: []step{
				{true, 10, 0, true},
				{false, 10, 10 * ms, true},
				{false, 10, 20 * ms, true},
				{false, 10, 30 * ms, true},  // 4 frames: at the bound
				{false, 10, 40 * ms, false}, // 5 frames: dropped
				{false, 10, 50 * ms, false}, // stays dropped
				{true, 10, 60 * ms, true},   // new keyframe re-validates
				{false, 10, 70 * ms, true},
			},
		},
		{
			name:   "MaxBytes",
			limits: cache.Limits{MaxBytes: 100, MaxLag: time.Hour},
			steps: []step{
				{true, 40, 0, true},
				{false, 40, 10 * ms, true},
				{false, 20, 20 * ms, true},  // 100 bytes: at the bound
				{false, 1, 30 * ms, false},  // 101 bytes: dropped
				{false, 1, 40 * ms, false},  // stays dropped
				{true, 90, 50 * ms, true},   // new keyframe re-validates
				{false, 10, 60 * ms, true},  // 100 bytes
				{false, 11, 70 * ms, false}, // 111 bytes
				{true, 5, 80 * ms, true},
			},
		},
		{
			name:   "MaxDuration",
			limits: cache.Limits{MaxDuration: 100 * ms, MaxLag: time.Hour},
			steps: []step{
				{true, 10, 1000 * ms, true},
				{false, 10, 1050 * ms, true},
				{false, 10, 1100 * ms, true},  // 100ms: at the bound
				{false, 10, 1101 * ms, false}, // 101ms: dropped
				{false, 10, 1200 * ms, false},
				{true, 10, 1300 * ms, true},
				{false, 10, 1399 * ms, true},
				{false, 10, 1401 * ms, false},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := cache.NewRing[item](tc.limits)
			f := &feeder{r: r}
			// Some items before the first keyframe: never a GOP.
			for i := range 3 {
				f.add(false, 1, time.Duration(i)*ms)
			}
			if s := r.Stats(); s.GOPValid {
				t.Fatalf("GOP valid before any keyframe: %+v", s)
			}
			if _, wk := r.Join(); !wk {
				t.Fatal("Join before any keyframe: waitKey false")
			}
			var keyCursor uint64
			gopItems, gopBytes := 0, 0
			for i, st := range tc.steps {
				head := r.Head()
				f.add(st.key, st.size, st.t)
				if st.key {
					keyCursor = head
					gopItems, gopBytes = 0, 0
				}
				gopItems++
				gopBytes += st.size
				s := r.Stats()
				if s.GOPValid != st.wantValid {
					t.Fatalf("step %d: GOPValid=%v, want %v (stats %+v)", i, s.GOPValid, st.wantValid, s)
				}
				cur, wk := r.Join()
				if st.wantValid {
					if wk || cur != keyCursor {
						t.Fatalf("step %d: Join=(%d,%v), want (%d,false)", i, cur, wk, keyCursor)
					}
					if s.GOPItems != gopItems || s.GOPBytes != gopBytes {
						t.Fatalf("step %d: GOP %d items %d bytes, want %d and %d", i, s.GOPItems, s.GOPBytes, gopItems, gopBytes)
					}
				} else {
					if !wk || cur != r.Head() {
						t.Fatalf("step %d: Join=(%d,%v), want (%d,true)", i, cur, wk, r.Head())
					}
					if s.GOPItems != 0 || s.GOPBytes != 0 {
						t.Fatalf("step %d: invalid GOP reports %d items %d bytes", i, s.GOPItems, s.GOPBytes)
					}
				}
			}
		})
	}
}

// A reader that joins while the GOP is invalid waits for the next keyframe
// and starts exactly on it.
func TestJoinWaitKey(t *testing.T) {
	r := cache.NewRing[item](cache.Limits{MaxFrames: 2, MaxLag: time.Hour})
	f := &feeder{r: r}
	f.add(true, 1, 0)
	f.add(false, 1, 1)
	f.add(false, 1, 2) // GOP dropped
	cur, wk := r.Join()
	if !wk {
		t.Fatal("waitKey false with a dropped GOP")
	}
	f.add(false, 1, 3)
	key := f.add(true, 1, 4)
	f.add(false, 1, 5)
	items, _ := readAll(t, r, cur)
	// The reader skips until the first key, as Join's contract says.
	for len(items) > 0 && !items[0].key {
		items = items[1:]
	}
	if len(items) != 2 || items[0].seq != key.seq {
		t.Fatalf("after skipping to the key: %+v, want key seq %d then one item", items, key.seq)
	}
}

func TestResetGOP(t *testing.T) {
	r := cache.NewRing[item](cache.Limits{MaxLag: time.Hour})
	f := &feeder{r: r}
	f.add(true, 1, 0)
	f.add(false, 1, 1)
	r.ResetGOP()
	if s := r.Stats(); s.GOPValid {
		t.Fatalf("GOP valid after ResetGOP: %+v", s)
	}
	if _, wk := r.Join(); !wk {
		t.Fatal("Join after ResetGOP: waitKey false")
	}
	f.add(false, 1, 2)
	if _, wk := r.Join(); !wk {
		t.Fatal("non-key after ResetGOP re-validated the GOP")
	}
	head := r.Head()
	f.add(true, 1, 3)
	if c, wk := r.Join(); wk || c != head {
		t.Fatalf("Join=(%d,%v), want (%d,false)", c, wk, head)
	}
}

// A source that never sends a keyframe cannot grow the ring beyond what
// MaxLag (and the ring's capacity) retains.
func TestNoKeyframeBounded(t *testing.T) {
	const n = 100_000
	const size = 1000
	tests := []struct {
		name     string
		limits   cache.Limits
		interval time.Duration // item spacing; 0 = frozen clock
		maxItems int
	}{
		{"MaxLag100ms", cache.Limits{MaxFrames: 300, MaxLag: 100 * time.Millisecond}, time.Millisecond, 101},
		{"MaxLag0", cache.Limits{MaxFrames: 300}, time.Millisecond, 1},
		{"defaults", cache.Limits{MaxLag: 2 * time.Second}, 20 * time.Millisecond, 101},
		// Timestamps that never advance: MaxLag retains everything, the
		// ring's capacity (a power of two >= 2*MaxFrames) is the bound.
		{"frozenClock", cache.Limits{MaxFrames: 300, MaxLag: time.Second}, 0, 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := cache.NewRing[item](tc.limits)
			f := &feeder{r: r}
			peak := 0
			for i := range n {
				f.add(false, size, time.Duration(i)*tc.interval)
				s := r.Stats()
				if s.GOPValid || s.GOPItems != 0 {
					t.Fatalf("item %d: GOP valid without a keyframe: %+v", i, s)
				}
				if s.Items > tc.maxItems || s.Bytes != s.Items*size {
					t.Fatalf("item %d: ring holds %d items / %d bytes, bound %d items of %d bytes", i, s.Items, s.Bytes, tc.maxItems, size)
				}
				peak = max(peak, s.Items)
			}
			if peak == 0 {
				t.Fatal("ring never held anything")
			}
			if _, wk := r.Join(); !wk {
				t.Fatal("Join without keyframe: waitKey false")
			}
			if got := r.Head(); got != n {
				t.Fatalf("Head=%d, want %d", got, n)
			}
		})
	}
}

// Join right after a keyframe and k more items returns the keyframe's
// cursor, and Fetch from there yields exactly the key and the k items.
func TestJoinAtomic(t *testing.T) {
	for _, k := range []int{0, 1, 6, 7, 63, 64, 65, 500} {
		t.Run(fmt.Sprint("k=", k), func(t *testing.T) {
			r := cache.NewRing[item](cache.Limits{MaxFrames: 1000, MaxLag: time.Hour})
			f := &feeder{r: r}
			// A previous GOP, so that the keyframe is not at cursor 0.
			f.add(true, 10, 0)
			for i := range 10 {
				f.add(false, 10, time.Duration(i+1)*time.Millisecond)
			}
			want := r.Head()
			key := f.add(true, 10, 20*time.Millisecond)
			for i := range k {
				f.add(false, 10, time.Duration(21+i)*time.Millisecond)
			}
			cur, wk := r.Join()
			if wk || cur != want {
				t.Fatalf("Join=(%d,%v), want (%d,false)", cur, wk, want)
			}
			items, next := readAll(t, r, cur)
			if len(items) != k+1 {
				t.Fatalf("got %d items, want %d", len(items), k+1)
			}
			if !items[0].key || items[0].seq != key.seq {
				t.Fatalf("first item %+v, want the keyframe %+v", items[0], key)
			}
			checkContiguous(t, items, key.seq)
			// The next item arrives through the wait channel.
			_, _, wait, err := r.Fetch(next, nil)
			if err != nil || wait == nil {
				t.Fatalf("Fetch at live: wait=%v err=%v", wait, err)
			}
			select {
			case <-wait:
				t.Fatal("wait channel closed before any append")
			default:
			}
			last := f.add(false, 10, time.Second)
			select {
			case <-wait:
			default:
				t.Fatal("Append did not close the wait channel")
			}
			got, _, _, err := r.Fetch(next, nil)
			if err != nil || len(got) != 1 || got[0] != last {
				t.Fatalf("after wake: %+v, %v; want [%+v]", got, err, last)
			}
		})
	}
}

func TestFetchBatchSize(t *testing.T) {
	r := cache.NewRing[item](cache.Limits{MaxLag: time.Hour})
	f := &feeder{r: r}
	f.add(true, 1, 0)
	for i := range 199 {
		f.add(false, 1, time.Duration(i+1))
	}
	cur, _ := r.Join()
	tests := []struct {
		name string
		dst  []item
		want int
	}{
		{"nil", nil, 64},
		{"cap0", make([]item, 0), 64},
		{"cap1", make([]item, 0, 1), 1},
		{"cap10len5", make([]item, 5, 10), 10},
		{"cap1000", make([]item, 0, 1000), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, next, _, err := r.Fetch(cur, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want || next != cur+uint64(tc.want) {
				t.Fatalf("got %d items next %d, want %d items", len(got), next, tc.want)
			}
			checkContiguous(t, got, 0)
		})
	}
}

func TestLag(t *testing.T) {
	const ms = time.Millisecond
	t.Run("behindTail", func(t *testing.T) {
		r := cache.NewRing[item](cache.Limits{MaxFrames: 8}) // MaxLag 0
		f := &feeder{r: r}
		f.add(true, 1, 0)
		cur, _ := r.Join()
		var lastKey item
		for i := 1; i < 100; i++ {
			it := f.add(i%4 == 0, 1, time.Duration(i)*ms)
			if it.key {
				lastKey = it
			}
		}
		last := f.add(false, 1, 100*ms)
		if _, _, _, err := r.Fetch(cur, nil); !errors.Is(err, cache.ErrLagged) {
			t.Fatalf("Fetch behind tail: err=%v, want ErrLagged", err)
		}
		c, wk := r.Resync()
		if wk {
			t.Fatal("Resync: waitKey with a valid GOP")
		}
		items, _ := readAll(t, r, c)
		if len(items) == 0 || items[0] != lastKey || items[len(items)-1] != last {
			t.Fatalf("after Resync: %+v, want the newest key %+v up to %+v", items, lastKey, last)
		}
		checkContiguous(t, items, lastKey.seq)
	})
	t.Run("behindTailNoGOP", func(t *testing.T) {
		r := cache.NewRing[item](cache.Limits{MaxFrames: 2, MaxLag: 10 * ms})
		f := &feeder{r: r}
		f.add(true, 1, 0)
		cur, _ := r.Join()
		for i := 1; i < 50; i++ {
			f.add(false, 1, time.Duration(i)*ms)
		}
		if _, _, _, err := r.Fetch(cur, nil); !errors.Is(err, cache.ErrLagged) {
			t.Fatalf("err=%v, want ErrLagged", err)
		}
		c, wk := r.Resync()
		if !wk || c != r.Head() {
			t.Fatalf("Resync=(%d,%v), want live (%d,true) when the GOP was dropped", c, wk, r.Head())
		}
	})
	t.Run("withinMaxLag", func(t *testing.T) {
		// Behind a newer keyframe but within MaxLag: no lag.
		r := cache.NewRing[item](cache.Limits{MaxLag: time.Second})
		f := &feeder{r: r}
		f.add(true, 1, 0)
		f.add(false, 1, 100*ms)
		cur := uint64(1)
		f.add(true, 1, 900*ms)
		f.add(false, 1, 1100*ms) // 1s after the reader's item
		items, _ := readAll(t, r, cur)
		checkContiguous(t, items, 1)
		if len(items) != 3 {
			t.Fatalf("got %d items, want 3", len(items))
		}
		f.add(false, 1, 1101*ms) // now 1.001s behind
		if _, _, _, err := r.Fetch(cur, nil); !errors.Is(err, cache.ErrLagged) {
			t.Fatalf("err=%v, want ErrLagged", err)
		}
	})
	t.Run("behindLiveNewerGOP", func(t *testing.T) {
		// Interleaved tracks can make a retained item newer than the one
		// after it: the tail stays within MaxLag while the reader's item
		// is more than MaxLag behind live and a newer GOP exists.
		r := cache.NewRing[item](cache.Limits{MaxLag: time.Second})
		f := &feeder{r: r}
		f.add(true, 1, 900*ms)  // seq 0
		f.add(false, 1, 0)      // seq 1: 900ms older than its predecessor
		f.add(false, 1, 950*ms) // seq 2
		if _, _, _, err := r.Fetch(1, nil); err != nil {
			t.Fatalf("before the new GOP: %v", err)
		}
		key := f.add(true, 1, 1500*ms) // seq 3
		if _, _, _, err := r.Fetch(1, nil); !errors.Is(err, cache.ErrLagged) {
			t.Fatalf("err=%v, want ErrLagged", err)
		}
		// The reader at the tail is within MaxLag: fine.
		if _, _, _, err := r.Fetch(0, nil); err != nil {
			t.Fatalf("tail reader: %v", err)
		}
		c, _ := r.Resync()
		items, _ := readAll(t, r, c)
		if len(items) != 1 || items[0] != key {
			t.Fatalf("after Resync: %+v, want [%+v]", items, key)
		}
	})
	t.Run("ringFull", func(t *testing.T) {
		// Timestamps that never advance: the capacity bound evicts.
		r := cache.NewRing[item](cache.Limits{MaxFrames: 10, MaxLag: time.Hour}) // capacity 64
		f := &feeder{r: r}
		f.add(true, 1, 0)
		cur, _ := r.Join()
		for range 63 {
			f.add(false, 1, 0)
		}
		if _, _, _, err := r.Fetch(cur, nil); err != nil {
			t.Fatalf("full but not overwritten: %v", err)
		}
		f.add(false, 1, 0)
		if _, _, _, err := r.Fetch(cur, nil); !errors.Is(err, cache.ErrLagged) {
			t.Fatalf("overwritten: err=%v, want ErrLagged", err)
		}
		if s := r.Stats(); s.Items != 64 {
			t.Fatalf("Items=%d, want the capacity 64", s.Items)
		}
	})
}

func TestClose(t *testing.T) {
	r := cache.NewRing[item](cache.Limits{MaxLag: time.Hour})
	f := &feeder{r: r}
	f.add(true, 1, 0)
	f.add(false, 1, 1)
	f.add(false, 1, 2)
	behind, _ := r.Join()
	live := r.Head()
	_, _, wait, err := r.Fetch(live, nil)
	if err != nil || wait == nil {
		t.Fatalf("live reader: wait=%v err=%v", wait, err)
	}
	r.Close()
	select {
	case <-wait:
	default:
		t.Fatal("Close did not close the waiting reader's channel")
	}
	if _, _, _, err := r.Fetch(live, nil); !errors.Is(err, cache.ErrClosed) {
		t.Fatalf("live reader after Close: %v, want ErrClosed", err)
	}
	// A reader that is behind drains first.
	items, next, wait, err := r.Fetch(behind, nil)
	if err != nil || wait != nil || len(items) != 3 {
		t.Fatalf("draining: %d items wait=%v err=%v, want 3 items", len(items), wait, err)
	}
	checkContiguous(t, items, 0)
	if _, _, w, err := r.Fetch(next, nil); !errors.Is(err, cache.ErrClosed) || w != nil {
		t.Fatalf("drained: wait=%v err=%v, want ErrClosed", w, err)
	}
	// Appends after Close are dropped; Close is idempotent.
	f.add(true, 1, 3)
	if r.Head() != 3 {
		t.Fatalf("Append after Close changed Head to %d", r.Head())
	}
	r.Close()
}

// Many readers join and read while the producer appends: every reader
// starts on a keyframe and sees contiguous sequence numbers (after each
// resync, again starting on a keyframe), and drains to the last item.
func TestConcurrentJoinFetch(t *testing.T) {
	const (
		n       = 20_000
		gop     = 25
		readers = 32
	)
	r := cache.NewRing[item](cache.Limits{MaxFrames: 100, MaxLag: 500 * time.Millisecond})
	type result struct {
		first, last uint64
		read        int
		lags        int
		err         error
	}
	results := make(chan result, readers)
	reader := func() {
		res := result{}
		defer func() { results <- res }()
		cur, waitKey := r.Join()
		buf := make([]item, 0, 16)
		var prev uint64
		started := false
		for {
			got, next, wait, err := r.Fetch(cur, buf)
			switch {
			case errors.Is(err, cache.ErrClosed):
				return
			case errors.Is(err, cache.ErrLagged):
				res.lags++
				cur, waitKey = r.Resync()
				started = false
				continue
			case err != nil:
				res.err = err
				return
			}
			if wait != nil {
				<-wait
				continue
			}
			cur = next
			for _, it := range got {
				if waitKey {
					if !it.key {
						continue
					}
					waitKey = false
				}
				if !started {
					if !it.key {
						res.err = fmt.Errorf("first item after join/resync is not a key: %+v", it)
						return
					}
					if res.read == 0 {
						res.first = it.seq
					}
					started = true
				} else if it.seq != prev+1 {
					res.err = fmt.Errorf("seq %d after %d", it.seq, prev)
					return
				}
				prev = it.seq
				res.last = it.seq
				res.read++
			}
		}
	}
	var wg sync.WaitGroup
	started := 0
	for range readers / 4 {
		wg.Go(reader) // before the producer starts
		started++
	}
	f := &feeder{r: r}
	for i := range n {
		f.add(i%gop == 0, 100, time.Duration(i)*time.Millisecond)
		if i%(n/readers) == 7 && started < readers {
			wg.Go(reader) // mid-GOP, while the producer runs
			started++
		}
	}
	r.Close()
	wg.Wait()
	close(results)
	count, lags := 0, 0
	for res := range results {
		count++
		lags += res.lags
		if res.err != nil {
			t.Error(res.err)
			continue
		}
		if res.read == 0 {
			t.Errorf("a reader read nothing")
			continue
		}
		if res.last != n-1 {
			t.Errorf("reader stopped at seq %d, want %d", res.last, n-1)
		}
	}
	if count != started || count != readers {
		t.Fatalf("%d readers reported, %d started, want %d", count, started, readers)
	}
	t.Logf("%d readers, %d resyncs", count, lags)
}

func BenchmarkAppend(b *testing.B) {
	r := cache.NewRing[item](cache.Limits{MaxLag: 2 * time.Second})
	var i uint64
	b.ReportAllocs()
	for b.Loop() {
		r.Append(item{seq: i, key: i%50 == 0, size: 1000, t: time.Duration(i) * 20 * time.Millisecond})
		i++
	}
}

// BenchmarkFetch measures the fan-out of one appended item to N readers.
func BenchmarkFetch(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprint("readers=", n), func(b *testing.B) {
			r := cache.NewRing[item](cache.Limits{MaxLag: 2 * time.Second})
			r.Append(item{key: true, size: 1000})
			cursors := make([]uint64, n)
			for j := range cursors {
				cursors[j] = r.Head()
			}
			buf := make([]item, 0, 64)
			var i uint64 = 1
			b.ReportAllocs()
			for b.Loop() {
				r.Append(item{seq: i, key: i%50 == 0, size: 1000, t: time.Duration(i) * 20 * time.Millisecond})
				i++
				for j, c := range cursors {
					got, next, _, err := r.Fetch(c, buf)
					if err != nil || len(got) != 1 {
						b.Fatalf("Fetch: %d items, %v", len(got), err)
					}
					cursors[j] = next
				}
			}
		})
	}
}
