package pgcopy

// prefetch asks the CPU to bring the n bytes at p (n > 0) into its caches,
// without waiting for them and without faulting on any address (x86
// PREFETCHT0, one per 64-byte line). It changes nothing a program can
// observe but its speed.
//
//go:noescape
func prefetch(p *byte, n int)
