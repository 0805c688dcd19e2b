//go:build !amd64

package codec

// scanSpecial scans nothing where no vector scan is wired in: parseString's
// eight-byte loop does all the work.
func scanSpecial([]byte) int { return 0 }
