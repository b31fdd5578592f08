package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/presenced/presenced/crdt"
)

func newTestTransport(t *testing.T) *netTransport {
	t.Helper()
	tr, err := newNetTransport("127.0.0.1", 0, zap.NewNop(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })
	return tr
}

func TestNetTransportAdvertisesTheBoundAddress(t *testing.T) {
	tr := newTestTransport(t)
	ip, port, err := tr.FinalAdvertiseAddr("", 7946)
	if err != nil || ip.String() != "127.0.0.1" || port != tr.tcp.Addr().(*net.TCPAddr).Port {
		t.Fatalf("advertise %v %d %v, bound to %v", ip, port, err, tr.tcp.Addr())
	}
	ip, port, err = tr.FinalAdvertiseAddr("10.1.2.3", 9000)
	if err != nil || ip.String() != "10.1.2.3" || port != 9000 {
		t.Fatalf("given advertise address: %v %d %v", ip, port, err)
	}
	if _, _, err := tr.FinalAdvertiseAddr("not-an-ip", 9000); err == nil {
		t.Fatal("a bad advertise address was accepted")
	}
}

// Each packet is handed over in a buffer of its own: one that shared the
// read buffer would be overwritten by the next packet while memberlist
// still handles it.
func TestNetTransportPacketsAreCopiesOfTheirOwnSize(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	to := b.udp.LocalAddr().String()
	sent := [][]byte{[]byte("first packet"), []byte("2nd"), bytes.Repeat([]byte{7}, 60000)}
	for _, p := range sent {
		if _, err := a.WriteTo(p, to); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]byte
	for range sent {
		select {
		case p := <-b.PacketCh():
			if p.From.String() != a.udp.LocalAddr().String() {
				t.Errorf("from %v, want %v", p.From, a.udp.LocalAddr())
			}
			got = append(got, p.Buf)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d packets", len(got), len(sent))
		}
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) || cap(got[i]) != len(sent[i]) {
			t.Errorf("packet %d: %d bytes (cap %d), want %d bytes as sent", i, len(got[i]), cap(got[i]), len(sent[i]))
		}
	}
}

