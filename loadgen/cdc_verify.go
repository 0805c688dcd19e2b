package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// verifyCDC checks the target of a cdc workload: it replays the stream to
// the source table's final state (deletes applied, a TOASTed notes at its
// last value sent in full, dups and replays changing nothing) and
// compares the target with it row by row. A row touched by a record whose
// delivery is unknown is accepted in any state. Any dead letter for the
// target is an anomaly: every record of the workload is valid.
func (v *verifier) verifyCDC(ctx context.Context, conn *pgx.Conn) error {
	z := v.g.cdc
	if v.o.AllowStaleToast {
		z.history = map[int64][]cdcRow{}
		z.reset()
	}
	uncertain := map[int64]bool{} // rows touched by a fresh change of unknown fate
	failed := map[int64]bool{}
	if s := v.o.Stats; s != nil {
		for _, i := range s.FailedIndices {
			failed[i] = true
		}
	}
	var r Rec
	for i := range v.gen.Records {
		v.g.At(i, &r)
		if failed[i] {
			v.rep.Uncertain++
			if r.Kind == KindGood || r.Kind == KindUpdate || r.Kind == KindDelete {
				uncertain[r.ID] = true
			}
			continue
		}
		v.rep.Committed[r.Kind]++
	}
	v.rep.ToastSent = z.toasts
	v.rep.ExpectedRows = int64(len(z.live))
	v.rep.Expect = "the source table's final state (inserts, updates, deletes; replays rejected by the guard lsn; TOASTed notes at their last value)"

	// Dead letters: none are expected.
	if err := v.cdcDeadLetters(ctx, conn); err != nil {
		return err
	}

	where := ""
	if v.o.Where != "" {
		where = " WHERE " + v.o.Where
	}
	rows, err := conn.Query(ctx, `SELECT id, customer, total, status, notes, updated_at, lsn FROM `+quoteQualified(v.o.Table)+where)
	if err != nil {
		return fmt.Errorf("cannot read table %s: %w (is --table the cdc workload's target, with columns id, customer, total, status, notes, updated_at, lsn?)", v.o.Table, err)
	}
	defer rows.Close()
	seen := make([]bool, len(z.rows))
	var want []byte
	for rows.Next() {
		raw := rows.RawValues()
		v.rep.Rows++
		id, err := strconv.ParseInt(string(raw[0]), 10, 64)
		if err != nil || id < 1 || id > int64(len(z.rows)) {
			v.rep.Unexpected++
			v.rep.example("unexpected rows", v.o.MaxExamples, "id %s was never inserted in the source", raw[0])
			continue
		}
		row := &z.rows[id-1]
		if seen[id-1] {
			v.rep.Duplicated++ // only without a primary key
			v.rep.example("duplicated rows", v.o.MaxExamples, "id %d has several rows", id)
			continue
		}
		seen[id-1] = true
		if uncertain[id] {
			continue
		}
		if row.livePos < 0 {
			v.rep.Unexpected++
			v.rep.example("unexpected rows", v.o.MaxExamples, "id %d was deleted in the source (its last change, record %d, lsn %d), but the target holds it with lsn %s",
				id, row.at, z.lsn(row.at), raw[6])
			continue
		}
		diff := ""
		col := func(name string, got, want []byte, eq bool) {
			if diff == "" && !eq {
				g := "NULL"
				if got != nil {
					g = strconv.Quote(abbrev(got))
				}
				w := "NULL"
				if want != nil {
					w = strconv.Quote(abbrev(want))
				}
				diff = fmt.Sprintf("%s is %s, want %s", name, g, w)
			}
		}
		want = strconv.AppendInt(want[:0], z.lsn(row.at), 10)
		col("lsn", raw[6], want, bytes.Equal(raw[6], want))
		col("customer", raw[1], []byte(cdcCustomers[row.customer]), bytes.Equal(raw[1], []byte(cdcCustomers[row.customer])))
		want = appendFixed(want[:0], row.total, 2)
		col("total", raw[2], want, raw[2] != nil && equalDecimal(raw[2], want))
		col("status", raw[3], []byte(cdcStatuses[row.status]), bytes.Equal(raw[3], []byte(cdcStatuses[row.status])))
		notesOK := true
		if row.notesNull {
			notesOK = raw[4] == nil
			col("notes", raw[4], nil, notesOK)
		} else {
			want = appendCorpus(want[:0], int(row.notesOff), int(row.notesLen))
			notesOK = raw[4] != nil && bytes.Equal(raw[4], want)
			col("notes", raw[4], want, notesOK)
		}
		us := z.micros(row.at)
		wantTime := time.UnixMicro(us).UTC()
		got, terr := time.Parse("2006-01-02 15:04:05.999999999-07", string(raw[5]))
		col("updated_at", raw[5], []byte(wantTime.Format("2006-01-02 15:04:05.999999-07")), terr == nil && got.Equal(wantTime))
		if diff == "" {
			continue
		}
		what := fmt.Sprintf("id %d (last changed by record %d): %s", id, row.at, diff)
		if !notesOK && row.toast {
			v.rep.ToastStale++
			what += " (its last change sent notes as the TOAST placeholder)"
			if v.o.AllowStaleToast && v.earlierNotes(id, raw[4]) && v.onlyNotesWrong(raw, row) {
				v.rep.example("stale TOAST notes (allowed)", v.o.MaxExamples, "%s", what)
				continue
			}
		}
		v.rep.WrongValue++
		v.rep.example("wrong-valued rows", v.o.MaxExamples, "%s", what)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read table %s: %w", v.o.Table, err)
	}
	for _, id := range z.live {
		if !seen[id-1] && !uncertain[id] {
			v.rep.Missing++
			v.rep.example("missing rows", v.o.MaxExamples, "id %d (last changed by record %d, lsn %d)", id, z.rows[id-1].at, z.lsn(z.rows[id-1].at))
		}
	}
	return nil
}

