// Package matcher is the store contract of mogate: Store, the interface
// every session store implements, and what crosses it — sessions, inbound
// messages and their outcomes, events, the create rules and the errors.
// The stores are its subpackages: memstore (one process, memory and a
// write-ahead log) and redisstore (Redis, shared by replicas); storetest is
// the suite every store passes, and text holds the matching rules of
// message text that both apply (docs/matching.md, docs/design.md).
package matcher
