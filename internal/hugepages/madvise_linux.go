package hugepages

import (
	"fmt"
	"syscall"
)

const available = true

// madviseHuge marks [addr, addr+n) with MADV_HUGEPAGE. The range need not
// be aligned to huge pages; the kernel uses the aligned part. A kernel
// built without transparent huge pages answers EINVAL.
func madviseHuge(addr, n uintptr) error {
	const madvHugepage = 14 // MADV_HUGEPAGE, linux/mman-common.h
	if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, addr, n, madvHugepage); e != 0 {
		if e == syscall.EINVAL {
			return fmt.Errorf("%w (madvise: %v)", ErrUnavailable, e)
		}
		return e
	}
	return nil
}
