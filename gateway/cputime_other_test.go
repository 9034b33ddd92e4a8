//go:build !unix

package gateway

import "time"

// processCPU is the CPU time this process has used: not read here.
func processCPU() (time.Duration, bool) { return 0, false }
