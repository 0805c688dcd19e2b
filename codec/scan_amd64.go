package codec

// scanSpecial returns n ≤ len(s) such that no byte of s[:n] needs attention
// inside a JSON string (see specialBytes). It looks at s 16 bytes at a time
// (SSE2, which every amd64 CPU has): n is the index of the first byte that
// needs attention when that byte lies in the whole 16-byte chunks of s,
// else len(s) rounded down to 16. Reading only whole chunks, it never reads
// past s.
//
//go:noescape
func scanSpecial(s []byte) int
