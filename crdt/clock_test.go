package crdt

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeWall is a settable wall clock.
type fakeWall struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeWall) now() time.Time            { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeWall) add(d time.Duration)       { f.mu.Lock(); f.t = f.t.Add(d); f.mu.Unlock() }
func newFakeWall(ms int64) *fakeWall          { return &fakeWall{t: time.UnixMilli(ms)} }
func ts(wall int64, logical uint16) Timestamp { return MakeTimestamp(wall, logical) }

func TestTimestampPacking(t *testing.T) {
	for _, tc := range []struct {
		wall    int64
		logical uint16
		wantMS  int64
	}{
		{0, 0, 0},
		{1_700_000_000_123, 7, 1_700_000_000_123},
		{maxWallMS, maxLogical, maxWallMS},
		{-5, 1, 0},                     // clamped
		{maxWallMS + 10, 2, maxWallMS}, // clamped
	} {
		got := MakeTimestamp(tc.wall, tc.logical)
		if got.WallMS() != tc.wantMS || got.Logical() != tc.logical {
			t.Errorf("MakeTimestamp(%d, %d) = %d.%d, want %d.%d", tc.wall, tc.logical, got.WallMS(), got.Logical(), tc.wantMS, tc.logical)
		}
	}
	if got := ts(1_700_000_000_123, 9).Time(); !got.Equal(time.UnixMilli(1_700_000_000_123)) {
		t.Errorf("Time() = %v", got)
	}
	if !(ts(5, 65535) < ts(6, 0)) || !(ts(5, 1) < ts(5, 2)) {
		t.Error("timestamps must order by wall, then logical")
	}
	if s := ts(5, 3).String(); s != "5.3" {
		t.Errorf("String() = %q", s)
	}
}

func TestClockMonotonic(t *testing.T) {
	w := newFakeWall(1000)
	c := NewClock(w.now, 0)
	var prev Timestamp
	for i := range 1000 {
		switch i % 7 {
		case 3:
			w.add(time.Millisecond)
		case 5:
			w.add(-3 * time.Millisecond) // the wall clock steps back
		}
		now := c.Now()
		if now <= prev {
			t.Fatalf("step %d: Now() = %v after %v", i, now, prev)
		}
		prev = now
	}
}

func TestClockFollowsWall(t *testing.T) {
	w := newFakeWall(1000)
	c := NewClock(w.now, 0)
	if got := c.Now(); got != ts(1000, 0) {
		t.Fatalf("first Now() = %v, want 1000.0", got)
	}
	if got := c.Now(); got != ts(1000, 1) {
		t.Fatalf("same ms: Now() = %v, want 1000.1", got)
	}
	w.add(time.Millisecond)
	if got := c.Now(); got != ts(1001, 0) {
		t.Fatalf("next ms: Now() = %v, want 1001.0", got)
	}
	w.add(-time.Second)
	if got := c.Now(); got != ts(1001, 1) {
		t.Fatalf("wall stepped back: Now() = %v, want 1001.1", got)
	}
}

func TestClockLogicalOverflowBumpsWall(t *testing.T) {
	w := newFakeWall(1000)
	c := NewClock(w.now, 0)
	if err := c.Observe(ts(1000, maxLogical-1)); err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); got != ts(1000, maxLogical) {
		t.Fatalf("Now() = %v, want 1000.65535", got)
	}
	if got := c.Now(); got != ts(1001, 0) {
		t.Fatalf("after overflow Now() = %v, want 1001.0", got)
	}
	// The wall clock catching up to the bumped value keeps counting.
	w.add(time.Millisecond)
	if got := c.Now(); got != ts(1001, 1) {
		t.Fatalf("Now() = %v, want 1001.1", got)
	}
}

func TestClockObserve(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxAhead time.Duration
		remote   Timestamp
		wantErr  bool
		wantNext Timestamp // next Now() after Observe
	}{
		{"behind is absorbed", 0, ts(500, 3), false, ts(1000, 0)},
		{"slightly ahead moves the clock", 0, ts(1200, 4), false, ts(1200, 5)},
		{"exactly at the default bound", 0, ts(1500, 0), false, ts(1500, 1)},
		{"past the default bound", 0, ts(1501, 0), true, ts(1000, 0)},
		{"custom bound accepts", 2 * time.Second, ts(2900, 0), false, ts(2900, 1)},
		{"custom bound rejects", 2 * time.Second, ts(3001, 0), true, ts(1000, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClock(newFakeWall(1000).now, tc.maxAhead)
			err := c.Observe(tc.remote)
			if tc.wantErr != errors.Is(err, ErrClockAhead) {
				t.Fatalf("Observe(%v) = %v, want error %v", tc.remote, err, tc.wantErr)
			}
			if got := c.Now(); got != tc.wantNext {
				t.Fatalf("Now() after Observe = %v, want %v", got, tc.wantNext)
			}
		})
	}
}

func TestClockConcurrent(t *testing.T) {
	c := NewClock(nil, 0)
	const workers, per = 4, 2000
	results := make([][]Timestamp, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				results[w] = append(results[w], c.Now())
				_ = c.Observe(c.Now())
			}
		}()
	}
	wg.Wait()
	seen := make(map[Timestamp]bool)
	for _, rs := range results {
		for i, r := range rs {
			if seen[r] {
				t.Fatalf("timestamp %v handed out twice", r)
			}
			seen[r] = true
			if i > 0 && r <= rs[i-1] {
				t.Fatalf("not monotonic within a goroutine: %v after %v", r, rs[i-1])
			}
		}
	}
}