func TestNetTransportStreams(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	c, err := a.DialTimeout(b.tcp.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-b.StreamCh():
		defer s.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("read %q %v", buf, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no stream")
	}
}

// Shutdown returns even when nobody takes the packet or stream that
// arrived (memberlist shuts its transport down before it stops reading).
func TestNetTransportShutdownWithNobodyReading(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	// Two packets: once the first is taken, the reader has the second in
	// hand and waits for someone to take it.
	for _, p := range []string{"x", "y"} {
		if _, err := a.WriteTo([]byte(p), b.udp.LocalAddr().String()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-b.PacketCh():
	case <-time.After(10 * time.Second):
		t.Fatal("no packet")
	}
	c, err := a.DialTimeout(b.tcp.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		_ = b.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still waits")
	}
	if err := b.Shutdown(); err != nil {
		t.Fatal("second Shutdown:", err)
	}
}

// A delta too big for one packet goes as several, each within udpMax,
// which together cover its range and hold its entries in order; one entry
// too big alone, or more than maxUDPBurst packets, means TCP.
func TestDeltaPacketsSplitABigDelta(t *testing.T) {
	o := crdt.Origin{Node: "n1", Incarnation: 1}
	mk := func(n, valueBytes int) crdt.Delta {
		d := crdt.Delta{Origin: o, From: 10, To: uint64(10 + 2*n + 5)}
		for i := 0; i < n; i++ {
			d.Entries = append(d.Entries, crdt.Entry{Key: fmt.Sprintf("s/%d", i), Value: bytes.Repeat([]byte{'v'}, valueBytes),
				Version: crdt.Version{Node: "n1"}, Origin: o, Seq: uint64(12 + 2*i)})
		}
		return d
	}
	var p packets // one for every case, as a sender reuses its own
	for _, tc := range []struct {
		entries, valueBytes int
		to                  uint64 // 0: above every entry
		wantOK              bool
	}{{1, 10, 0, true}, {40, 100, 0, true}, {3, 2000, 0, false}, {800, 100, 0, false},
		// entries above the range (held past a gap): no part may claim them
		{40, 100, 20, true}} {
		d := mk(tc.entries, tc.valueBytes)
		if tc.to != 0 {
			d.To = tc.to
		}
		ok, err := p.split("n1", d)
		msgs := p.msgs
		if err != nil || ok != tc.wantOK {
			t.Fatalf("%d entries of %d bytes: ok %v err %v, want ok %v", tc.entries, tc.valueBytes, ok, err, tc.wantOK)
		}
		if !ok {
			continue
		}
		if len(msgs) > maxUDPBurst {
			t.Errorf("%d packets, over %d", len(msgs), maxUDPBurst)
		}
		var got []crdt.Entry
		from := d.From
		for _, m := range msgs {
			if len(m) > udpMax {
				t.Errorf("a packet of %d bytes", len(m))
			}
			kind, _, body, err := decodeMsg(m)
			if err != nil || kind != msgDelta {
				t.Fatalf("decode: %v %v", kind, err)
			}
			var part crdt.Delta
			if err := part.UnmarshalBinary(body); err != nil {
				t.Fatal(err)
			}
			if part.From != from {
				t.Errorf("a part from %d, want %d (where the one before ended)", part.From, from)
			}
			if part.To > d.To {
				t.Errorf("a part's range ends at %d, past the delta's %d", part.To, d.To)
			}
			from = part.To
			got = append(got, part.Entries...)
		}
		if from != d.To || len(got) != len(d.Entries) {
			t.Errorf("parts end at %d with %d entries, want %d with %d", from, len(got), d.To, len(d.Entries))
		}
		for i := range got {
			if got[i].Key != d.Entries[i].Key || got[i].Seq != d.Entries[i].Seq {
				t.Errorf("entry %d: %s/%d, want %s/%d", i, got[i].Key, got[i].Seq, d.Entries[i].Key, d.Entries[i].Seq)
			}
		}
	}
	// A sender's pushes, split into the buffers it reused, allocate nothing.
	d := mk(40, 100)
	if n := testing.AllocsPerRun(50, func() { _, _ = p.split("n1", d) }); n != 0 {
		t.Errorf("a split into reused packets: %v allocations, want 0", n)
	}
}

// userPacket builds what memberlist sends for SendBestEffort(payload):
// the label header if any, the checksum header if crc, the user message.
func userPacket(label string, crc bool, payload []byte) []byte {
	body := append([]byte{mlUserMsg}, payload...)
	if crc {
		h := make([]byte, 5, 5+len(body))
		h[0] = mlHasCrcMsg
		binary.BigEndian.PutUint32(h[1:], crc32.ChecksumIEEE(body))
		body = append(h, body...)
	}
	if label != "" {
		body = append(append([]byte{mlHasLabelMsg, byte(len(label))}, label...), body...)
	}
	return body
}

func TestUserMessageParsesWhatMemberlistSends(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pkt    []byte
		label  string
		ok     bool
		result string
	}{
		{"plain", userPacket("", false, []byte("delta")), "", true, "delta"},
		{"checksum", userPacket("", true, []byte("delta")), "", true, "delta"},
		{"label and checksum", userPacket("prod", true, []byte("delta")), "prod", true, "delta"},
		{"empty payload", userPacket("", true, nil), "", true, ""},
		{"another label", userPacket("prod", true, []byte("delta")), "test", false, ""},
		{"a label where none is set", userPacket("prod", false, []byte("delta")), "", false, ""},
		{"no label where one is set", userPacket("", false, []byte("delta")), "prod", false, ""},
		{"bad checksum", func() []byte { p := userPacket("", true, []byte("delta")); p[len(p)-1]++; return p }(), "", false, ""},
		{"a ping", []byte{0, 1, 2}, "", false, ""},
		{"compound", []byte{7, 1, 0, 1, mlUserMsg}, "", false, ""},
		{"truncated label", []byte{mlHasLabelMsg, 9, 'a'}, "a", false, ""},
		{"empty", nil, "", false, ""},
	} {
		msg, ok := userMessage(tc.pkt, tc.label)
		if ok != tc.ok || string(msg) != tc.result {
			t.Errorf("%s: %q %v, want %q %v", tc.name, msg, ok, tc.result, tc.ok)
		}
	}
}

// Whatever userMessage takes is what memberlist would have handed to
// NotifyMsg: the same label, a valid checksum, one user message.
func FuzzUserMessage(f *testing.F) {
	f.Add(userPacket("", true, []byte("x")), "")
	f.Add(userPacket("lbl", true, []byte("x")), "lbl")
	f.Add(userPacket("lbl", false, nil), "lbl")
	f.Add([]byte{mlHasLabelMsg, 0}, "")
	f.Fuzz(func(t *testing.T, pkt []byte, label string) {
		msg, ok := userMessage(pkt, label)
		if !ok {
			return
		}
		buf, got, err := memberlist.RemoveLabelHeaderFromPacket(pkt)
		if err != nil || got != label {
			t.Fatalf("taken, but memberlist reads label %q (%v), want %q", got, err, label)
		}
		if len(buf) >= 5 && buf[0] == mlHasCrcMsg {
			if crc32.ChecksumIEEE(buf[5:]) != binary.BigEndian.Uint32(buf[1:5]) {
				t.Fatal("taken with a bad checksum")
			}
			buf = buf[5:]
		}
		if len(buf) < 1 || buf[0] != mlUserMsg || !bytes.Equal(buf[1:], msg) {
			t.Fatalf("taken %q from %q, not one user message", msg, pkt)
		}
	})
}

// Two memberlists over netTransport with a direct hook: the join and
// probes (memberlist's own packets) still work, and every SendBestEffort
// reaches the hook, in the order sent — the constants above are
// memberlist's; without a label and with one. A message that reached
// memberlist's delegate instead fails the test. (With the hook off, the
// encrypted case, every packet takes memberlist's path, as the cluster
// tests over the in-memory transport do.)
func TestUserMessagesOfMemberlistAreTakenInOrder(t *testing.T) {
	for _, label := range []string{"", "prod"} {
		t.Run("label="+label, func(t *testing.T) {
			got := make(chan string, 1000)
			hook := func(b []byte) { got <- string(b) }
			start := func(name string, direct func([]byte)) *memberlist.Memberlist {
				tr, err := newNetTransport("127.0.0.1", 0, zap.NewNop(), label, direct)
				if err != nil {
					t.Fatal(err)
				}
				mc := memberlist.DefaultLocalConfig()
				mc.Name, mc.Transport, mc.Label = name, tr, label
				mc.BindAddr, mc.BindPort = "127.0.0.1", tr.tcp.Addr().(*net.TCPAddr).Port
				mc.LogOutput = io.Discard
				mc.Delegate = notifyDelegate{func(b []byte) { t.Errorf("delegate got %q: the hook did not take it", b) }}
				ml, err := memberlist.Create(mc)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = ml.Shutdown() })
				return ml
			}
			a, b := start("a", nil), start("b", hook)
			if _, err := a.Join([]string{b.LocalNode().Address()}); err != nil {
				t.Fatal(err)
			}
			var bn *memberlist.Node
			for _, n := range a.Members() {
				if n.Name == "b" {
					bn = n
				}
			}
			if bn == nil {
				t.Fatal("b not a member of a's view after the join")
			}
			const n = 300
			for i := range n {
				if err := a.SendBestEffort(bn, []byte(fmt.Sprint("m", i))); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.After(10 * time.Second)
			for i := range n {
				select {
				case m := <-got:
					if m != fmt.Sprint("m", i) {
						t.Fatalf("message %d is %q", i, m)
					}
				case <-deadline:
					t.Fatalf("%d of %d messages", i, n)
				}
			}
		})
	}
}

