package cluster

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
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
	if _, err := a.WriteTo([]byte("x"), b.udp.LocalAddr().String()); err != nil {
		t.Fatal(err)
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
