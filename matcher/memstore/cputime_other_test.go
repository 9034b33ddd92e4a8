//go:build !unix

package memstore

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
