package memstore

import "time"

// SenderSessions24h returns what Signals.SenderSessions24h of a session of
// API key key verified for sender at now would be, for tests of package
// memstore_test.
func (m *Store) SenderSessions24h(key, sender string, now time.Time) int {
	return m.senders.count(key, sender, now)
}
