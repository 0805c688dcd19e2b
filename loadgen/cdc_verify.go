package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
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
// Dead letters are expected for the bad records of format avro only, one
// for each, matched to it by its bytes (cdcDeadLetters).
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
	var bad []*badRec            // the bad records, in stream order
	v.byValue, v.hseed, v.badVal = true, maphash.MakeSeed(), map[uint64]*badRec{}
	var r Rec
	for i := range v.gen.Records {
		v.g.At(i, &r)
		fresh := r.Kind == KindGood || r.Kind == KindUpdate || r.Kind == KindDelete
		for fresh && r.ID > int64(len(acked)) {
			acked = append(acked, cdcRow{at: -1})
		}
		if r.Kind.Bad() {
			// Kept as sent: matching a dead letter must not replay the
			// stream.
			b := &badRec{index: i, kind: r.Kind, committed: !failed[i], uncertain: failed[i], key: bytes.Clone(r.Key), val: bytes.Clone(r.Value)}
			h := maphash.Bytes(v.hseed, b.val)
			b.same, v.badVal[h] = v.badVal[h], b
			bad = append(bad, b)
		}
		if failed[i] {
			v.rep.Uncertain++
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
	if err := v.cdcDeadLetters(ctx, conn, bad); err != nil {
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

// cdcDeadLetters checks the target's dead letters as readDeadLetters does
// those of a stream keyed by value: each is matched to the bad record
// (the framing kinds of format avro) whose value it carries, and must
// carry its key, name its kind's reason and sit on the partition its key
// hashes to (when the run recorded the topic's partitions), at a
// position no other dead letter holds. A committed bad record needs
// exactly one, an uncertain one at most one; one that matches no bad
// record is a good change's (cdcOtherDeadLetters) or unexpected.
func (v *verifier) cdcDeadLetters(ctx context.Context, conn *pgx.Conn, bad []*badRec) error {
	v.keyPart = kgo.StickyKeyPartitioner(nil).ForTopic(v.gen.Topic)
	v.positions = map[kafkaPos]struct{}{}
	var other []cdcDeadLetter
	v.cdcOther = &other
	defer func() { v.cdcOther = nil }()
	if err := v.readDeadLetters(ctx, conn); err != nil {
		return err
	}
	for _, b := range bad {
		if b.committed && b.dead == 0 {
			v.rep.DeadLetterMissing[b.kind]++
			v.rep.example("missing dead letters", v.o.MaxExamples, "record %d (%s, key %q): no dead letter carries it", b.index, b.kind, b.key)
		}
	}
	v.cdcOtherDeadLetters(other)
	return nil
}

// cdcDeadLetter is a dead letter of the cdc workload that no bad record
// matches.
type cdcDeadLetter struct {
	where         string
	key, val, err []byte
	good          bool
}

// cdcOtherDeadLetters reports the dead letters no bad record matched:
// those carrying a good change's key and value (acked or uncertain: a
// good change is never rejected) and the unexpected rest. It replays the
// stream once when there are any, ending where verifyCDC left it.
func (v *verifier) cdcOtherDeadLetters(other []cdcDeadLetter) {
	if len(other) == 0 {
		return
	}
	byVal := map[uint64][]int{}
	for k := range other {
		h := maphash.Bytes(v.hseed, other[k].val)
		byVal[h] = append(byVal[h], k)
	}
	var r Rec
	for i := range v.gen.Records {
		v.g.At(i, &r)
		if r.Kind.Bad() || r.Value == nil {
			continue
		}
		for _, k := range byVal[maphash.Bytes(v.hseed, r.Value)] {
			d := &other[k]
			if !d.good && bytes.Equal(d.val, r.Value) && bytes.Equal(d.key, r.Key) {
				d.good = true
				v.rep.GoodDeadLettered++
				v.rep.example("good records dead-lettered", v.o.MaxExamples, "%s: record %d (%s of row %d): error %q", d.where, i, r.Kind, r.ID, d.err)
			}
		}
	}
	for _, d := range other {
		if !d.good {
			v.rep.DeadLetterUnexpected++
			v.rep.example("unexpected dead letters", v.o.MaxExamples, "%s: a value of %d bytes (key %q) that no record carries: %s", d.where, len(d.val), d.key, d.err)
		}
	}
}

// abbrev shortens a long value for an example line.
func abbrev(b []byte) string {
	if len(b) > 60 {
		return string(b[:28]) + "…" + string(b[len(b)-28:])
	}
	return string(b)
}
