package crdt

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of ../testdata/crdt/*.txt")

// TestScenarios runs the scripts in ../testdata/crdt. A script is a series of
//
//	command args...
//	----
//	expected output
//	<blank line>
//
// with '#' comments between them. Every replica is named after its node and
// writes as origin name#incarnation. Commands:
//
//	set R key value ts=W[.L]      local write on replica R
//	delete R key ts=W[.L]         local tombstone
//	delta R origin=O after=N [limit=N] -> D   DeltaSince, sent through the codec
//	merge R D...                  Merge deltas, printing changes and gaps
//	sync R S                      anti-entropy: R pulls from S what S's digest has beyond R's
//	drop R origin=O               DropOrigin
//	gc R O=seq...                 CollectTombstones
//	restart R                     R forgets everything and comes back as the next incarnation
//	dump R                        every entry, tombstones included, then the digest
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../testdata/crdt/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

func runScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	s := &scenario{maps: map[string]*Map{}, inc: map[string]uint64{}, deltas: map[string]Delta{}}
	var out []string
	for i := 0; i < len(lines); i++ {
		cmd := lines[i]
		out = append(out, cmd)
		if strings.TrimSpace(cmd) == "" || strings.HasPrefix(cmd, "#") {
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: want ---- after the command", path, i+1)
		}
		var want []string
		for i += 2; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		got, err := s.run(cmd)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", path, i+1, cmd, err)
		}
		out = append(out, "----", got, "")
		if !*rewrite && got != strings.Join(want, "\n") {
			t.Errorf("%s: %s\ngot:\n%s\nwant:\n%s", path, cmd, got, strings.Join(want, "\n"))
		}
	}
	if *rewrite {
		text := strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type scenario struct {
	maps   map[string]*Map
	inc    map[string]uint64
	deltas map[string]Delta
}

func (s *scenario) replica(name string) (*Map, Origin) {
	if s.maps[name] == nil {
		s.maps[name], s.inc[name] = NewMap(), 1
	}
	return s.maps[name], Origin{Node: name, Incarnation: s.inc[name]}
}

// origin parses "node#inc"; a bare node means its current incarnation.
func (s *scenario) origin(v string) Origin {
	node, inc, found := strings.Cut(v, "#")
	if !found {
		_, o := s.replica(node)
		return o
	}
	n, _ := strconv.ParseUint(inc, 10, 64)
	return Origin{Node: node, Incarnation: n}
}

func (s *scenario) run(line string) (string, error) {
	var pos []string
	kv := map[string]string{}
	fields := strings.Fields(line)
	for i := 1; i < len(fields); i++ {
		if k, v, ok := strings.Cut(fields[i], "="); ok {
			kv[k] = v
		} else if fields[i] == "->" && i+1 < len(fields) {
			kv["->"] = fields[i+1]
			i++
		} else {
			pos = append(pos, fields[i])
		}
	}
	if len(pos) == 0 {
		return "", fmt.Errorf("no replica named")
	}
	m, self := s.replica(pos[0])
	wall, logical, _ := strings.Cut(kv["ts"], ".")
	w, _ := strconv.ParseInt(wall, 10, 64)
	l, _ := strconv.ParseUint(logical, 10, 16)
	at := MakeTimestamp(w, uint16(l))
	num := func(k string) uint64 { n, _ := strconv.ParseUint(kv[k], 10, 64); return n }
	var b strings.Builder
	switch fields[0] {
	case "set", "delete":
		if len(pos) < 2 {
			return "", fmt.Errorf("want a key")
		}
		var c Change
		var ok bool
		if fields[0] == "set" && len(pos) == 3 {
			c, ok = m.Set(self, at, pos[1], []byte(pos[2]))
		} else {
			c, ok = m.Delete(self, at, pos[1], nil)
		}
		if !ok {
			return "refused", nil
		}
		b.WriteString("applied")
		writeChanges(&b, []Change{c})
	case "delta":
		limit, _ := strconv.Atoi(kv["limit"])
		d := m.DeltaSince(s.origin(kv["origin"]), num("after"), limit)
		wire, err := d.MarshalBinary()
		if err != nil {
			return "", err
		}
		var got Delta
		if err := got.UnmarshalBinary(wire); err != nil {
			return "", err
		}
		s.deltas[kv["->"]] = got
		fmt.Fprintf(&b, "%s: %s (%d,%d]", kv["->"], got.Origin, got.From, got.To)
		for _, e := range got.Entries {
			b.WriteString("\n  " + scenarioEntry(e))
		}
	case "merge":
		for _, name := range pos[1:] {
			d, ok := s.deltas[name]
			if !ok {
				return "", fmt.Errorf("no delta %q", name)
			}
			changes, gap := m.Merge(d)
			fmt.Fprintf(&b, "%s: %d changes", name, len(changes))
			if gap {
				b.WriteString(", gap")
			}
			writeChanges(&b, changes)
			b.WriteString("\n")
		}
	case "sync":
		src, _ := s.replica(pos[1])
		for _, o := range slices.SortedFunc(maps.Keys(src.origins), compareOrigin) {
			if after := m.Watermark(o); src.Watermark(o) > after {
				changes, gap := m.Merge(src.DeltaSince(o, after, 0))
				fmt.Fprintf(&b, "%s after %d: %d changes, gap=%v", o, after, len(changes), gap)
				writeChanges(&b, changes)
				b.WriteString("\n")
			}
		}
	case "drop":
		changes := m.DropOrigin(s.origin(kv["origin"]))
		fmt.Fprintf(&b, "%d removed", len(changes))
		writeChanges(&b, changes)
	case "gc":
		safe := Digest{}
		for k := range kv {
			safe[s.origin(k)] = num(k)
		}
		fmt.Fprintf(&b, "collected %d", m.CollectTombstones(safe))
	case "restart":
		s.maps[pos[0]], s.inc[pos[0]] = NewMap(), s.inc[pos[0]]+1
		fmt.Fprintf(&b, "%s is now %s#%d", pos[0], pos[0], s.inc[pos[0]])
	case "dump":
		for _, e := range allEntries(m) {
			b.WriteString(scenarioEntry(e) + "\n")
		}
		g := m.Digest()
		b.WriteString("digest:")
		for _, o := range slices.SortedFunc(maps.Keys(g), compareOrigin) {
			fmt.Fprintf(&b, " %s=%d", o, g[o])
		}
	default:
		return "", fmt.Errorf("unknown command %q", fields[0])
	}
	if b.Len() == 0 {
		return "ok", nil
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

func scenarioEntry(e Entry) string {
	v := string(e.Value)
	if e.Deleted {
		v = "(deleted)"
	}
	return fmt.Sprintf("%s=%s ts=%s by %s seq=%d", e.Key, v, e.Version.TS, e.Origin, e.Seq)
}

func writeChanges(b *strings.Builder, changes []Change) {
	for _, c := range changes {
		prev := "(none)"
		if c.HadPrev {
			prev = scenarioEntry(c.Prev)
		}
		cur := scenarioEntry(c.Cur)
		if c.Cur.Deleted && c.Cur.Seq == 0 {
			cur = "(dropped)"
		}
		fmt.Fprintf(b, "\n  %s: %s -> %s", c.Key, prev, cur)
	}
}
