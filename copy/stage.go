package pgcopy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// createStage creates the connection's staging table for a keyed table:
// (sluice_seq, columns) with each column of the target's own type (domains,
// typmods and NOT NULL included, so COPY itself rejects bad tuples and names
// their line) when the configured type has the same wire format, and of the
// configured type otherwise (the merge then converts).
//
// It is a temporary table ON COMMIT DELETE ROWS: no WAL, no catalog churn
// per batch, emptied by the commit that used it and gone with the session.
// It is created once per session: a call on the connection that already
// holds it does nothing.
func (w *Writer) createStage(ctx context.Context, conn *pgconn.PgConn, t *Table, st *tableState) error {
	if st.stagedOn == conn {
		return nil
	}
	ts := st.sql
	cols, err := describeTarget(ctx, conn, t)
	if err != nil {
		return err
	}
	oids, err := resolveTypes(ctx, conn, t)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("CREATE TEMP TABLE IF NOT EXISTS " + ts.stage[len(`"pg_temp".`):] + " (" + pgx.Identifier{seqColumn}.Sanitize() + " int8 NOT NULL")
	// The direct path applies to both policies; under update its guard,
	// when there is one, must be an int8 the writer can compare in Go.
	direct := true
	st.guardField = -1
	if t.OnConflict == PolicyUpdate && t.OffsetColumn != "" {
		g := slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == t.OffsetColumn })
		direct = g >= 0 && oids[g] == oidInt8
		st.guardField = 1 + g
	}
	if t.OnConflict == PolicyUpdate && t.Changes {
		direct = false
	}
	types := make([]string, len(t.Columns)) // of the ops stage
	casts := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		tc, ok := cols[c.Name]
		if !ok {
			return fmt.Errorf("cannot find column %q in table %s: add it or remove it from the configuration, then run sluice migrate", c.Name, t.Name)
		}
		b.WriteString(", " + pgx.Identifier{c.Name}.Sanitize() + " ")
		direct = direct && sameWireFormat(oids[i], tc.baseOID)
		if sameWireFormat(oids[i], tc.baseOID) {
			// The target's collation too: DISTINCT ON and the ops
			// stage's key query group keys as the target's unique
			// index compares them.
			b.WriteString(tc.typ + tc.collate)
			if tc.notNull {
				b.WriteString(" NOT NULL")
			}
			types[i] = tc.typ + tc.collate
		} else {
			b.WriteString(c.SQLType)
			types[i], casts[i] = c.SQLType, "::"+tc.typ
		}
	}
	b.WriteString(") ON COMMIT DELETE ROWS")
	w.roundTrip()
	if err := execSimple(ctx, conn, b.String()); err != nil {
		return fmt.Errorf("cannot create the staging table for %s: %w", t.Name, err)
	}
	st.keyFields, st.keyOIDs = st.keyFields[:0], st.keyOIDs[:0]
	var keyTypes []string
	for _, k := range t.Key {
		i := slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == k })
		st.keyFields = append(st.keyFields, 1+i)
		st.keyOIDs = append(st.keyOIDs, oids[i])
		keyTypes = append(keyTypes, t.Columns[i].SQLType)
		// The direct path groups, claims and filters keys by their
		// bytes: a key PostgreSQL holds equal to another spelling of it
		// (numeric 1.0 and 1.00, float -0 and 0, character(n) 'a' and
		// 'a ', text under a nondeterministic collation) is left to the
		// staging merge, whose DISTINCT ON groups keys as the unique
		// index compares them.
		direct = direct && byteKey(cols[k])
	}
	st.direct = direct
	st.probe = probeSQL(t, keyTypes)
	st.probeGuard = probeGuardSQL(t, keyTypes)
	// Whether the writer may resolve change batches' keys (resolve.go).
	st.opsResolve, st.opsGuard = true, -1
	for _, f := range st.keyFields {
		tc := cols[t.Columns[f-1].Name]
		st.opsResolve = st.opsResolve && casts[f-1] == "" && byteKey(tc)
	}
	if t.OffsetColumn != "" {
		g := slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == t.OffsetColumn })
		st.opsGuard = 1 + g
		st.opsResolve = st.opsResolve && g >= 0 && oids[g] == oidInt8 && casts[g] == ""
	}
	// The ops stage is created on the first batch that needs it.
	st.opsTypes, st.opsCasts = types, casts
	st.ops, st.opsOn = nil, nil
	st.stagedOn = conn
	return nil
}
