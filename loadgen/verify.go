package loadgen

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/redact"
)

// VerifyOptions says what was sent and where it should have landed.
type VerifyOptions struct {
	// Gen are the generation options of the loadgen run (from the manifest
	// or the same flags). Gen.Records is the number of records produced
	// unless Stats is set.
	Gen Options
	// Stats, from the run's manifest, gives the exact record count and the
	// records and transactions whose outcome is unknown. Without it every
	// record 0..Gen.Records-1 is assumed delivered as designed.
	Stats *Stats
	// Table is the target table, default "public.events".
	Table string
	// Schema is the PostgreSQL schema of dead_letters, default "sluice".
	Schema string
	// Group, when set, is the consumer group whose dead letters are read.
	// Dead letters are always read for Table only (their target), so
	// several groups or tables reading one topic do not count each
	// other's.
	Group string
	// OnConflict is the table's policy for a key seen again: "ignore"
	// (default: the first committed occurrence's values), "update" (the
	// last, see Guard), or "any" (any committed occurrence). Keyless
	// tables expect one row per committed occurrence.
	//
	// "First" and "last" are by Kafka offset, which orders an event's
	// occurrences only when they share a partition (Gen.Keys event-id or
	// other-field). With null keys an event's versions are spread over
	// partitions: under ignore any committed version may be the first to
	// land, so any is accepted (exactly one row per event is still
	// required), and update needs Guard "version".
	OnConflict string
	// Guard is the table's guard column under update: "" or "offset" (the
	// kafka.offset column: the last committed occurrence in offset order
	// wins, a re-send of an old version included), or "version" (the
	// event's version field: the newest committed version wins).
	Guard string
	// AllowStaleToast (cdc workload) loosens one check: where a row's
	// last change sent notes as the TOAST placeholder, its notes may be
	// NULL (even if the row's notes never were) or any value the row's
	// notes held before, as long as every other column is right. Verify
	// does not know the appliance's batches, so it accepts this whether or
	// not the placeholder shared a batch with the change it would be
	// stale from. Sluice keeps the value stored before the batch, so a
	// placeholder whose row was inserted, or whose notes changed, earlier
	// in the same batch lands with that older value (docs/change-streams.md,
	// "Unchanged TOAST columns"). Such rows are counted in
	// Report.ToastStale either way.
	AllowStaleToast bool
	// MaxExamples bounds the examples kept per anomaly; default 5.
	MaxExamples int
	// Where, when set, is an SQL condition on the table's rows: rows it
	// excludes are not loadgen's (rows a benchmark put there beforehand)
	// and are not checked.
	Where string
}

// Report is the outcome of Verify. Every field named as an anomaly must be
// zero for OK.
type Report struct {
	Table string
	// Workload is the stream's workload (events or cdc).
	Workload string
	// Expect says which committed version of an event the row must hold.
	Expect       string
	Records      int64      // records produced (indices 0..Records-1)
	Committed    KindCounts // records committed, by kind
	Aborted      KindCounts // records in aborted transactions, by kind
	Uncertain    int64      // records whose delivery is unknown: each may or may not have landed
	ExpectedRows int64      // rows the target should hold
	Rows         int64      // rows found in the target
	DeadLetters  int64      // dead letters found for the topic
	// UncertainTxns counts the transactions whose commit outcome is
	// unknown; LandedTxns lists those the report reads as committed (each
	// landed whole or not at all).
	UncertainTxns int64
	LandedTxns    []int64
	// DeadLettersByKind counts dead letters matched to a bad record, by kind;
	// it must equal Committed for every bad kind.
	DeadLettersByKind KindCounts

	// Anomalies in the target table.
	Missing     int64 // committed events without a row
	Duplicated  int64 // rows beyond the expected count for an event
	Unexpected  int64 // rows whose id was never sent
	FromAborted int64 // rows whose id was sent only in aborted transactions
	WrongValue  int64 // rows whose columns differ from what was sent
	BadInTarget int64 // rows for records that must have been dead-lettered
	// WrongPosition counts rows and dead letters whose Kafka position
	// (kafka.partition, kafka.offset) is another row's or dead letter's,
	// negative, or on a partition the record cannot have been written to.
	WrongPosition int64
	// Anomalies in the dead-letter table.
	DeadLetterMissing    KindCounts // committed bad records without a dead letter, by kind
	DeadLetterDuplicated int64      // dead letters beyond one for a record
	DeadLetterUnexpected int64      // dead letters whose key was never sent
	DeadLetterAborted    int64      // dead letters for records of aborted transactions
	DeadLetterWrongValue int64      // dead letters whose value differs from the record's
	GoodDeadLettered     int64      // dead letters for good records
	InBoth               int64      // records both in the target and in dead letters

	// ToastSent counts the cdc workload's updates that sent notes as
	// the TOAST placeholder; ToastStale the wrong-valued rows (counted in
	// WrongValue too) whose notes is wrong while their last change sent
	// it as the placeholder: the stored value was kept where the source's
	// last value sent in full was due.
	ToastSent, ToastStale int64

	// ReasonMismatch counts dead letters whose error does not name the
	// reason of the record's kind: the generator makes each bad record
	// with exactly one problem, so the appliance has one reason to give.
	ReasonMismatch int64

	// Examples holds up to MaxExamples descriptions per anomaly.
	Examples map[string][]string
	Elapsed  time.Duration
}

// OK reports whether the report shows no anomaly.
func (r *Report) OK() bool { return r.anomalies() == 0 }

func (r *Report) anomalies() int64 {
	return r.Missing + r.Duplicated + r.Unexpected + r.FromAborted + r.WrongValue + r.BadInTarget +
		r.WrongPosition + r.DeadLetterMissing.Total() + r.DeadLetterDuplicated + r.DeadLetterUnexpected +
		r.DeadLetterAborted + r.DeadLetterWrongValue + r.GoodDeadLettered + r.InBoth + r.ReasonMismatch
}

