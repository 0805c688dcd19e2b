//go:build !linux

package hugepages

const available = false

func madviseHuge(addr, n uintptr) error { return ErrUnavailable }
