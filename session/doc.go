// Package session is the presence domain of presenced: sessions and their
// lifecycle timers, rooms with per-room data, typing, location ("here"),
// derived user presence and versioned room event streams.
//
// # Model
//
// A session is one runtime (a browser tab, an app process, an SDK client, an
// agent). A user is an identity with any number of sessions; a session without
// a user is anonymous and still counts. User presence is never stored: it is
// derived at read time from the user's sessions with the precedence
// active > idle > away > stale > offline.
//
// # Storage
//
// Every piece of session state lives in a crdt.Map as entries written by the
// node that owns the session (see keys.go). Local operations write entries and
// feed the resulting crdt.Change into the same index code that remote merges
// use (index.go), so the rooms, users and counts a node answers from are a pure
// function of the replicated map, wherever the sessions are owned.
//
// # Concurrency
//
// An Engine is safe for concurrent use; one mutex guards all state. Event
// sinks passed to Subscribe are called with that mutex held, in per-room
// version order: they must not block and must not call back into the Engine.
// Timer callbacks (idle, away, grace, typing expiry) run on the Clock's
// goroutines and take the same mutex.
package session
