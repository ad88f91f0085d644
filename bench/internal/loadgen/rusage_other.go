//go:build !unix

package loadgen

import "time"

// ProcessCPU is the CPU time this process has used: not read on this system (no
// getrusage), so the benchmarks print "-" for it.
func ProcessCPU() (time.Duration, bool) { return 0, false }
