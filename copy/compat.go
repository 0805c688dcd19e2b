package pgcopy

import (
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Limit is what a target column's type modifier allows of a value that its
// configured type can otherwise hold: the encoder must turn a value past it
// into a dead letter, since PostgreSQL would silently change it (numeric
// rounds to its scale, varchar drops trailing spaces past its length).
// The zero Limit allows everything.
type Limit struct {
	Chars     int // varchar(n): at most n characters; 0: no limit
	Precision int // numeric(p,s): at most p-s integer digits; 0: no limit
	Scale     int // numeric(p,s): no non-zero digit past s fraction digits (with Precision > 0)
}

// Type OIDs of the column types Sluice encodes, and of the target types it
// accepts them into.
const (
	oidBool        = 16
	oidInt2        = 21
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
)

// widenings lists, per configured type, the other target types that hold
// every value of it unchanged; the merge converts to them. The same type is
// always accepted.
var widenings = map[uint32][]uint32{
	oidText:   {oidVarchar},
	oidInt2:   {oidInt4, oidInt8, oidNumeric, oidFloat4, oidFloat8},
	oidInt4:   {oidInt8, oidNumeric, oidFloat8},
	oidInt8:   {oidNumeric},
	oidFloat4: {oidFloat8},
}

// typeNames names the target types that are also configurable column types.
var typeNames = map[uint32]string{
	oidText: "text", oidInt2: "int2", oidInt4: "int4", oidInt8: "int8", oidFloat4: "float4",
	oidFloat8: "float8", oidNumeric: "numeric", oidBool: "bool", oidUUID: "uuid",
	oidTimestamptz: "timestamptz", oidTimestamp: "timestamp", oidDate: "date",
	oidJSONB: "jsonb", oidJSON: "json", oidBytea: "bytea", oidVarchar: "text",
}

// intDigits is the number of decimal digits of the widest value of an
// integer type: a numeric(p,s) target must have p-s at least this.
var intDigits = map[uint32]int{oidInt2: 5, oidInt4: 10, oidInt8: 19}

// checkColumn decides whether the target column tc holds every value of
// column c (configured type OID cfg) unchanged. It returns the Limit the
// encoder must enforce, or an error that names the table, the column, both
// types and the fixes.
func checkColumn(t *Table, c Column, cfg uint32, tc targetColumn) (Limit, error) {
	refuse := func(why string) (Limit, error) {
		fix := fmt.Sprintf("change the column (ALTER TABLE %s ALTER COLUMN %s TYPE %s)", t.ident(), pgx.Identifier{c.Name}.Sanitize(), c.SQLType)
		if name, ok := typeNames[tc.baseOID]; ok && tc.baseOID != cfg {
			fix += fmt.Sprintf(" or configure type %s if its values fit it", name)
		}
		return Limit{}, fmt.Errorf("cannot write column %s.%s: the table stores %s but it is configured as %s, %s; %s",
			t.Name, c.Name, tc.typ, c.SQLType, why, fix)
	}
	base := tc.baseOID
	if base != cfg && !containsOID(widenings[cfg], base) {
		switch {
		case base == oidBpchar && cfg == oidText:
			return refuse("and character(n) pads and trims values")
		case (base == oidTimestamp && cfg == oidTimestamptz) || (base == oidTimestamptz && cfg == oidTimestamp):
			return refuse("and converting between timestamp and timestamptz depends on the session's time zone")
		case (base == oidJSON && cfg == oidJSONB) || (base == oidJSONB && cfg == oidJSON):
			return refuse("and json keeps the text as written while jsonb normalises it (key order, duplicate keys, spaces)")
		case base == oidText || base == oidVarchar:
			return refuse("and storing a value as text changes its type")
		}
		return refuse("which cannot hold every value of it unchanged")
	}
	mod := tc.typmod
	switch base {
	case oidVarchar:
		if mod >= 4 {
			return Limit{Chars: int(mod - 4)}, nil
		}
	case oidNumeric:
		if mod < 4 {
			return Limit{}, nil
		}
		// PostgreSQL 15 keeps the scale as 11 signed bits (it may be
		// negative), older versions as the low 16 bits, never above 1000.
		p, s := int((mod-4)>>16&0xffff), int(((mod-4)&0x7ff)^0x400)-0x400
		if s < 0 {
			return refuse("and a negative scale rounds every value to tens or more")
		}
		if d, ok := intDigits[cfg]; ok {
			if p-s < d {
				return refuse(fmt.Sprintf("and %d integer digits cannot hold every %s (up to %d digits)", p-s, c.SQLType, d))
			}
			return Limit{}, nil
		}
		return Limit{Precision: p, Scale: s}, nil
	case oidTimestamp, oidTimestamptz:
		if mod >= 0 && mod < 6 {
			return refuse(fmt.Sprintf("and precision %d rounds away the microseconds", mod))
		}
	}
	return Limit{}, nil
}

func containsOID(s []uint32, o uint32) bool {
	for _, v := range s {
		if v == o {
			return true
		}
	}
	return false
}
