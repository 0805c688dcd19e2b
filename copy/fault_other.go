//go:build !unix

package pgcopy

// fault is a no-op where SIGKILL and SIGSTOP do not exist; see fault.go.
func fault(string) {}
