package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// cdcFate is what can be known of a row touched by a fresh change whose
// delivery is unknown.
type cdcFate struct {
	acked    cdcRow   // the row after its last acked change (livePos -1: deleted)
	hasAcked bool     // some change of the row was acked
	later    []cdcRow // the row after each uncertain change after that one
}

// verifyCDC checks the target of a cdc workload: it replays the stream to
// the source table's final state (deletes applied, a TOASTed notes at its
// last value sent in full, dups and replays changing nothing) and
// compares the target with it row by row. A fresh change whose delivery is
// unknown may or may not have landed: the row must then hold the state
// after its last acked change or after one of the uncertain changes that
// followed it, and it is checked against the one whose lsn it holds.
// Dead letters are expected for the bad records of format avro only
// (cdcDeadLetters).
func (v *verifier) verifyCDC(ctx context.Context, conn *pgx.Conn) error {
	z := v.g.cdc
	if v.o.AllowStaleToast {
		z.history = map[int64][]cdcRow{}
		z.reset()
	}
	failed := map[int64]bool{}
	if s := v.o.Stats; s != nil {
		for _, i := range s.FailedIndices {
			failed[i] = true
		}
	}
	fate := map[int64]*cdcFate{} // rows touched by a fresh change of unknown fate
	var acked []cdcRow           // by id-1: the row after its last acked change
	var uncertainBad KindCounts  // bad records of unknown fate, by kind
	var r Rec
	for i := range v.gen.Records {
		v.g.At(i, &r)
		fresh := r.Kind == KindGood || r.Kind == KindUpdate || r.Kind == KindDelete
		for fresh && r.ID > int64(len(acked)) {
			acked = append(acked, cdcRow{at: -1})
		}
		if failed[i] {
			v.rep.Uncertain++
			uncertainBad[r.Kind]++
			if fresh {
				f := fate[r.ID]
				if f == nil {
					f = &cdcFate{acked: acked[r.ID-1], hasAcked: acked[r.ID-1].at >= 0}
					fate[r.ID] = f
				}
				f.later = append(f.later, z.rows[r.ID-1])
			}
			continue
		}
		v.rep.Committed[r.Kind]++
		if fresh {
			acked[r.ID-1] = z.rows[r.ID-1]
			if f := fate[r.ID]; f != nil {
				// An acked change fixes the row again: an uncertain one
				// before it can only have left notes behind a TOAST
				// placeholder (see checkCDCRow).
				f.acked, f.hasAcked, f.later = z.rows[r.ID-1], true, f.later[:0]
			}
		}
	}
	v.rep.ToastSent = z.toasts
	v.rep.ExpectedRows = int64(len(z.live))
	v.rep.Expect = "the source table's final state (inserts, updates, deletes; replays rejected by the guard lsn; TOASTed notes at their last value)"

	// Dead letters: one for each bad record (format avro), none else.
	if err := v.cdcDeadLetters(ctx, conn, &uncertainBad); err != nil {
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
	for rows.Next() {
		raw := rows.RawValues()
		v.rep.Rows++
		id, err := strconv.ParseInt(string(raw[0]), 10, 64)
		if err != nil || id < 1 || id > int64(len(z.rows)) {
			v.rep.Unexpected++
			v.rep.example("unexpected rows", v.o.MaxExamples, "id %s was never inserted in the source", raw[0])
			continue
		}
		if seen[id-1] {
			v.rep.Duplicated++ // only without a primary key
			v.rep.example("duplicated rows", v.o.MaxExamples, "id %d has several rows", id)
			continue
		}
		seen[id-1] = true
		row := &z.rows[id-1]
		f := fate[id]
		if f != nil && len(f.later) > 0 {
			// The state the row's lsn names, among those that may be final.
			cands := f.later
			if f.hasAcked {
				cands = append([]cdcRow{f.acked}, f.later...)
			}
			row = nil
			for k := range cands {
				if cands[k].livePos >= 0 && strconv.FormatInt(z.lsn(cands[k].at), 10) == string(raw[6]) {
					row = &cands[k]
					break
				}
			}
			if row == nil {
				v.rep.WrongValue++
				v.rep.example("wrong-valued rows", v.o.MaxExamples, "id %d: lsn %s is not that of its last acked change or of a later uncertain one", id, raw[6])
				continue
			}
		} else if row.livePos < 0 {
			v.rep.Unexpected++
			v.rep.example("unexpected rows", v.o.MaxExamples, "id %d was deleted in the source (its last change, record %d, lsn %d), but the target holds it with lsn %s",
				id, row.at, z.lsn(row.at), raw[6])
			continue
		}
		v.checkCDCRow(id, raw, row, f != nil)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read table %s: %w", v.o.Table, err)
	}
	for _, id := range z.live {
		if !seen[id-1] && !mayBeGone(fate[id]) {
			v.rep.Missing++
			v.rep.example("missing rows", v.o.MaxExamples, "id %d (last changed by record %d, lsn %d)", id, z.rows[id-1].at, z.lsn(z.rows[id-1].at))
		}
	}
	return nil
}

// mayBeGone reports whether a row's final state may be deleted or never
// inserted: its last acked change deleted it or there is none, or an
// uncertain delete followed. A row without uncertain changes after its
// last acked one (f nil or f.later empty) is judged by the source table.
func mayBeGone(f *cdcFate) bool {
	if f == nil || len(f.later) == 0 {
		return false
	}
	if !f.hasAcked || f.acked.livePos < 0 {
		return true
	}
	for _, c := range f.later {
		if c.livePos < 0 {
			return true
		}
	}
	return false
}

// checkCDCRow compares a target row with the source state row. touched
// says an earlier change of the row had an unknown delivery: if it did not
// land, a TOAST placeholder after it keeps the notes stored before it.
func (v *verifier) checkCDCRow(id int64, raw [][]byte, row *cdcRow, touched bool) {
	z := v.g.cdc
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
	want := strconv.AppendInt(nil, z.lsn(row.at), 10)
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
		return
	}
	what := fmt.Sprintf("id %d (last changed by record %d): %s", id, row.at, diff)
	if !notesOK && row.toast {
		if touched && v.onlyNotesWrong(raw, row) {
			return // the notes of a change that may not have landed
		}
		v.rep.ToastStale++
		what += " (its last change sent notes as the TOAST placeholder)"
		if v.o.AllowStaleToast && v.earlierNotes(id, raw[4]) && v.onlyNotesWrong(raw, row) {
			v.rep.example("stale TOAST notes (allowed)", v.o.MaxExamples, "%s", what)
			return
		}
	}
	v.rep.WrongValue++
	v.rep.example("wrong-valued rows", v.o.MaxExamples, "%s", what)
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

// cdcDeadLetters counts the target's dead letters. Each bad record (the
// framing kinds of format avro) must have one whose error names its
// kind's reason; they are matched by reason and counted, within the
// committed and uncertain bad records of each kind. Any other dead
// letter is unexpected.
func (v *verifier) cdcDeadLetters(ctx context.Context, conn *pgx.Conn, uncertainBad *KindCounts) error {
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
		kind := Kind(0)
		for k := KindWrongMagic; k <= KindUnknownSchema; k++ {
			if v.rep.Committed[k]+uncertainBad[k] > 0 && bytes.Contains(raw[3], []byte(reasonFor(k, v.gen.Format))) {
				kind = k
				break
			}
		}
		key, _ := decodeByteaText(raw[2], nil)
		switch {
		case kind == 0:
			v.rep.DeadLetterUnexpected++
			v.rep.example("unexpected dead letters", v.o.MaxExamples, "partition %s offset %s, key %s: %s", raw[0], raw[1], key, raw[3])
		case v.rep.DeadLettersByKind[kind] >= v.rep.Committed[kind]+uncertainBad[kind]:
			v.rep.DeadLetterDuplicated++
			v.rep.example("duplicated dead letters", v.o.MaxExamples, "partition %s offset %s, key %s: one %s dead letter more than the %s records sent", raw[0], raw[1], key, kind, kind)
		default:
			v.rep.DeadLettersByKind[kind]++
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read %s.dead_letters: %w", v.o.Schema, err)
	}
	for k := KindWrongMagic; k <= KindUnknownSchema; k++ {
		if n := v.rep.Committed[k] - v.rep.DeadLettersByKind[k]; n > 0 {
			v.rep.DeadLetterMissing[k] += n
			v.rep.example("missing dead letters", v.o.MaxExamples, "%d committed %s records have no dead letter naming %s", n, k, reasonFor(k, v.gen.Format))
		}
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
