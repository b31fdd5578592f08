package cluster

import (
	"fmt"
	"slices"
	"testing"
)

func TestRequestWindowEvictsOldestFirst(t *testing.T) {
	w := newRequestWindow(3)
	for i := range 5 {
		w.add(outcome{ID: fmt.Sprint(i), Version: uint64(i)})
	}
	if w.len() != 3 {
		t.Fatalf("len = %d, want 3", w.len())
	}
	for _, id := range []string{"0", "1"} {
		if _, ok := w.get(id); ok {
			t.Errorf("id %s not evicted", id)
		}
	}
	for _, id := range []string{"2", "3", "4"} {
		if _, ok := w.get(id); !ok {
			t.Errorf("id %s evicted", id)
		}
	}
	var ids []string
	for _, o := range w.list() {
		ids = append(ids, o.ID)
	}
	if want := []string{"2", "3", "4"}; !slices.Equal(ids, want) {
		t.Fatalf("list = %v, want %v (oldest first)", ids, want)
	}
}

func TestRequestWindowListRebuildsSameOrder(t *testing.T) {
	// A window rebuilt from list() (as Restore does) must evict the same ids
	// next as the original, or replicas would disagree after a snapshot.
	a := newRequestWindow(4)
	for i := range 6 {
		a.add(outcome{ID: fmt.Sprint(i)})
	}
	b := newRequestWindow(4)
	for _, o := range a.list() {
		b.add(o)
	}
	a.add(outcome{ID: "x"})
	b.add(outcome{ID: "x"})
	if !slices.Equal(a.list(), b.list()) {
		t.Fatalf("after restore: %v != %v", b.list(), a.list())
	}
}

func TestRequestWindowPartial(t *testing.T) {
	w := newRequestWindow(10)
	w.add(outcome{ID: "a"})
	w.add(outcome{ID: "b"})
	if got := w.list(); len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" {
		t.Fatalf("list = %v", got)
	}
}
