package codec

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Limit is what the target column's type modifier allows beyond the
// column type itself. PostgreSQL would change a value past it without a
// word (numeric(p,s) rounds to s fraction digits; varchar(n) drops
// trailing spaces past n characters), so the decoder turns such a value
// into ReasonOutOfRange instead. The zero Limit allows everything.
type Limit struct {
	Chars     int // text: at most this many characters; 0: no limit
	Precision int // numeric: at most Precision-Scale integer digits; 0: no limit
	Scale     int // numeric, with Precision: no non-zero digit past Scale fraction digits
}

// checkLimit checks the field the decoder just appended for c.
func (c *column) checkLimit(field []byte) *RowError {
	if len(field) < 4 || int32(binary.BigEndian.Uint32(field)) < 0 {
		return nil // NULL
	}
	v := field[4:]
	switch {
	case c.Limit.Chars > 0 && c.Type == TypeText:
		if n := utf8.RuneCount(v); n > c.Limit.Chars {
			return c.fail(ReasonOutOfRange, fmt.Sprintf("value of %d characters is longer than the column's %d", n, c.Limit.Chars))
		}
	case c.Limit.Precision > 0 && c.Type == TypeNumeric:
		return c.checkNumeric(v)
	}
	return nil
}

// checkNumeric checks a binary numeric against numeric(Precision, Scale):
// it must need no rounding and have at most Precision-Scale integer
// digits. NaN is accepted (PostgreSQL stores it in any numeric), the
// infinities are not.
func (c *column) checkNumeric(v []byte) *RowError {
	if len(v) < 8 {
		return nil
	}
	ndigits := int(int16(binary.BigEndian.Uint16(v)))
	weight := int(int16(binary.BigEndian.Uint16(v[2:])))
	switch binary.BigEndian.Uint16(v[4:]) {
	case 0xC000:
		return nil
	case 0xD000, 0xF000:
		return c.fail(ReasonOutOfRange, fmt.Sprintf("infinity does not fit numeric(%d,%d)", c.Limit.Precision, c.Limit.Scale))
	}
	digits := v[8:]
	first := -1 // index of the first non-zero base-10000 digit
	for i := 0; i < ndigits && 2*i+1 < len(digits); i++ {
		d := binary.BigEndian.Uint16(digits[2*i:])
		if d == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		// Digit i holds decimal places 4k-3 .. 4k after the point, k = i-weight.
		if k := i - weight; k > 0 && 4*k > c.Limit.Scale {
			keep := c.Limit.Scale - 4*(k-1) // places of this digit inside the scale
			if keep <= 0 || d%pow10u16[4-keep] != 0 {
				return c.fail(ReasonOutOfRange, fmt.Sprintf("value has non-zero digits past the column's %d fraction digits of numeric(%d,%d) and would be rounded", c.Limit.Scale, c.Limit.Precision, c.Limit.Scale))
			}
		}
	}
	if first < 0 {
		return nil // zero
	}
	d := binary.BigEndian.Uint16(digits[2*first:])
	if first > weight {
		// No integer part. A scale above the precision (numeric(2,5))
		// bounds the value below 10^(p-s): its first non-zero digit must
		// be at decimal place s-p+1 after the point or later.
		place := 4*(first-weight) - decimalDigits(d) + 1
		if min := c.Limit.Scale - c.Limit.Precision + 1; place < min {
			return c.fail(ReasonOutOfRange, fmt.Sprintf("value is at least 10^%d, the bound of numeric(%d,%d)", c.Limit.Precision-c.Limit.Scale, c.Limit.Precision, c.Limit.Scale))
		}
		return nil
	}
	intDigits := 4*(weight-first) + decimalDigits(d)
	if max := c.Limit.Precision - c.Limit.Scale; intDigits > max {
		return c.fail(ReasonOutOfRange, fmt.Sprintf("value has %d integer digits, more than the %d of numeric(%d,%d)", intDigits, max, c.Limit.Precision, c.Limit.Scale))
	}
	return nil
}

var pow10u16 = [...]uint16{1, 10, 100, 1000, 10000}

func decimalDigits(d uint16) int {
	switch {
	case d >= 1000:
		return 4
	case d >= 100:
		return 3
	case d >= 10:
		return 2
	}
	return 1
}
