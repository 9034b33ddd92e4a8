package main

import "runtime"

// schedulerSlots says how many Go scheduler slots (GOMAXPROCS) mogate
// should run with, given its store and Go's default (current): with the
// memory store, one more than the default, so that the log's writer,
// which holds a slot for the whole of each fsync (~0.3 ms on a typical
// disk, half of the time under load), does not leave the other requests
// one slot short; else, and whenever the operator set GOMAXPROCS, none
// changed (ok false). Go hands a slot blocked in a system call to another
// thread only once its monitor sees the call twice, and that monitor,
// with little to do, looks every ~10 ms: far longer than an fsync.
// docs/operations.md ("CPU") has the measurement and the trade-off.
func schedulerSlots(store string, lookupEnv func(string) (string, bool), current int) (n int, ok bool) {
	if store != "memory" {
		return current, false
	}
	if _, set := lookupEnv("GOMAXPROCS"); set {
		return current, false
	}
	return current + 1, true
}

// withSlots runs f with the slots mogate serve would take for store,
// then gives the slots before back: the bench measures each run as it is
// deployed.
func withSlots(store string, lookupEnv func(string) (string, bool), f func() error) (int, error) {
	n, ok := schedulerSlots(store, lookupEnv, runtime.GOMAXPROCS(0))
	if !ok {
		return n, f()
	}
	prev := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(prev)
	return n, f()
}
