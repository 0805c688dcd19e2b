package progress

import (
	"io"
	"os"
)

// IsTerminal reports whether w is a character device (a terminal), so
// output may rewrite lines and clear the screen. Anything else (a file, a
// pipe, a test buffer) gets plain lines.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
