//go:build !sluicefault || !unix

package pgcopy

// fault is a no-op: fault injection (fault.go) is compiled only with
// -tags sluicefault, and only where SIGKILL and SIGSTOP exist.
func fault(string) {}
