package crdt

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// tester is what both *testing.T and *rapid.T offer.
type tester interface {
	Helper()
	Fatalf(format string, args ...any)
}

// allEntries returns every entry the map stores, tombstones included, by key.
func allEntries(m *Map) []Entry {
	var out []Entry
	m.slots.each(func(s *slot) bool {
		out = append(out, m.entry(s))
		return true
	})
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// liveEntries returns what Range reports, by key.
func liveEntries(m *Map) []Entry {
	var out []Entry
	m.Range(func(e Entry) bool {
		out = append(out, e)
		return true
	})
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func entryEqual(a, b Entry) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.Deleted == b.Deleted &&
		a.Version == b.Version && a.Origin == b.Origin && a.Seq == b.Seq
}

func entriesEqual(a, b []Entry) bool {
	return slices.EqualFunc(a, b, entryEqual)
}

func fmtEntry(e Entry) string {
	v := fmt.Sprintf("%q", e.Value)
	if e.Deleted {
		v = "<deleted>"
		if e.Value != nil {
			v += fmt.Sprintf("(%q)", e.Value)
		}
	}
	return fmt.Sprintf("%s=%s @%s %s:%d", e.Key, v, e.Version, e.Origin, e.Seq)
}

func fmtEntries(es []Entry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString("  " + fmtEntry(e) + "\n")
	}
	return b.String()
}

// checkInvariants verifies the internal bookkeeping of m.
func checkInvariants(t tester, m *Map) {
	t.Helper()
	live, occupied := 0, 0
	valid := make(map[*originState]int)
	tombs := make(map[*originState]int)
	m.slots.each(func(s *slot) bool {
		occupied++
		if !s.deleted() {
			live++
		} else {
			tombs[m.owner(s)]++
		}
		valid[m.owner(s)]++
		if idx, ok := m.index[s.key]; !ok || m.slots.at(idx) != s {
			t.Fatalf("slot %q is not indexed", s.key)
		}
		if st := m.owner(s); st == nil || m.origins[st.Origin] != st || st.id != s.org {
			t.Fatalf("slot %q written by an unknown origin", s.key)
		}
		return true
	})
	if live != m.live || live != m.Len() {
		t.Fatalf("live count %d, counted %d", m.live, live)
	}
	if occupied != len(m.index) {
		t.Fatalf("index has %d keys, slab %d slots", len(m.index), occupied)
	}
	if int(m.slots.used)-len(m.slots.free) != occupied {
		t.Fatalf("slab used %d free %d, occupied %d", m.slots.used, len(m.slots.free), occupied)
	}
	nOrgs := 0
	for _, st := range m.orgs {
		if st != nil {
			nOrgs++
		}
	}
	if nOrgs != len(m.origins) || nOrgs+len(m.freeOrgs) != len(m.orgs) {
		t.Fatalf("%d origins, %d ids in use, %d free, %d allocated", len(m.origins), nOrgs, len(m.freeOrgs), len(m.orgs))
	}
	for o, st := range m.origins {
		if m.orgs[st.id-1] != st {
			t.Fatalf("origin %s not under its id %d", o, st.id)
		}
		if st.Origin != o {
			t.Fatalf("origin %s stored under %s", st.Origin, o)
		}
		n, nt := 0, 0
		for i, r := range st.log {
			if i > 0 && r.seq < st.log[i-1].seq {
				t.Fatalf("log of %s out of order at %d: %d after %d", o, i, r.seq, st.log[i-1].seq)
			}
			if m.valid(st, r) {
				n++
			}
		}
		for _, r := range st.tombs {
			if m.valid(st, r) {
				if !m.slots.at(r.idx).deleted() {
					t.Fatalf("tombstone record of %s points to a live entry", o)
				}
				nt++
			}
		}
		if n != st.live || n != valid[st] {
			t.Fatalf("origin %s: live %d, valid records %d, slots %d", o, st.live, n, valid[st])
		}
		if nt != st.ntombs || nt != tombs[st] {
			t.Fatalf("origin %s: ntombs %d, valid records %d, slots %d", o, st.ntombs, nt, tombs[st])
		}
		if len(st.log) >= minCompact && len(st.log) > 2*st.live {
			t.Fatalf("origin %s: log of %d records holds only %d live", o, len(st.log), st.live)
		}
	}
}