// WriteSummary writes a human-readable summary of r to w.
func (r *Report) WriteSummary(w io.Writer) {
	verdict := "OK: exactly once"
	if !r.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "verify %s: %s (%v)\n", r.Table, verdict, r.Elapsed.Round(time.Millisecond))
	if r.Workload == WorkloadCDC {
		fmt.Fprintf(w, "  sent:         %d change records; committed %d (insert %d, update %d, delete %d, tombstone %d, dup %d, replay %d); uncertain %d; %d TOAST placeholders\n",
			r.Records, r.Committed.Total(), r.Committed[KindGood], r.Committed[KindUpdate], r.Committed[KindDelete], r.Committed[KindTombstone],
			r.Committed[KindDup], r.Committed[KindReplay], r.Uncertain, r.ToastSent)
		if bad := r.Committed.Bad(); bad != 0 {
			fmt.Fprintf(w, "                %d bad records (format avro), each for a dead letter\n", bad)
		}
	} else {
		fmt.Fprintf(w, "  sent:         %d records; committed %d (good %d, dup %d, update %d, bad %d); aborted %d; uncertain %d\n",
			r.Records, r.Committed.Total(), r.Committed[KindGood], r.Committed[KindDup], r.Committed[KindUpdate], r.Committed.Bad(), r.Aborted.Total(), r.Uncertain)
	}
	if r.UncertainTxns != 0 {
		fmt.Fprintf(w, "  unknown-outcome transactions: %d, read as committed: %v (each lands whole or not at all)\n", r.UncertainTxns, r.LandedTxns)
	}
	if r.Expect != "" {
		fmt.Fprintf(w, "  each row:     %s\n", r.Expect)
	}
	fmt.Fprintf(w, "  target:       %d rows, expected %d\n", r.Rows, r.ExpectedRows)
	fmt.Fprintf(w, "  dead letters: %d, expected %d\n", r.DeadLetters, r.Committed.Bad())
	for k := KindMalformedJSON; k < numKinds; k++ {
		if r.Committed[k] != 0 || r.DeadLettersByKind[k] != 0 {
			fmt.Fprintf(w, "    %-16s %d of %d\n", k, r.DeadLettersByKind[k], r.Committed[k])
		}
	}
	line := func(name string, n int64) {
		if n != 0 {
			fmt.Fprintf(w, "  %-26s %d\n", name+":", n)
			for _, e := range r.Examples[name] {
				fmt.Fprintf(w, "      %s\n", e)
			}
		}
	}
	line("missing rows", r.Missing)
	line("duplicated rows", r.Duplicated)
	line("unexpected rows", r.Unexpected)
	line("rows from aborted txns", r.FromAborted)
	line("wrong-valued rows", r.WrongValue)
	if r.ToastStale != 0 {
		fmt.Fprintf(w, "  stale TOAST notes:         %d (the last change sent the placeholder; the value stored before its batch was kept)\n", r.ToastStale)
		for _, e := range r.Examples["stale TOAST notes (allowed)"] {
			fmt.Fprintf(w, "      %s\n", e)
		}
	}
	line("bad records in target", r.BadInTarget)
	line("wrong Kafka positions", r.WrongPosition)
	line("missing dead letters", r.DeadLetterMissing.Total())
	line("duplicated dead letters", r.DeadLetterDuplicated)
	line("unexpected dead letters", r.DeadLetterUnexpected)
	line("dead letters from aborted", r.DeadLetterAborted)
	line("wrong-valued dead letters", r.DeadLetterWrongValue)
	line("good records dead-lettered", r.GoodDeadLettered)
	line("in target and dead letters", r.InBoth)
	line("dead letters with another reason", r.ReasonMismatch)
}

func (r *Report) example(name string, max int, format string, args ...any) {
	if len(r.Examples[name]) < max {
		if r.Examples == nil {
			r.Examples = make(map[string][]string)
		}
		r.Examples[name] = append(r.Examples[name], fmt.Sprintf(format, args...))
	}
}

// occ is what verify knows about one good event id. An occurrence is
// acked (committed: it must have landed) or uncertain (it may or may not
// have landed); uncertainty never excuses the acked ones.
type occ struct {
	first, last int64 // acked occurrences (first and last index), -1 when none
	newest      int64 // the acked occurrence with the highest version
	newestVer   int64
	n           int32   // acked occurrences
	rows        int32   // target rows found
	wrong       int32   // keyless: rows matching no occurrence
	unc         []int64 // uncertain occurrences, in stream order
	dead        bool    // a dead letter carries this id
}

// firstSent is the event's first occurrence, acked or uncertain.
func (e *occ) firstSent() int64 {
	if len(e.unc) > 0 && (e.first < 0 || e.unc[0] < e.first) {
		return e.unc[0]
	}
	return e.first
}

type badRec struct {
	index     int64
	kind      Kind
	committed bool
	uncertain bool
	dead      int32
	same      *badRec // next bad record with the same value hash (matching by value)
	key, val  []byte  // the record as sent, when kept (cdc); else rendered again
}

// sent returns bad record b's key and value as the producer sent them.
func (v *verifier) sent(b *badRec) (key, val []byte) {
	if b.val != nil {
		return b.key, b.val
	}
	v.g.plain = false
	v.g.At(b.index, &v.rec)
	v.g.plain = true
	return v.rec.Key, v.rec.Value
}

// Which committed occurrence of an event a row must hold.
const (
	expectFirst  = iota // ignore: the first in offset order
	expectLast          // update guarded by the offset: the last in offset order
	expectNewest        // update guarded by the version: the highest version
	expectAny           // any committed occurrence
)

var expectText = [...]string{
	expectFirst:  "the first committed occurrence (on_conflict ignore)",
	expectLast:   "the last committed occurrence in offset order (on_conflict update, guard: the offset)",
	expectNewest: "the newest committed version (on_conflict update, guard: version)",
	expectAny:    "any committed occurrence",
}

