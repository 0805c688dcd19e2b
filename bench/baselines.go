package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/codec"
	"github.com/sluice-dev/sluice/loadgen"
)

// shard is the tuples one baseline connection writes: binary COPY tuples
// back to back, ends[i] the end of tuple i.
type shard struct {
	data []byte
	ends []int
}

func (s *shard) tuple(i int) []byte {
	start := 0
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.data[start:s.ends[i]]
}

// workload is the preloaded stream decoded into binary COPY tuples, outside
// any timing: every good, update and dup record (for the INSERT writer)
// and the rows the table must end with, one per event (for raw COPY),
// sharded by event id over the connections like Kafka partitions by key.
type workload struct {
	cols     []string
	keyField int // index of the key column in a tuple; -1: keyless
	all      []shard
	distinct []shard
	rows     int64 // distinct rows
}

// decodeWorkload decodes the first records of gen's stream. The distinct
// rows are each event's winning version under sh's policy: the first
// occurrence under ignore, the last under update (the newest version when
// the guard is the version), so the raw COPY writes exactly the rows
// Sluice must end with. Registry formats are decoded from their JSON
// rendering, which carries the same events.
func decodeWorkload(gen loadgen.Options, records int64, conns int, sh Shape) (*workload, error) {
	if sh.cdc() {
		return decodeCDC(gen, records, conns)
	}
	gen.Format, gen.SchemaID = loadgen.FormatJSON, 0
	g := loadgen.NewGenerator(gen)
	var cols []codec.Column
	w := &workload{all: make([]shard, conns), distinct: make([]shard, conns), keyField: -1}
	for i, c := range g.Columns() {
		if c.Name == g.KeyColumn() {
			w.keyField = i
		}
		col, err := codec.ParseColumn(c.Name, c.Type, c.Source, c.Path, c.Required)
		if err != nil {
			return nil, err
		}
		cols = append(cols, col)
		w.cols = append(w.cols, c.Name)
	}
	dec, err := codec.NewDecoder(codec.FormatJSON, cols, codec.Options{MaxRecordBytes: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("cannot build a decoder for the %s schema: %w", gen.Schema, err)
	}
	var r loadgen.Rec
	row := func(k loadgen.Kind) bool {
		return k == loadgen.KindGood || k == loadgen.KindDup || k == loadgen.KindUpdate
	}
	// winner[id] is the index of the occurrence that lands, under update
	// (under ignore it is the good record, the first occurrence).
	var winner map[[16]byte]int64
	if sh.OnConflict == "update" && g.KeyColumn() != "" {
		winner = make(map[[16]byte]int64)
		newest := map[[16]byte]int64{}
		for i := range records {
			g.At(i, &r)
			if !row(r.Kind) {
				continue
			}
			if sh.Guard() == "version" && r.Version <= newest[r.EventID] {
				continue
			}
			winner[r.EventID], newest[r.EventID] = i, r.Version
		}
	}
	seed := maphash.MakeSeed()
	var rec codec.Record
	now := time.Now()
	for i := range records {
		g.At(i, &r)
		if !row(r.Kind) {
			continue // bad records are dead letters, not rows
		}
		rec = codec.Record{Topic: gen.Topic, Offset: i, Timestamp: now, Key: r.Key, Value: r.Value}
		k := int(maphash.Bytes(seed, r.EventID[:]) % uint64(conns))
		lands := r.Kind == loadgen.KindGood
		if winner != nil {
			lands = winner[r.EventID] == i
		}
		for _, s := range []*shard{&w.all[k], &w.distinct[k]} {
			if s == &w.distinct[k] && !lands {
				continue
			}
			mark := len(s.data)
			s.data = binary.BigEndian.AppendUint16(s.data, uint16(dec.NumFields()))
			s.data, err = dec.AppendFields(s.data, &rec)
			if err != nil {
				return nil, fmt.Errorf("cannot decode record %d for the baselines: %w", i, err)
			}
			if mark == len(s.data) {
				return nil, fmt.Errorf("cannot decode record %d: empty tuple", i)
			}
			s.ends = append(s.ends, len(s.data))
		}
		if lands {
			w.rows++
		}
	}
	return w, nil
}

// decodeCDC decodes the cdc workload's final source table, each row as a
// snapshot read event in the stream's JSON encoding, with codec's Debezium
// decoder into the tuples the target must end with, sharded by id.
func decodeCDC(gen loadgen.Options, records int64, conns int) (*workload, error) {
	// Avro events are decoded from their JSON rendering, which carries the
	// same rows.
	gen.Format, gen.SchemaID, gen.KeySchemaID = loadgen.FormatJSON, 0, 0
	g := loadgen.NewGenerator(gen)
	var cols []codec.Column
	w := &workload{all: make([]shard, conns), distinct: make([]shard, conns), keyField: -1}
	for i, c := range g.Columns() {
		col, err := codec.ParseColumn(c.Name, c.Type, c.Source, c.Path, c.Required)
		if err != nil {
			return nil, err
		}
		if c.Name == g.KeyColumn() {
			w.keyField, col.Key = i, true
		}
		cols = append(cols, col)
		w.cols = append(w.cols, c.Name)
	}
	dec, err := codec.NewDecoder(codec.FormatDebezium, cols, codec.Options{MaxRecordBytes: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("cannot build a Debezium decoder for the cdc table: %w", err)
	}
	now := time.Now()
	var n int64
	err = loadgen.CDCFinalRows(gen, records, func(id int64, key, value []byte) error {
		rec := codec.Record{Topic: gen.Topic, Offset: n, Timestamp: now, Key: key, Value: value}
		n++
		s := &w.distinct[id%int64(conns)]
		s.data = binary.BigEndian.AppendUint16(s.data, uint16(dec.NumFields()))
		var err error
		if s.data, err = dec.AppendFields(s.data, &rec); err != nil {
			return fmt.Errorf("cannot decode row %d for the baseline: %w", id, err)
		}
		s.ends = append(s.ends, len(s.data))
		w.rows++
		return nil
	})
	return w, err
}

// baselines measures the raw COPY limit and the plain INSERT writer on
// fresh copies of s's table.
func (e *env) baselines(ctx context.Context, s *stream, o Options) (raw, rawSorted, ins *Throughput, err error) {
	w, err := e.decode(ctx, s, o)
	if err != nil {
		return nil, nil, nil, err
	}
	raw, rawSorted, err = e.rawPhase(ctx, s, o, w, false)
	if err != nil {
		return nil, nil, nil, err
	}
	insTable := s.table + "_insert"
	if s.shape.OnConflict == "update" || s.shape.cdc() {
		// A multi-row INSERT … ON CONFLICT DO UPDATE fails when one
		// statement holds two versions of a key: the plain writer would
		// need its own dedup, so it is not measured for update.
		logf(o.Log, "no INSERT writer: it is measured for on_conflict ignore only")
		return raw, rawSorted, nil, nil
	}
	if err := e.cloneTable(ctx, s.table, insTable); err != nil {
		return nil, nil, nil, err
	}
	logf(o.Log, "INSERT … ON CONFLICT DO NOTHING: %d records, %d rows per statement, commit every %d rows …", s.stats.Records, o.InsertRows, o.BatchRows)
	ins, err = e.phase(ctx, s, w.rows, insTable, w.all, func(ctx context.Context, c *pgconn.PgConn, sh *shard) error {
		return insertShard(ctx, c, sh, insTable, w.cols, o.InsertRows, o.BatchRows)
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot run the INSERT baseline: %w", err)
	}
	ins.logPhase(o.Log)
	return raw, rawSorted, ins, nil
}

// rawCopy measures the raw COPY limit alone (the matrix's baseline):
// (a) and, with o.SortedBaseline, (a'), the key-sorted one first when
// sortedFirst.
func (e *env) rawCopy(ctx context.Context, s *stream, o Options, sortedFirst bool) (raw, rawSorted *Throughput, err error) {
	w, err := e.decode(ctx, s, o)
	if err != nil {
		return nil, nil, err
	}
	return e.rawPhase(ctx, s, o, w, sortedFirst)
}

func (e *env) decode(_ context.Context, s *stream, o Options) (*workload, error) {
	logf(o.Log, "decoding %d records into binary tuples for the baselines (not timed) …", s.stats.Records)
	w, err := decodeWorkload(s.gen, s.stats.Records, o.MaxConns, s.shape)
	if err != nil {
		return nil, err
	}
	if want := s.rows(); w.rows != want {
		return nil, fmt.Errorf("cannot use the decoded workload: %d distinct rows decoded, the table must end with %d", w.rows, want)
	}
	return w, nil
}

// rawPhase warms PostgreSQL up, then measures the raw COPY of w's
// distinct rows into a fresh copy of s's table: (a) the rows in the order
// the workload produced them and, with o.SortedBaseline and a keyed
// table, (a') each COPY's rows in key order, as Sluice's direct path sends
// them. sortedFirst runs (a') before (a), so that repeated runs can
// alternate which of the two follows the warm-up.
func (e *env) rawPhase(ctx context.Context, s *stream, o Options, w *workload, sortedFirst bool) (raw, rawSorted *Throughput, err error) {
	// The first phase to write would pay for a cold PostgreSQL: shared
	// buffers faulted in, WAL segments created instead of recycled. Run by
	// itself, the raw COPY measured ~25% slower than the same COPY run
	// next, so every phase starts from a server warmed by one untimed run.
	logf(o.Log, "warming PostgreSQL up: the raw COPY into a scratch table (not timed) …")
	warm := s.table + "_warmup"
	if err := e.cloneTable(ctx, s.table, warm); err != nil {
		return nil, nil, err
	}
	if _, err := e.phase(ctx, s, w.rows, warm, w.distinct, func(ctx context.Context, c *pgconn.PgConn, sh *shard) error {
		return copyShard(ctx, c, sh, warm, w.cols, o.BatchRows)
	}); err != nil {
		return nil, nil, fmt.Errorf("cannot warm PostgreSQL up: %w", err)
	}

	// copyInto times the raw COPY of shards into a fresh copy of s's
	// table named with suffix.
	copyInto := func(what, suffix string, shards []shard) (*Throughput, error) {
		table := s.table + suffix
		if err := e.cloneTable(ctx, s.table, table); err != nil {
			return nil, err
		}
		logf(o.Log, "%s: %d distinct rows over %d connections, %d rows per COPY …", what, w.rows, o.MaxConns, o.BatchRows)
		t, err := e.phase(ctx, s, w.rows, table, shards, func(ctx context.Context, c *pgconn.PgConn, sh *shard) error {
			return copyShard(ctx, c, sh, table, w.cols, o.BatchRows)
		})
		if err != nil {
			return nil, fmt.Errorf("cannot run the %s baseline: %w", what, err)
		}
		t.logPhase(o.Log)
		return t, nil
	}
	unsorted := func() (err error) {
		raw, err = copyInto("raw COPY", "_rawcopy", w.distinct)
		return err
	}
	sorted := func() (err error) {
		if !o.SortedBaseline {
			return nil
		}
		if w.keyField < 0 {
			logf(o.Log, "no key-sorted raw COPY: the %s schema is keyless", s.gen.Schema)
			return nil
		}
		rawSorted, err = copyInto("raw COPY, key-sorted batches", "_rawsorted", sortedByKey(w.distinct, w.keyField, o.BatchRows))
		return err
	}
	first, second := unsorted, sorted
	if sortedFirst {
		first, second = sorted, unsorted
	}
	if err := first(); err != nil {
		return nil, nil, err
	}
	if err := second(); err != nil {
		return nil, nil, err
	}
	return raw, rawSorted, nil
}

// rawLimit is the raw COPY limit: the faster of (a) and (a'), either of
// which may be nil.
func rawLimit(raw, rawSorted *Throughput) *Throughput {
	if rawSorted != nil && rawSorted.Seconds > 0 && (raw == nil || rawSorted.Seconds < raw.Seconds) {
		return rawSorted
	}
	return raw
}

// phase times one baseline writer over shards into table after a
// CHECKPOINT, checks that table then holds exactly rows rows, and drops it:
// a filled baseline table left behind would be vacuumed and analysed by
// autovacuum during the next phase, which would then pay for this one.
func (e *env) phase(ctx context.Context, s *stream, rows int64, table string, shards []shard, f func(context.Context, *pgconn.PgConn, *shard) error) (*Throughput, error) {
	if err := e.checkpoint(ctx); err != nil {
		return nil, err
	}
	cpu0 := e.cpuNow()
	d, err := e.parallel(ctx, shards, f)
	if err != nil {
		return nil, err
	}
	cpu := e.cpuNow().sub(cpu0, d)
	if err := e.countRows(ctx, table, rows); err != nil {
		return nil, err
	}
	if err := e.dropTable(ctx, table); err != nil {
		return nil, err
	}
	t := newThroughput(d, s.stats.Records, rows, s.stats.CommittedBytes)
	t.CPU = &cpu
	return &t, nil
}

func (e *env) dropTable(ctx context.Context, table string) error {
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "DROP TABLE "+table); err != nil {
		return fmt.Errorf("cannot drop the baseline table %s: %w", table, err)
	}
	return nil
}

// cloneTable creates empty copies of table (columns, defaults, primary key
// and indexes).
func (e *env) cloneTable(ctx context.Context, table string, clones ...string) error {
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	for _, cl := range clones {
		if _, err := c.Exec(ctx, "CREATE TABLE "+cl+" (LIKE "+table+" INCLUDING ALL)"); err != nil {
			return fmt.Errorf("cannot create the baseline table %s: %w", cl, err)
		}
		if e.pg == nil {
			e.owned = append(e.owned, cl)
		}
	}
	return nil
}

func (e *env) countRows(ctx context.Context, table string, want int64) error {
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		return fmt.Errorf("cannot count the rows of %s: %w", table, err)
	}
	if n != want {
		return fmt.Errorf("baseline table %s holds %d rows, want %d: the baseline is broken", table, n, want)
	}
	return nil
}

// parallel connects one connection per shard, then times f over all shards
// at once.
func (e *env) parallel(ctx context.Context, shards []shard, f func(context.Context, *pgconn.PgConn, *shard) error) (time.Duration, error) {
	conns := make([]*pgconn.PgConn, len(shards))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for i := range conns {
		c, err := pgconn.Connect(ctx, e.pgURL)
		if err != nil {
			return 0, fmt.Errorf("cannot connect to PostgreSQL: %w", err)
		}
		conns[i] = c
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	start := time.Now()
	for i := range shards {
		wg.Go(func() { errs[i] = f(ctx, conns[i], &shards[i]) })
	}
	wg.Wait()
	d := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

// sortedByKey returns copies of shards whose tuples, in each run of rows
// tuples (one COPY), are in ascending order of field keyField's bytes: the
// order in which Sluice's direct path copies a batch (binary uuid order is
// PostgreSQL's uuid order).
func sortedByKey(shards []shard, keyField, rows int) []shard {
	out := make([]shard, len(shards))
	for i := range shards {
		sh := &shards[i]
		o := &out[i]
		o.data = make([]byte, 0, len(sh.data))
		o.ends = make([]int, 0, len(sh.ends))
		idx := make([]int, 0, rows)
		for lo := 0; lo < len(sh.ends); lo += rows {
			idx = idx[:0]
			for k := lo; k < min(lo+rows, len(sh.ends)); k++ {
				idx = append(idx, k)
			}
			slices.SortFunc(idx, func(a, b int) int {
				return bytes.Compare(tupleField(sh.tuple(a), keyField), tupleField(sh.tuple(b), keyField))
			})
			for _, k := range idx {
				o.data = append(o.data, sh.tuple(k)...)
				o.ends = append(o.ends, len(o.data))
			}
		}
	}
	return out
}

// tupleField returns field i of a binary COPY tuple (nil for NULL).
func tupleField(t []byte, i int) []byte {
	off := 2
	for {
		n := int(int32(binary.BigEndian.Uint32(t[off:])))
		off += 4
		if i == 0 {
			if n < 0 {
				return nil
			}
			return t[off : off+n]
		}
		if n > 0 {
			off += n
		}
		i--
	}
}

const (
	copyHeader  = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"
	copyTrailer = "\xff\xff"
)

func quoteCols(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

func qualified(table string) string {
	return pgx.Identifier(strings.SplitN(table, ".", 2)).Sanitize()
}

// copyShard copies sh in chunks of rows tuples, one COPY (and one
// transaction) per chunk.
func copyShard(ctx context.Context, c *pgconn.PgConn, sh *shard, table string, cols []string, rows int) error {
	sql := "COPY " + qualified(table) + " (" + quoteCols(cols) + ") FROM STDIN (FORMAT binary)"
	hdr, trl := []byte(copyHeader), []byte(copyTrailer)
	for lo := 0; lo < len(sh.ends); lo += rows {
		hi := min(lo+rows, len(sh.ends))
		start := 0
		if lo > 0 {
			start = sh.ends[lo-1]
		}
		r := io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(sh.data[start:sh.ends[hi-1]]), bytes.NewReader(trl))
		if _, err := c.CopyFrom(ctx, r, sql); err != nil {
			return err
		}
	}
	return nil
}

// insertShard inserts sh with multi-row INSERT … ON CONFLICT DO NOTHING,
// per statement rows tuples as binary parameters (a COPY field is exactly
// a binary parameter value), one transaction per txRows tuples. Full
// statements are prepared once.
func insertShard(ctx context.Context, c *pgconn.PgConn, sh *shard, table string, cols []string, per, txRows int) error {
	stmt := func(n int) string {
		var b strings.Builder
		b.WriteString("INSERT INTO " + qualified(table) + " (" + quoteCols(cols) + ") VALUES ")
		p := 1
		for r := range n {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for k := range cols {
				if k > 0 {
					b.WriteString(", ")
				}
				b.WriteString("$" + strconv.Itoa(p))
				p++
			}
			b.WriteByte(')')
		}
		b.WriteString(" ON CONFLICT DO NOTHING")
		return b.String()
	}
	if _, err := c.Prepare(ctx, "bench_insert", stmt(per), nil); err != nil {
		return err
	}
	formats := []int16{1}
	var params [][]byte
	inTx := 0
	exec := func(sql string) error { _, err := c.Exec(ctx, sql).ReadAll(); return err }
	for lo := 0; lo < len(sh.ends); lo += per {
		hi := min(lo+per, len(sh.ends))
		if inTx == 0 {
			if err := exec("BEGIN"); err != nil {
				return err
			}
		}
		params = params[:0]
		for i := lo; i < hi; i++ {
			t := sh.tuple(i)
			off := 2
			for range cols {
				n := int32(binary.BigEndian.Uint32(t[off:]))
				off += 4
				if n < 0 {
					params = append(params, nil)
					continue
				}
				params = append(params, t[off:off+int(n)])
				off += int(n)
			}
		}
		var err error
		if hi-lo == per {
			_, err = c.ExecPrepared(ctx, "bench_insert", params, formats, nil).Close()
		} else {
			_, err = c.ExecParams(ctx, stmt(hi-lo), params, nil, formats, nil).Close()
		}
		if err != nil {
			return err
		}
		inTx += hi - lo
		if inTx >= txRows || hi == len(sh.ends) {
			if err := exec("COMMIT"); err != nil {
				return err
			}
			inTx = 0
		}
	}
	return nil
}
