package progress

import (
	"io"
	"os"
)

// IsTerminal reports whether w is a character device (a terminal), so
// output may rewrite lines and clear the screen. Anything else (a file, a
// pipe, a test buffer) gets plain lines. A wrapper (a writer that adds a
// lock, say) is seen through when it has an Unwrap() io.Writer method.
func IsTerminal(w io.Writer) bool {
	for {
		u, ok := w.(interface{ Unwrap() io.Writer })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