// Verify recomputes from the seed what was sent and checks the target table
// and the dead-letter table in pgURL: every committed good event is in the
// target exactly once (keyed tables; once per committed occurrence for
// keyless ones) with the values it was sent with, nothing from an aborted
// transaction or never sent is there, and every committed bad record is in
// dead_letters exactly once, with its bytes, and not in the target. It holds
// one map entry per distinct event id and per bad record (about 64 bytes
// each) and streams both tables.
func Verify(ctx context.Context, pgURL string, o VerifyOptions) (Report, error) {
	start := time.Now()
	if o.Table == "" {
		o.Table = "public.events"
	}
	if o.Schema == "" {
		o.Schema = "sluice"
	}
	if o.OnConflict == "" {
		o.OnConflict = "ignore"
	}
	switch o.OnConflict {
	case "ignore", "update", "any":
	default:
		return Report{}, fmt.Errorf("cannot verify with on_conflict %q; use ignore, update or any", o.OnConflict)
	}
	switch o.Guard {
	case "", "offset", "version":
	default:
		return Report{}, fmt.Errorf("cannot verify with guard %q; use offset (the kafka.offset column, the default) or version", o.Guard)
	}
	if o.MaxExamples <= 0 {
		o.MaxExamples = 5
	}
	gen := o.Gen
	gen.EnsureDefaults()
	if o.Stats != nil {
		gen.Records = o.Stats.Records
	}
	if err := gen.Validate(); err != nil {
		return Report{}, fmt.Errorf("cannot verify: %w", err)
	}
	if gen.Records <= 0 {
		return Report{}, errors.New("cannot verify without a record count; pass the manifest or the number of records sent")
	}
	if registryFormat(gen.Format) && gen.SchemaID == 0 {
		return Report{}, fmt.Errorf("cannot verify %s records without their schema id; pass the manifest, the schema id or the registry", gen.Format)
	}
	if gen.EvolveAt > 0 && gen.EvolveAt < gen.Records && gen.EvolvedSchemaID == 0 {
		return Report{}, fmt.Errorf("cannot verify %s records from record %d on without the second schema version's id; pass the manifest or the registry", gen.Format, gen.EvolveAt)
	}
	v := &verifier{o: o, gen: gen, g: NewGenerator(gen), rep: Report{Table: o.Table, Records: gen.Records, Workload: gen.Workload}}
	if gen.Workload == WorkloadCDC {
		conn, err := verifyConn(ctx, pgURL)
		if err != nil {
			return Report{}, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if err := v.verifyCDC(ctx, conn); err != nil {
			return Report{}, err
		}
		v.rep.Elapsed = time.Since(start)
		return v.rep, nil
	}
	v.g.plain = true
	v.sch = v.g.sch
	if gen.EvolveAt > 0 && gen.EvolveAt < gen.Records {
		// The stream reached the second schema version: its field's
		// column (added by evolve: add_columns) is checked with the
		// others, NULL for event versions written before EvolveAt.
		s := *v.sch
		s.columns = append(slices.Clip(s.columns), Column{Name: EvolvedField, Type: "text", Path: EvolvedField})
		v.sch = &s
	}
	v.keyless = v.sch.key == ""
	v.byValue = gen.Keys != KeysEventID
	v.partCol, v.offCol = -1, -1
	for k, c := range v.sch.columns {
		switch c.Source {
		case "kafka.partition":
			v.partCol = k
		case "kafka.offset":
			v.offCol = k
		}
	}
	v.keyPart = kgo.StickyKeyPartitioner(nil).ForTopic(gen.Topic)
	spread := gen.Keys == KeysNull
	versions := gen.UpdateRatio > 0 || gen.KeyCardinality > 0 // an event's occurrences can differ
	switch {
	case v.keyless || o.OnConflict == "any":
		v.want = expectAny
	case o.OnConflict == "update" && o.Guard == "version":
		v.want = expectNewest
	case o.OnConflict == "update" && spread && versions:
		return Report{}, fmt.Errorf("cannot verify on_conflict update of null-keyed records by Kafka offset: an event's versions are spread over partitions, whose offsets do not order them; give the table guard: version and verify with guard version")
	case o.OnConflict == "update":
		v.want = expectLast
	case spread && versions:
		v.want = expectAny // ignore: any version may land first
	default:
		v.want = expectFirst
	}
	if !v.keyless {
		v.rep.Expect = expectText[v.want]
		if v.want == expectAny && o.OnConflict == "ignore" {
			v.rep.Expect += " (on_conflict ignore with null keys: the first to land is any)"
		}
	}
	conn, err := verifyConn(ctx, pgURL)
	if err != nil {
		return Report{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var txns []int64
	if o.Stats != nil && gen.Transactional {
		v.uncertainTxn = map[int64]bool{}
		for _, t := range o.Stats.UncertainTxns {
			if !v.uncertainTxn[t] {
				v.uncertainTxn[t] = true
				txns = append(txns, t)
			}
		}
	}
	if len(txns) > maxUncertainTxns {
		return Report{}, fmt.Errorf("cannot verify a run with %d transactions of unknown outcome (at most %d): each is read as committed and as aborted", len(txns), maxUncertainTxns)
	}
	// A transaction of unknown outcome landed whole or not at all: try
	// each reading and keep one that passes, else the one with the fewest
	// anomalies. The producer stops after such a transaction, so a run has
	// at most one and a chain of runs a few.
	var best Report
	for mask := range 1 << len(txns) {
		w := *v
		w.rep.UncertainTxns = int64(len(txns))
		landed := map[int64]bool{}
		for k, t := range txns {
			if mask>>k&1 == 1 {
				landed[t] = true
				w.rep.LandedTxns = append(w.rep.LandedTxns, t)
			}
		}
		if err := w.check(ctx, conn, landed); err != nil {
			return Report{}, err
		}
		if mask == 0 || w.rep.anomalies() < best.anomalies() {
			best = w.rep
		}
		if best.OK() {
			break
		}
	}
	best.Elapsed = time.Since(start)
	return best, nil
}

// maxUncertainTxns bounds the readings Verify tries (2^n).
const maxUncertainTxns = 8

// check reads both tables against what the stream says must have landed
// when the transactions in landed committed.
func (v *verifier) check(ctx context.Context, conn *pgx.Conn, landed map[int64]bool) error {
	v.expect(landed)
	if v.partCol >= 0 && v.offCol >= 0 {
		v.positions = map[kafkaPos]struct{}{}
	}
	if v.keyless {
		v.used = map[int64]bool{}
	}
	if err := v.readDeadLetters(ctx, conn); err != nil {
		return err
	}
	if err := v.readTarget(ctx, conn); err != nil {
		return err
	}
	v.finish()
	return nil
}

// verifyConn connects to pgURL with every value read as text in UTC.
func verifyConn(ctx context.Context, pgURL string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(pgURL)
	if err != nil {
		// pgconn's error quotes the URL, and its masking of the password
		// fails for one holding an unescaped '@' or ':'.
		return nil, fmt.Errorf("cannot parse the Postgres URL: %s (use postgres://user@host:port/db)", redact.PGParseDetail(err))
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // every value as text
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to Postgres at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return conn, nil
}

type verifier struct {
	o       VerifyOptions
	gen     Options
	g       *Generator
	sch     *schema
	keyless bool
	rep     Report

	want    int  // expectFirst, ...
	byValue bool // match dead letters by value: the keys are not event ids

	good    map[[16]byte]*occ
	aborted map[[16]byte]bool // good ids sent only in aborted transactions
	bad     map[[16]byte]*badRec
	badVal  map[uint64]*badRec // by value hash, when byValue
	hseed   maphash.Seed
	prev    []int64 // previous committed occurrence of the same id, when needed

	cdcOther *[]cdcDeadLetter // cdc: dead letters no bad record matches

	uncertainTxn map[int64]bool        // transactions of unknown outcome
	used         map[int64]bool        // keyless: occurrences matched to a row
	positions    map[kafkaPos]struct{} // Kafka positions of rows and dead letters, when the table records them
	partCol      int                   // the kafka.partition column, or -1
	offCol       int                   // the kafka.offset column, or -1
	keyPart      kgo.TopicPartitioner  // where the producer put a keyed record
	krec         kgo.Record

	rec    Rec
	fields []jsonField
	nested []jsonField
}

// expect walks the stream and records what must have landed. landed says
// which transactions of unknown outcome (Stats.UncertainTxns) this reading
// takes as committed: a transaction lands whole or not at all.
func (v *verifier) expect(landed map[int64]bool) {
	uncertainIdx := map[int64]bool{}
	badTxn := map[int64]bool{} // forced aborts
	per := int64(v.gen.TxnRecords)
	if s := v.o.Stats; s != nil {
		for _, i := range s.FailedIndices {
			if v.gen.Transactional {
				// The producer aborts every transaction in which a record
				// failed (runTxns), so the record cannot be committed.
				badTxn[i/per] = true
			} else {
				uncertainIdx[i] = true
			}
		}
		for _, t := range s.ForcedAborts {
			badTxn[t] = true
		}
	}
	n := v.gen.Records
	v.good = make(map[[16]byte]*occ, min(n, 1<<20))
	v.aborted = make(map[[16]byte]bool)
	v.bad = make(map[[16]byte]*badRec)
	if v.byValue {
		v.badVal = make(map[uint64]*badRec)
		v.hseed = maphash.MakeSeed()
	}
	needPrev := v.want == expectAny
	if needPrev {
		v.prev = make([]int64, n)
	}
	for i := int64(0); i < n; i++ {
		ident := v.g.identify(i)
		kind, id := ident.kind, ident.id
		committed, uncertain := true, uncertainIdx[i]
		if v.gen.Transactional {
			switch txn := i / per; {
			case v.g.TxnAborted(txn) || badTxn[txn]:
				committed = false
			case v.uncertainTxn[txn]:
				committed = landed[txn]
			}
		}
		if uncertain {
			v.rep.Uncertain++
			committed = false
		}
		if committed {
			v.rep.Committed[kind]++
		} else if !uncertain {
			v.rep.Aborted[kind]++
		}
		if kind.Bad() {
			b := &badRec{index: i, kind: kind, committed: committed, uncertain: uncertain}
			v.bad[id] = b
			if v.byValue {
				v.g.plain = false
				v.g.At(i, &v.rec)
				v.g.plain = true
				h := maphash.Bytes(v.hseed, v.rec.Value)
				b.same = v.badVal[h]
				v.badVal[h] = b
			}
			continue
		}
		e := v.good[id]
		if !committed {
			if uncertain {
				if e == nil {
					e = &occ{first: -1, last: -1}
					v.good[id] = e
					delete(v.aborted, id)
				}
				e.unc = append(e.unc, i)
			} else if e == nil {
				v.aborted[id] = true
			}
			continue
		}
		if e == nil {
			e = &occ{first: i, last: -1}
			v.good[id] = e
			delete(v.aborted, id)
		}
		if e.first < 0 {
			e.first = i
		}
		if ver := ident.src + 1; ver > e.newestVer {
			e.newest, e.newestVer = i, ver
		}
		if needPrev {
			v.prev[i] = e.last
		}
		e.last = i
		e.n++
	}
	for _, e := range v.good {
		switch {
		case e.n == 0:
		case v.keyless:
			v.rep.ExpectedRows += int64(e.n)
		default:
			v.rep.ExpectedRows++
		}
	}
}

// altTableName is the other spelling of table as dead letters store their
// target as configured: "events" and "public.events" name the same table.
func altTableName(table string) string {
	if s, n, ok := strings.Cut(table, "."); ok && s == "public" {
		return n
	} else if !ok {
		return "public." + table
	}
	return table
}

func (v *verifier) readDeadLetters(ctx context.Context, conn *pgx.Conn) error {
	alt := altTableName(v.o.Table)
	q := fmt.Sprintf(`SELECT partition, "offset", key, value, error FROM %s.dead_letters
WHERE topic = $1 AND target IN ($2, $3) AND ($4 = '' OR group_id = $4)`,
		pgx.Identifier{v.o.Schema}.Sanitize())
	rows, err := conn.Query(ctx, q, v.gen.Topic, v.o.Table, alt, v.o.Group)
	if err != nil {
		return fmt.Errorf("cannot read %s.dead_letters: %w (is --schema-name the appliance's schema?)", v.o.Schema, err)
	}
	defer rows.Close()
	var val []byte
	for rows.Next() {
		raw := rows.RawValues()
		v.rep.DeadLetters++
		where := fmt.Sprintf("partition %s offset %s", raw[0], raw[1])
		key, err := decodeByteaText(raw[2], nil)
		if err != nil {
			return fmt.Errorf("cannot decode a dead letter key at %s: %w", where, err)
		}
		v.position("dead letter at "+where, raw[0], raw[1], key)
		if v.byValue {
			if val, err = decodeByteaText(raw[3], val[:0]); err != nil {
				return fmt.Errorf("cannot decode a dead letter value at %s: %w", where, err)
			}
			v.deadLetterByValue(where, key, val, raw[4])
			continue
		}
		id, ok := parseUUID(key)
		if !ok {
			v.rep.DeadLetterUnexpected++
			v.rep.example("unexpected dead letters", v.o.MaxExamples, "%s: key %q is not a loadgen event id", where, key)
			continue
		}
		if b := v.bad[id]; b != nil {
			b.dead++
			switch {
			case b.dead > 1:
				v.rep.DeadLetterDuplicated++
				v.rep.example("duplicated dead letters", v.o.MaxExamples, "%s: record %d (%s, key %s) dead-lettered %d times so far", where, b.index, b.kind, key, b.dead)
				continue
			case b.uncertain:
			case !b.committed:
				v.rep.DeadLetterAborted++
				v.rep.example("dead letters from aborted", v.o.MaxExamples, "%s: record %d (%s, key %s) was in an aborted transaction", where, b.index, b.kind, key)
				continue
			}
			if b.committed {
				v.rep.DeadLettersByKind[b.kind]++
			}
			val, err = decodeByteaText(raw[3], val[:0])
			if err != nil {
				return fmt.Errorf("cannot decode a dead letter value at %s: %w", where, err)
			}
			if _, sent := v.sent(b); !bytes.Equal(val, sent) {
				v.rep.DeadLetterWrongValue++
				v.rep.example("wrong-valued dead letters", v.o.MaxExamples, "%s: record %d (%s): value of %d bytes differs from the %d bytes sent", where, b.index, b.kind, len(val), len(sent))
			}
			if !bytes.Contains(raw[4], []byte(reasonFor(b.kind, v.gen.Format))) {
				v.rep.ReasonMismatch++
				v.rep.example("dead letters with another reason", v.o.MaxExamples, "%s: %s record %d: error %q", where, b.kind, b.index, raw[4])
			}
			continue
		}
		if e := v.good[id]; e != nil {
			// Even a good record whose delivery is unknown deserves no
			// dead letter: it may be absent, never rejected.
			e.dead = true
			v.rep.GoodDeadLettered++
			v.rep.example("good records dead-lettered", v.o.MaxExamples, "%s: good event %s (first sent as record %d): error %q", where, key, e.firstSent(), raw[4])
			continue
		}
		if v.aborted[id] {
			v.rep.DeadLetterAborted++
			v.rep.example("dead letters from aborted", v.o.MaxExamples, "%s: event %s was sent only in aborted transactions", where, key)
			continue
		}
		v.rep.DeadLetterUnexpected++
		v.rep.example("unexpected dead letters", v.o.MaxExamples, "%s: key %s was never sent", where, key)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read %s.dead_letters: %w", v.o.Schema, err)
	}
	return nil
}

// deadLetterByValue matches a dead letter to the bad record with its
// value, for streams whose keys are not event ids, and checks its key.
func (v *verifier) deadLetterByValue(where string, key, val, errText []byte) {
	var b *badRec
	for c := v.badVal[maphash.Bytes(v.hseed, val)]; c != nil; c = c.same {
		if _, sent := v.sent(c); !bytes.Equal(val, sent) {
			continue // a hash collision
		}
		if b == nil || b.dead > 0 && c.dead == 0 {
			b = c // the first record with this value not matched yet
		}
	}
	if b == nil && v.cdcOther != nil {
		// Maybe a good change's (cdcOtherDeadLetters).
		*v.cdcOther = append(*v.cdcOther, cdcDeadLetter{where: where, key: bytes.Clone(key), val: bytes.Clone(val), err: bytes.Clone(errText)})
		return
	}
	if b == nil {
		v.rep.DeadLetterUnexpected++
		v.rep.example("unexpected dead letters", v.o.MaxExamples, "%s: a value of %d bytes (key %q) that no bad record carries", where, len(val), key)
		return
	}
	b.dead++
	switch {
	case b.dead > 1:
		v.rep.DeadLetterDuplicated++
		v.rep.example("duplicated dead letters", v.o.MaxExamples, "%s: record %d (%s) dead-lettered %d times so far", where, b.index, b.kind, b.dead)
		return
	case b.uncertain:
	case !b.committed:
		v.rep.DeadLetterAborted++
		v.rep.example("dead letters from aborted", v.o.MaxExamples, "%s: record %d (%s) was in an aborted transaction", where, b.index, b.kind)
		return
	}
	if b.committed {
		v.rep.DeadLettersByKind[b.kind]++
	}
	if sentKey, _ := v.sent(b); !bytes.Equal(key, sentKey) {
		v.rep.DeadLetterWrongValue++
		v.rep.example("wrong-valued dead letters", v.o.MaxExamples, "%s: record %d (%s): key %q, sent %q", where, b.index, b.kind, key, sentKey)
	}
	if !bytes.Contains(errText, []byte(reasonFor(b.kind, v.gen.Format))) {
		v.rep.ReasonMismatch++
		v.rep.example("dead letters with another reason", v.o.MaxExamples, "%s: %s record %d: error %q", where, b.kind, b.index, errText)
	}
}

func (v *verifier) readTarget(ctx context.Context, conn *pgx.Conn) error {
	cols := v.sch.columns
	var sel strings.Builder
	idCol := -1
	for k, c := range cols {
		if k > 0 {
			sel.WriteString(", ")
		}
		sel.WriteString(pgx.Identifier{c.Name}.Sanitize())
		if c.Type == "uuid" && idCol < 0 {
			idCol = k
		}
	}
	where := ""
	if v.o.Where != "" {
		where = " WHERE " + v.o.Where
	}
	rows, err := conn.Query(ctx, "SELECT "+sel.String()+" FROM "+quoteQualified(v.o.Table)+where)
	if err != nil {
		evolved := ""
		if v.gen.EvolveAt > 0 && v.gen.EvolveAt < v.gen.Records {
			evolved = fmt.Sprintf(" and %s, which the second schema version adds (evolve: add_columns)", EvolvedField)
		}
		return fmt.Errorf("cannot read table %s: %w (is --table right, with the columns of schema %s%s?)", v.o.Table, err, v.gen.Schema, evolved)
	}
	defer rows.Close()
	var key []byte
	for rows.Next() {
		raw := rows.RawValues()
		v.rep.Rows++
		id, ok := parseUUID(raw[idCol])
		if !ok {
			v.rep.Unexpected++
			v.rep.example("unexpected rows", v.o.MaxExamples, "%s = %q is not a loadgen event id", cols[idCol].Name, raw[idCol])
			continue
		}
		if v.positions != nil && raw[v.partCol] != nil && raw[v.offCol] != nil {
			key = appendUUID(key[:0], id)
			v.position("row "+string(key), raw[v.partCol], raw[v.offCol], key)
		}
		e := v.good[id]
		if e == nil {
			switch {
			case v.aborted[id]:
				v.rep.FromAborted++
				v.rep.example("rows from aborted txns", v.o.MaxExamples, "%s was sent only in aborted transactions", raw[idCol])
			case v.bad[id] != nil:
				// A bad record can never be a row, whether or not its
				// delivery is known.
				b := v.bad[id]
				if b.committed || b.uncertain {
					v.rep.BadInTarget++
					v.rep.example("bad records in target", v.o.MaxExamples, "record %d (%s, key %s) landed in the target", b.index, b.kind, raw[idCol])
				} else {
					v.rep.FromAborted++
					v.rep.example("rows from aborted txns", v.o.MaxExamples, "bad record %d (%s, key %s) of an aborted transaction landed", b.index, b.kind, raw[idCol])
				}
				if b.dead > 0 {
					v.rep.InBoth++
					v.rep.example("in target and dead letters", v.o.MaxExamples, "record %d (%s, key %s)", b.index, b.kind, raw[idCol])
				}
			default:
				v.rep.Unexpected++
				v.rep.example("unexpected rows", v.o.MaxExamples, "%s was never sent", raw[idCol])
			}
			continue
		}
		e.rows++
		if e.dead && e.rows == 1 {
			v.rep.InBoth++
			v.rep.example("in target and dead letters", v.o.MaxExamples, "event %s", raw[idCol])
		}
		if v.keyless {
			v.matchOccurrence(e, raw, raw[idCol])
			continue
		}
		if diff := v.matchRow(e, raw); diff != "" {
			v.rep.WrongValue++
			v.rep.example("wrong-valued rows", v.o.MaxExamples, "%s: %s", raw[idCol], diff)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read table %s: %w", v.o.Table, err)
	}
	return nil
}

// kafkaPos is a record's place in its topic.
type kafkaPos struct {
	partition int32
	offset    int64
}

// position checks the Kafka position a row or dead letter (what) gives:
// each record has its own, at an offset of 0 or more, on a partition the
// topic has and, with event-id keys, on the one its key hashes to (the
// producer's default partitioner), when the run recorded the topic's
// partition count. Uniqueness is checked when the table records both
// the partition and the offset.
func (v *verifier) position(what string, partition, offset, key []byte) {
	p, err1 := strconv.ParseInt(string(partition), 10, 32)
	o, err2 := strconv.ParseInt(string(offset), 10, 64)
	var n int64
	if v.o.Stats != nil {
		n = int64(v.o.Stats.TopicPartitions)
	}
	wrong := ""
	switch {
	case err1 != nil || err2 != nil || p < 0 || o < 0:
		wrong = "is not a Kafka position"
	case n > 0 && p >= n:
		wrong = fmt.Sprintf("is beyond the topic's %d partitions", n)
	case n > 0 && v.gen.Keys == KeysEventID && key != nil: // nil: a dead letter whose record could not be re-read
		v.krec.Key = key
		if want := v.keyPart.Partition(&v.krec, int(n)); p != int64(want) {
			wrong = fmt.Sprintf("is not on partition %d, where its key %s was written", want, key)
		}
	}
	if wrong == "" && v.positions != nil {
		k := kafkaPos{int32(p), o}
		if _, dup := v.positions[k]; dup {
			wrong = "is another row's or dead letter's: one Kafka record landed twice"
		}
		v.positions[k] = struct{}{}
	}
	if wrong != "" {
		v.rep.WrongPosition++
		v.rep.example("wrong Kafka positions", v.o.MaxExamples, "%s: partition %s offset %s %s", what, partition, offset, wrong)
	}
}

// matchRow compares a row of a keyed table with the occurrences that may
// be its: the acked one the policy names, or an uncertain one that would
// have taken its place had it landed. It returns "" or the first
// difference found.
func (v *verifier) matchRow(e *occ, raw [][]byte) string {
	first := ""
	match := func(idx int64) bool {
		d := v.diff(idx, raw)
		if first == "" {
			first = d
		}
		return d == ""
	}
	if e.n > 0 {
		switch v.want {
		case expectFirst:
			if match(e.first) {
				return ""
			}
		case expectLast:
			if match(e.last) {
				return ""
			}
		case expectNewest:
			if match(e.newest) {
				return ""
			}
		default:
			for idx := e.last; idx >= 0; idx = v.prev[idx] {
				if match(idx) {
					return ""
				}
			}
		}
	}
	for _, u := range e.unc {
		if (e.n == 0 || v.mayReplace(e, u)) && match(u) {
			return ""
		}
	}
	return first
}

// mayReplace reports whether uncertain occurrence u, had it landed, would
// be the row instead of the acked occurrence the policy names.
func (v *verifier) mayReplace(e *occ, u int64) bool {
	switch v.want {
	case expectFirst:
		return u < e.first
	case expectLast:
		return u > e.last
	case expectNewest:
		return v.g.identify(u).src+1 >= e.newestVer
	}
	return true
}

// matchOccurrence pairs a row of a keyless table with an occurrence of its
// event that has the row's contents and no row yet, acked ones first.
// Occurrences with the same contents are interchangeable, so pairing
// greedily is exact: an occurrence lost while another landed twice leaves
// a row with no free occurrence, counted as duplicated.
func (v *verifier) matchOccurrence(e *occ, raw [][]byte, id []byte) {
	first := ""
	free := func(idx int64) bool {
		if v.used[idx] {
			return false
		}
		d := v.diff(idx, raw)
		if first == "" {
			first = d
		}
		if d == "" {
			v.used[idx] = true
		}
		return d == ""
	}
	if v.anyOccurrence(e, free) {
		return
	}
	taken := func(idx int64) bool {
		if !v.used[idx] || v.diff(idx, raw) != "" {
			return false
		}
		v.rep.Duplicated++
		v.rep.example("duplicated rows", v.o.MaxExamples, "%s: a second row for occurrence %d (%d committed occurrences)", id, idx, e.n)
		return true
	}
	if v.anyOccurrence(e, taken) {
		return
	}
	e.wrong++
	if first == "" {
		first = "no occurrence of the event is left for this row"
	}
	v.rep.WrongValue++
	v.rep.example("wrong-valued rows", v.o.MaxExamples, "%s: %s", id, first)
}

// anyOccurrence calls f on e's acked occurrences, newest first, then on
// its uncertain ones, until f returns true; it reports whether one did.
func (v *verifier) anyOccurrence(e *occ, f func(idx int64) bool) bool {
	for idx := e.last; idx >= 0; idx = v.prev[idx] {
		if f(idx) {
			return true
		}
	}
	return slices.ContainsFunc(e.unc, f)
}

// diff compares raw (text values of the schema's columns) with record idx.
func (v *verifier) diff(idx int64, raw [][]byte) string {
	v.g.At(idx, &v.rec)
	var err error
	v.fields, err = parseObject(v.rec.Value, v.fields[:0])
	if err != nil {
		return fmt.Sprintf("cannot parse the generated record %d: %v", idx, err)
	}
	for k, c := range v.sch.columns {
		got := raw[k]
		if c.Source != "" {
			if got == nil {
				return fmt.Sprintf("column %s (%s) is NULL", c.Name, c.Source)
			}
			continue
		}
		want := v.lookup(c.Path)
		if want == nil || string(want) == "null" {
			if got != nil {
				return fmt.Sprintf("column %s is %q, want NULL (record %d)", c.Name, got, idx)
			}
			continue
		}
		if got == nil {
			return fmt.Sprintf("column %s is NULL, want %s (record %d)", c.Name, want, idx)
		}
		if !equalText(c.Type, want, got) {
			return fmt.Sprintf("column %s is %q, want %s (record %d)", c.Name, got, want, idx)
		}
	}
	return ""
}

// lookup returns the JSON token at a dotted path of the parsed record.
func (v *verifier) lookup(path string) []byte {
	head, rest, nestedPath := strings.Cut(path, ".")
	tok := findField(v.fields, head)
	for nestedPath && tok != nil {
		var err error
		v.nested, err = parseObject(tok, v.nested[:0])
		if err != nil {
			return nil
		}
		head, rest, nestedPath = strings.Cut(rest, ".")
		tok = findField(v.nested, head)
	}
	return tok
}

func (v *verifier) finish() {
	for id, e := range v.good {
		if v.keyless {
			// Every acked occurrence needs its own row; a wrong-valued row
			// stands for one of them.
			var lost int32
			for idx := e.last; idx >= 0; idx = v.prev[idx] {
				if !v.used[idx] {
					lost++
				}
			}
			if lost -= e.wrong; lost > 0 && !e.dead { // else counted as dead-lettered
				v.rep.Missing += int64(lost)
				v.rep.example("missing rows", v.o.MaxExamples, "%s (first sent as record %d): %d of %d committed occurrences have no row", appendUUID(nil, id), e.first, lost, e.n)
			}
			continue
		}
		switch {
		case e.rows == 0 && e.n > 0 && !e.dead: // else counted as dead-lettered
			v.rep.Missing++
			v.rep.example("missing rows", v.o.MaxExamples, "%s (first sent as record %d, %d committed occurrences)", appendUUID(nil, id), e.first, e.n)
		case e.rows > 1:
			v.rep.Duplicated += int64(e.rows - 1)
			v.rep.example("duplicated rows", v.o.MaxExamples, "%s: %d rows, want 1", appendUUID(nil, id), e.rows)
		}
	}
	for id, b := range v.bad {
		if b.committed && b.dead == 0 {
			v.rep.DeadLetterMissing[b.kind]++
			v.rep.example("missing dead letters", v.o.MaxExamples, "record %d (%s, key %s)", b.index, b.kind, appendUUID(nil, id))
		}
	}
}

// quoteQualified quotes "schema.table" (or "table") as an identifier.
func quoteQualified(name string) string {
	return pgx.Identifier(strings.Split(name, ".")).Sanitize()
}

// decodeByteaText decodes PostgreSQL's hex text form of bytea (\x...).
func decodeByteaText(s, dst []byte) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	if !bytes.HasPrefix(s, []byte(`\x`)) {
		return nil, fmt.Errorf("cannot decode bytea %.20q: not in hex format (set bytea_output = hex)", s)
	}
	s = s[2:]
	n := len(dst)
	dst = append(dst, make([]byte, len(s)/2)...)
	if _, err := hex.Decode(dst[n:], s); err != nil {
		return nil, fmt.Errorf("cannot decode bytea: %w", err)
	}
	return dst, nil
}

// equalText reports whether the PostgreSQL text form got of a column of type
// typ holds the value of the JSON token want.
func equalText(typ string, want, got []byte) bool {
	switch typ {
	case "text", "uuid":
		s, ok := jsonString(want)
		return ok && (bytes.Equal(s, got) || typ == "uuid" && bytes.EqualFold(s, got))
	case "int2", "int4", "int8":
		return bytes.Equal(want, got)
	case "float4", "float8":
		w, err1 := strconv.ParseFloat(string(want), 64)
		g, err2 := strconv.ParseFloat(string(got), 64)
		if typ == "float4" {
			w, g = float64(float32(w)), float64(float32(g))
		}
		return err1 == nil && err2 == nil && w == g
	case "numeric":
		return equalDecimal(want, got)
	case "bool":
		return string(want) == "true" && string(got) == "t" || string(want) == "false" && string(got) == "f"
	case "timestamptz", "timestamp":
		s, ok := jsonString(want)
		if !ok {
			return false
		}
		w, err := time.Parse(time.RFC3339Nano, string(s))
		if err != nil {
			return false
		}
		layout := "2006-01-02 15:04:05.999999999-07"
		if typ == "timestamp" {
			layout = "2006-01-02 15:04:05.999999999"
			w = w.UTC()
		}
		g, err := time.Parse(layout, string(got))
		return err == nil && g.Equal(w)
	case "jsonb", "json":
		return equalJSON(want, got)
	}
	return bytes.Equal(want, got)
}

func equalDecimal(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y big.Rat
	if _, ok := x.SetString(string(a)); !ok {
		return false
	}
	if _, ok := y.SetString(string(b)); !ok {
		return false
	}
	return x.Cmp(&y) == 0
}

// equalJSON compares two JSON documents by value: object key order and
// number spelling (1.50 vs 1.5) do not matter.
func equalJSON(a, b []byte) bool {
	var x, y any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return equalJSONValue(x, y)
}

func equalJSONValue(x, y any) bool {
	switch xv := x.(type) {
	case json.Number:
		yv, ok := y.(json.Number)
		return ok && equalDecimal([]byte(xv), []byte(yv))
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok || len(xv) != len(yv) {
			return false
		}
		for k, a := range xv {
			b, ok := yv[k]
			if !ok || !equalJSONValue(a, b) {
				return false
			}
		}
		return true
	case []any:
		yv, ok := y.([]any)
		if !ok || len(xv) != len(yv) {
			return false
		}
		for k := range xv {
			if !equalJSONValue(xv[k], yv[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(x, y)
}

// jsonField is one member of a parsed JSON object: the raw key (without
// quotes, escapes left as is) and the raw value token.
type jsonField struct {
	key, val []byte
}

func findField(fs []jsonField, key string) []byte {
	for _, f := range fs {
		if string(f.key) == key {
			return f.val
		}
	}
	return nil
}

var errJSON = errors.New("malformed JSON")

// parseObject splits a JSON object into its members without decoding them.
func parseObject(s []byte, dst []jsonField) ([]jsonField, error) {
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return dst, errJSON
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return dst, nil
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return dst, errJSON
		}
		end, err := skipString(s, i)
		if err != nil {
			return dst, err
		}
		key := s[i+1 : end-1]
		i = skipWS(s, end)
		if i >= len(s) || s[i] != ':' {
			return dst, errJSON
		}
		i = skipWS(s, i+1)
		vend, err := skipValue(s, i)
		if err != nil {
			return dst, err
		}
		dst = append(dst, jsonField{key: key, val: s[i:vend]})
		i = skipWS(s, vend)
		if i >= len(s) {
			return dst, errJSON
		}
		if s[i] == '}' {
			return dst, nil
		}
		if s[i] != ',' {
			return dst, errJSON
		}
		i = skipWS(s, i+1)
	}
}

func skipWS(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at s[i] == '"'.
func skipString(s []byte, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errJSON
}

// skipValue returns the index after the value starting at s[i].
func skipValue(s []byte, i int) (int, error) {
	if i >= len(s) {
		return 0, errJSON
	}
	switch s[i] {
	case '"':
		return skipString(s, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '"':
				end, err := skipString(s, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errJSON
	}
	j := i
	for j < len(s) && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ' ' && s[j] != '\n' && s[j] != '\t' && s[j] != '\r' {
		j++
	}
	if j == i {
		return 0, errJSON
	}
	return j, nil
}

// jsonString returns the contents of a JSON string token, unescaped.
func jsonString(tok []byte) ([]byte, bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return nil, false
	}
	if bytes.IndexByte(tok, '\\') < 0 {
		return tok[1 : len(tok)-1], true
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}
