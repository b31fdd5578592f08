package cluster

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/crdt"
)

func newTestTransport(t *testing.T) *netTransport {
	t.Helper()
	tr, err := newNetTransport("127.0.0.1", 0, zap.NewNop())
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
	for _, tc := range []struct {
		entries, valueBytes int
		to                  uint64 // 0: above every entry
		wantOK              bool
	}{{1, 10, 0, true}, {40, 100, 0, true}, {3, 2000, 0, false}, {400, 100, 0, false},
		// entries above the range (held past a gap): no part may claim them
		{40, 100, 20, true}} {
		d := mk(tc.entries, tc.valueBytes)
		if tc.to != 0 {
			d.To = tc.to
		}
		msgs, ok, err := deltaPackets("n1", d, nil)
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
}
