// Package cluster is presenced's transport and consensus layer.
//
// # Room metadata (Meta)
//
// Room settings go through hashicorp/raft; nothing else does (see
// DESIGN.md). Meta is safe for concurrent use:
//
//   - Put and Delete block until the command is applied on this node (or
//     fail); they run on the caller's goroutine plus one short-lived waiter.
//   - Get, List, Stats and Ready never block on raft: they read the local FSM
//     under a read lock and may lag the leader by the replication delay.
//   - OnChange callbacks run on raft's single FSM goroutine, in log order.
//     They must not block and must not call Put or Delete.
//   - Close is idempotent and stops every goroutine the store started.
package cluster
