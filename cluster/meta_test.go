package cluster

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRoomMetaValidate(t *testing.T) {
	valid := RoomMeta{Room: "r1", GraceMS: 1000, MaxMembers: 10, TypingTimeoutMS: 3000, Visibility: VisibilityPrivate, Metadata: json.RawMessage(`{"a":1}`)}
	tests := []struct {
		name string
		edit func(*RoomMeta)
		ok   bool
	}{
		{"valid", func(*RoomMeta) {}, true},
		{"zero settings", func(m *RoomMeta) { *m = RoomMeta{Room: "r"} }, true},
		{"public", func(m *RoomMeta) { m.Visibility = VisibilityPublic }, true},
		{"room 128 bytes", func(m *RoomMeta) { m.Room = strings.Repeat("x", 128) }, true},
		{"metadata 4 KiB", func(m *RoomMeta) { m.Metadata = json.RawMessage(`"` + strings.Repeat("x", 4094) + `"`) }, true},
		{"metadata null", func(m *RoomMeta) { m.Metadata = json.RawMessage(`null`) }, true},
		{"empty room", func(m *RoomMeta) { m.Room = "" }, false},
		{"room 129 bytes", func(m *RoomMeta) { m.Room = strings.Repeat("x", 129) }, false},
		{"negative grace", func(m *RoomMeta) { m.GraceMS = -1 }, false},
		{"negative max members", func(m *RoomMeta) { m.MaxMembers = -1 }, false},
		{"negative typing", func(m *RoomMeta) { m.TypingTimeoutMS = -1 }, false},
		{"bad visibility", func(m *RoomMeta) { m.Visibility = "Public" }, false},
		{"metadata not JSON", func(m *RoomMeta) { m.Metadata = json.RawMessage(`{a:1}`) }, false},
		{"metadata truncated", func(m *RoomMeta) { m.Metadata = json.RawMessage(`{"a":`) }, false},
		{"metadata over 4 KiB", func(m *RoomMeta) { m.Metadata = json.RawMessage(`"` + strings.Repeat("x", 4095) + `"`) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid
			tt.edit(&m)
			err := m.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestRoomMetaJSON(t *testing.T) {
	// The wire names are part of the HTTP API and of the raft log.
	b, err := json.Marshal(RoomMeta{Room: "r", GraceMS: 1, MaxMembers: 2, TypingTimeoutMS: 3, Visibility: "public", Metadata: json.RawMessage(`{"k":"v"}`), Version: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"room":"r","grace_ms":1,"max_members":2,"typing_timeout_ms":3,"visibility":"public","metadata":{"k":"v"},"version":7,"updated_at":"0001-01-01T00:00:00Z"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}