// earlierNotes reports whether notes is NULL or a value row id's notes
// held before its current one.
func (v *verifier) earlierNotes(id int64, notes []byte) bool {
	if notes == nil {
		return true
	}
	var b []byte
	for _, old := range v.g.cdc.history[id] {
		if !old.notesNull && bytes.Equal(notes, appendCorpus(b[:0], int(old.notesOff), int(old.notesLen))) {
			return true
		}
	}
	return false
}

// onlyNotesWrong reports whether the row's other columns are right.
func (v *verifier) onlyNotesWrong(raw [][]byte, row *cdcRow) bool {
	z := v.g.cdc
	got, err := time.Parse("2006-01-02 15:04:05.999999999-07", string(raw[5]))
	return err == nil && got.Equal(time.UnixMicro(z.micros(row.at))) &&
		string(raw[6]) == strconv.FormatInt(z.lsn(row.at), 10) &&
		string(raw[1]) == cdcCustomers[row.customer] && string(raw[3]) == cdcStatuses[row.status] &&
		raw[2] != nil && equalDecimal(raw[2], appendFixed(nil, row.total, 2))
}

// cdcDeadLetters counts the target's dead letters: all unexpected.
func (v *verifier) cdcDeadLetters(ctx context.Context, conn *pgx.Conn) error {
	alt := altTableName(v.o.Table)
	q := fmt.Sprintf(`SELECT partition, "offset", key, error FROM %s.dead_letters
WHERE topic = $1 AND target IN ($2, $3) AND ($4 = '' OR group_id = $4)`, pgx.Identifier{v.o.Schema}.Sanitize())
	rows, err := conn.Query(ctx, q, v.gen.Topic, v.o.Table, alt, v.o.Group)
	if err != nil {
		return fmt.Errorf("cannot read %s.dead_letters: %w (is --schema-name the appliance's schema?)", v.o.Schema, err)
	}
	defer rows.Close()
	for rows.Next() {
		raw := rows.RawValues()
		v.rep.DeadLetters++
		v.rep.DeadLetterUnexpected++
		key, _ := decodeByteaText(raw[2], nil)
		v.rep.example("unexpected dead letters", v.o.MaxExamples, "partition %s offset %s, key %s: %s", raw[0], raw[1], key, raw[3])
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read %s.dead_letters: %w", v.o.Schema, err)
	}
	return nil
}

// abbrev shortens a long value for an example line.
func abbrev(b []byte) string {
	if len(b) > 60 {
		return string(b[:28]) + "…" + string(b[len(b)-28:])
	}
	return string(b)
}
