package redisstore

import "context"

// Sweep runs one expiry and retention pass, for tests.
func (s *Store) Sweep(ctx context.Context) error { return s.sweep(ctx) }
