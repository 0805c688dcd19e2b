package codec

import (
	"encoding/binary"
	"fmt"
	"time"
)

// pgEpochMicros is PostgreSQL's epoch (2000-01-01 UTC) in Unix
// microseconds.
const pgEpochMicros = 946684800 * 1_000_000

// dayMicros is a day in microseconds; minDateDays and maxDateDays bound the
// days since PostgreSQL's epoch whose Unix microseconds fit an int64.
const (
	dayMicros   = 86400_000_000
	minDateDays = (-1<<63 - pgEpochMicros) / dayMicros
	maxDateDays = (1<<63 - 1 - pgEpochMicros) / dayMicros
)

// checkNotBefore checks the time field the decoder just appended for c
// against c.NotBefore. NULL passes (Required decides about it).
func (c *column) checkNotBefore(field []byte) *RowError {
	if len(field) < 4 || int32(binary.BigEndian.Uint32(field)) < 0 {
		return nil
	}
	v := field[4:]
	var us int64
	switch {
	case (c.Type == TypeTimestamptz || c.Type == TypeTimestamp) && len(v) == 8:
		us = int64(binary.BigEndian.Uint64(v))
		if us >= 1<<63-1-pgEpochMicros {
			return nil // infinity, or as far in the future
		}
		if us != -1<<63 { // not -infinity
			us += pgEpochMicros
		}
	case c.Type == TypeDate && len(v) == 4:
		// A date's microseconds pass int64 after year 294,276, and
		// PostgreSQL's dates reach 5,874,897: later days (infinity among
		// them) are newer than any floor, earlier ones (-infinity) older.
		days := int64(int32(binary.BigEndian.Uint32(v)))
		switch {
		case days > maxDateDays:
			return nil
		case days < minDateDays:
			us = -1 << 63
		default:
			us = days*dayMicros + pgEpochMicros
		}
	default:
		return nil
	}
	if nb := c.NotBefore.Load(); us < nb {
		return c.fail(ReasonExpired, fmt.Sprintf("value %s is older than the table's retention keeps (not before %s); its partition is dropped",
			time.UnixMicro(us).UTC().Format(time.RFC3339Nano), time.UnixMicro(nb).UTC().Format(time.RFC3339)))
	}
	return nil
}
