//go:build !amd64

package pgcopy

// prefetch does nothing where no prefetch instruction is wired in.
func prefetch(*byte, int) {}