type notifyDelegate struct{ f func([]byte) }

func (d notifyDelegate) NodeMeta(int) []byte                  { return nil }
func (d notifyDelegate) NotifyMsg(b []byte)                   { d.f(b) }
func (d notifyDelegate) GetBroadcasts(int, int) [][]byte      { return nil }
func (d notifyDelegate) LocalState(bool) []byte               { return nil }
func (d notifyDelegate) MergeRemoteState(b []byte, join bool) {}

// deltaMsg writes what encodeMsg of the delta's own encoding writes, in a
// buffer it did not outgrow.
func TestDeltaMsgIsEncodeMsg(t *testing.T) {
	o := crdt.Origin{Node: "n1", Incarnation: 3}
	d := crdt.Delta{Origin: o, From: 4, To: 6}
	for i := range 2 {
		d.Entries = append(d.Entries, crdt.Entry{Key: fmt.Sprint("s/", i), Value: []byte(`{"v":1}`), Origin: o,
			Version: crdt.Version{TS: crdt.MakeTimestamp(int64(1000+i), 0), Node: "n1"}, Seq: uint64(5 + i)})
	}
	body, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := encodeMsg(msgDelta, "node-1", body)
	got, err := deltaMsg("node-1", d)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("deltaMsg: %x, %v; want %x", got, err, want)
	}
	if c := cap(got); c < len(want) || c > 1+binary.MaxVarintLen64+len("node-1")+d.MaxBinarySize() {
		t.Fatalf("a buffer of %d for %d bytes: reallocated", c, len(want))
	}
	// A sender's reused buffer: the same bytes over whatever it held, and
	// no allocation once it is big enough.
	buf := append(make([]byte, 0, 4096), "left over from the last push"...)
	got, err = appendDeltaMsg(buf[:0], "node-1", d)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("appendDeltaMsg: %x, %v; want %x", got, err, want)
	}
	if n := testing.AllocsPerRun(100, func() { got, _ = appendDeltaMsg(buf[:0], "node-1", d) }); n != 0 {
		t.Fatalf("appendDeltaMsg into a big enough buffer: %v allocations, want 0", n)
	}
}
