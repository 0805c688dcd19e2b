package pgcopy

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// referenceTable is the reference event's target (docs/design.md,
// "Reference workload").
func referenceTable(name string) *Table {
	return &Table{
		Name: name,
		Columns: []Column{
			{Name: "event_id", SQLType: "uuid"}, {Name: "tenant_id", SQLType: "int8"}, {Name: "user_id", SQLType: "int8"}, {Name: "type", SQLType: "text"},
			{Name: "ts", SQLType: "timestamptz"}, {Name: "amount", SQLType: "float8"}, {Name: "url", SQLType: "text"}, {Name: "user_agent", SQLType: "text"},
			{Name: "attrs", SQLType: "jsonb"},
		},
		Key:    []string{"event_id"},
		Create: true,
	}
}

const (
	refURL   = "https://shop.example.com/checkout/cart?item=12345&ref=newsletter-2026-11"
	refAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
	refAttrs = `{"country": "DE", "device": "desktop", "session": "0b9c3c2e-6f0e-4a57-9d2a-2f4f0d7b1c11", "experiment": "checkout-v2"}`
)

func appendField(dst, v []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
	return append(dst, v...)
}

// appendReference appends the reference event with key id as a tuple; a
// keyed tuple starts with seq. The key's first half is a mix of id, as
// random as a v4 UUID's.
func appendReference(dst []byte, keyed bool, seq int64, id uint64) []byte {
	n := 9
	if keyed {
		n++
	}
	dst = AppendTupleHeader(dst, n)
	if keyed {
		dst = AppendInt8Field(dst, seq)
	}
	dst = binary.BigEndian.AppendUint32(dst, 16)
	dst = binary.BigEndian.AppendUint64(dst, mix64(id))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = AppendInt8Field(dst, int64(id%1000))
	dst = AppendInt8Field(dst, int64(id%100000))
	dst = appendField(dst, []byte("purchase"))
	dst = AppendInt8Field(dst, 846_806_401_234_000+int64(id)) // µs since 2000-01-01
	dst = binary.BigEndian.AppendUint32(dst, 8)
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(12.34))
	dst = appendField(dst, []byte(refURL))
	dst = appendField(dst, []byte(refAgent))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(refAttrs)+1))
	dst = append(dst, 1)
	return append(dst, refAttrs...)
}

// referenceBatch holds rows reference events with 1% duplicate keys, the
// keys starting at base: half of the duplicates repeat a key of the same
// batch, half (when base > 0) a key of an earlier batch.
type referenceBatch struct {
	keyed, raw []byte // with and without the seq field
	ends       []int
}

func makeReferenceBatch(rows int, base uint64) *referenceBatch {
	rb := &referenceBatch{}
	for i := range rows {
		id := base + uint64(i)
		switch {
		case i%200 == 99:
			id = base + uint64(i/2) // a duplicate of a key of this batch
		case i%200 == 199 && base > 0:
			id = base - 1 - uint64(i) // a key of an earlier batch
		}
		rb.keyed = appendReference(rb.keyed, true, int64(i), id)
		rb.ends = append(rb.ends, len(rb.keyed))
		rb.raw = appendReference(rb.raw, false, 0, id)
	}
	return rb
}

// mix64 is SplitMix64's finaliser: distinct ids give distinct, random-looking values.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

const benchRows = 10000

// BenchmarkPrepare measures the direct path's key work for a batch of
// 50,000 reference rows (1% duplicates): cutting the keys out of the
// tuples, sorting and deduplicating them (cut), or the same with keys the
// encoder cut beforehand (precut).
func BenchmarkPrepare(b *testing.B) {
	rb := makeReferenceBatch(50000, 1<<40)
	tbl := referenceTable("public.events")
	batch := &Batch{Table: tbl, Data: rb.keyed, Ends: rb.ends}
	fields := tbl.KeyFields()
	var d directKeys
	b.Run("cut", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !d.prepare(batch, fields) {
				b.Fatal("prepare refused the batch")
			}
		}
	})
	b.Run("update-guard", func(b *testing.B) {
		// on_conflict update with a guard, the guard the tuple's last
		// field: only keys occurring more than once read it.
		g := guardedTable("public.events")
		var data []byte
		var ends []int
		for i := range 50000 {
			id := uint64(1<<40 + i)
			if i%100 == 99 {
				id = uint64(1<<40 + i/2)
			}
			data = appendGuarded(data, true, int64(i), id, int64(i), 0)
			ends = append(ends, len(data))
		}
		gb := &Batch{Table: g, Data: data, Ends: ends}
		gf := g.KeyFields()
		b.ReportAllocs()
		for b.Loop() {
			if !d.prepareWinners(gb, gf, true, len(g.Columns)) {
				b.Fatal("prepare refused the batch")
			}
		}
	})
	pre := *batch
	for i := range pre.Ends {
		pre.Keys, _ = CutKey(pre.Keys, pre.Data[pre.start(i):pre.Ends[i]], fields)
		pre.KeyEnds = append(pre.KeyEnds, int32(len(pre.Keys)))
	}
	b.Run("precut", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !d.prepare(&pre, fields) {
				b.Fatal("prepare refused the batch")
			}
		}
	})
}

// preparedReferenceBatch returns a batch of 50,000 reference rows and
// its keys prepared for the direct path.
func preparedReferenceBatch(b *testing.B) (*Batch, *directKeys) {
	rb := makeReferenceBatch(50000, 1<<40)
	tbl := referenceTable("public.events")
	batch := &Batch{Table: tbl, Data: rb.keyed, Ends: rb.ends}
	d := &directKeys{}
	if !d.prepare(batch, tbl.KeyFields()) {
		b.Fatal("prepare refused the batch")
	}
	return batch, d
}

// BenchmarkResolveOps resolves the keys of a change batch of 50,000
// guarded reference rows in the writer (resolve.go), after prepare, as a
// claimed batch of a change table is: a quarter of the keys changed twice
// (the second time with a later guard), 10% deletes, 15% upserts keeping
// a column.
func BenchmarkResolveOps(b *testing.B) {
	g := guardedTable("public.events")
	g.Changes = true
	const n = 50000
	var data []byte
	var ends []int
	ops := make([]RowOp, n)
	unch := make([]uint64, n)
	for i := range n {
		id := uint64(1<<40 + i)
		if i%4 == 3 {
			id = uint64(1<<40 + i - 2)
		}
		switch {
		case i%10 == 1:
			ops[i] = RowDelete
		case i%20 == 2, i%20 == 5, i%20 == 8:
			unch[i] = 1 << 6
		}
		data = appendGuarded(data, true, int64(i), id, int64(i), 0)
		ends = append(ends, len(data))
	}
	batch := &Batch{Table: g, Data: data, Ends: ends, Ops: ops, Unchanged: unch}
	fields := g.KeyFields()
	var d directKeys
	// A first round grows the scratch, as a writer's first batch does.
	d.prepare(batch, fields)
	d.resolveOps(batch, PolicyUpdate, true, len(g.Columns))
	b.ReportAllocs()
	for b.Loop() {
		if !d.prepare(batch, fields) {
			b.Fatal("prepare refused the batch")
		}
		d.resolveOps(batch, PolicyUpdate, true, len(g.Columns))
	}
	b.ReportMetric(float64(len(d.opsRows)), "rows-staged")
}

// BenchmarkTupleReader streams a batch of 50,000 reference rows (25 MB,
// more than the caches hold) in key order, as the direct path's COPY
// does: a gather over the whole batch.
func BenchmarkTupleReader(b *testing.B) {
	batch, d := preparedReferenceBatch(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(batch.Data)))
	p := make([]byte, 65536)
	for b.Loop() {
		d.rd.reset(batch, d.sel)
		for {
			if _, err := d.rd.Read(p); err != nil {
				break
			}
		}
	}
}

func BenchmarkFraming(b *testing.B) {
	var rb referenceBatch
	rb.keyed = appendReference(nil, true, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(rb.keyed)))
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = appendReference(buf[:0], true, 1, 2)
	}
}

func BenchmarkCopyReader(b *testing.B) {
	rb := makeReferenceBatch(benchRows, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(rb.keyed)))
	var r copyReader
	p := make([]byte, 65536)
	for b.Loop() {
		r.reset(rb.keyed)
		for {
			if _, err := r.Read(p); err != nil {
				break
			}
		}
	}
}

// benchSetup migrates the reference table (and an identical raw one) into
// a fresh database and claims partition 0.
func benchSetup(b *testing.B) (string, *pgconn.PgConn, *Table, Claim) {
	url := newDB(b)
	c := connect(b, url)
	tbl := referenceTable("public.events")
	raw := referenceTable("public.events_raw")
	if err := Migrate(testCtx(b), c, "sluice", []*Table{tbl, raw}); err != nil {
		b.Fatal(err)
	}
	claims, err := ClaimPartitions(testCtx(b), c, "sluice", "g", map[string][]int32{"t": {0}})
	if err != nil {
		b.Fatal(err)
	}
	return url, c, tbl, claims[0]
}

// BenchmarkWrite measures the exactly-once path for 10k reference rows per
// batch: offsets CAS and key probe, COPY straight into the target, COMMIT
// (direct), or offsets CAS, COPY into staging, DISTINCT ON merge, COMMIT
// (merge, with Sluice's and with PostgreSQL's default session settings).
//
// direct/chunked copies in chunks of a quarter of the batch, each under a
// savepoint, as a table does after a key committed by another process
// met its COPY (copyNew).
func BenchmarkWrite(b *testing.B) {
	for _, v := range []struct {
		name, settings string
		merge, chunked bool
	}{
		{"direct", "", false, false},
		{"direct/chunked", "", false, true},
		{"merge/sluice-defaults", "", true, false},
		{"merge/postgres-defaults", "&temp_buffers=8MB&work_mem=4MB", true, false},
	} {
		b.Run(v.name, func(b *testing.B) {
			url, _, tbl, claim := benchSetup(b)
			w := NewWriter(url+v.settings, "sluice", "g")
			w.hooks = &hooks{noDirect: v.merge, chunkRows: benchRows / 4}
			defer w.Close(context.Background())
			from := int64(-1)
			var copyT, mergeT, commitT float64
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				b.StopTimer()
				rb := makeReferenceBatch(benchRows, uint64(n*benchRows))
				to := int64((n + 1) * benchRows)
				batch := &Batch{Table: tbl, Data: rb.keyed, Ends: rb.ends,
					Ranges: []Range{{Topic: "t", Partition: 0, Epoch: claim.Epoch, From: from, To: to}}}
				b.SetBytes(int64(len(rb.raw)))
				if v.chunked {
					ts, err := w.table(tbl)
					if err != nil {
						b.Fatal(err)
					}
					ts.chunked = 2
				}
				b.StartTimer()
				res, err := w.Write(context.Background(), batch)
				if err != nil {
					b.Fatal(err)
				}
				copyT += res.CopyTime.Seconds()
				mergeT += res.MergeTime.Seconds()
				commitT += res.CommitTime.Seconds()
				from = to
				n++
			}
			b.ReportMetric(float64(benchRows)*float64(n)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(copyT/float64(n)*1e3, "copy-ms")
			b.ReportMetric(mergeT/float64(n)*1e3, "merge-ms")
			b.ReportMetric(commitT/float64(n)*1e3, "commit-ms")
		})
	}
}

// BenchmarkRawCopy is the yardstick: the same rows (without seq) copied
// straight into an identical table, one COPY per batch, no merge.
func BenchmarkRawCopy(b *testing.B) {
	url, _, _, _ := benchSetup(b)
	c := connect(b, url)
	raw := referenceTable("public.events_raw")
	sql := raw.compile("unused").copyTarget
	var r copyReader
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		b.StopTimer()
		// Distinct keys: the raw table has the same primary key.
		rb := makeReferenceBatch(benchRows, uint64(n*benchRows))
		rb.raw = rb.raw[:0]
		for i := range benchRows {
			rb.raw = appendReference(rb.raw, false, 0, uint64(n*benchRows+i))
		}
		b.SetBytes(int64(len(rb.raw)))
		b.StartTimer()
		r.reset(rb.raw)
		if _, err := c.CopyFrom(context.Background(), &r, sql); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(benchRows)*float64(n)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkStaging compares staging and merge strategies by hand, each in
// one transaction per 10k-row batch: temporary vs unlogged staging, and
// INSERT … SELECT DISTINCT ON … ON CONFLICT vs MERGE.
func BenchmarkStaging(b *testing.B) {
	mergeSQL := func(stage string) string {
		return `MERGE INTO public.events t USING (SELECT DISTINCT ON (event_id) * FROM ` + stage + ` ORDER BY event_id, sluice_seq) s
ON t.event_id = s.event_id
WHEN NOT MATCHED THEN INSERT (event_id, tenant_id, user_id, type, ts, amount, url, user_agent, attrs)
VALUES (s.event_id, s.tenant_id, s.user_id, s.type, s.ts, s.amount, s.url, s.user_agent, s.attrs)`
	}
	tbl := referenceTable("public.events")
	variants := []struct {
		name, create, before string
		merge                func(stage string) string
	}{
		{"temp/distinct-on-insert", "CREATE TEMP TABLE stage (sluice_seq int8, LIKE public.events) ON COMMIT DELETE ROWS", "",
			func(string) string { return tbl.compile("stage").merge }},
		{"temp/merge", "CREATE TEMP TABLE stage (sluice_seq int8, LIKE public.events) ON COMMIT DELETE ROWS", "",
			func(string) string { return mergeSQL(`pg_temp.stage`) }},
		{"unlogged-truncate/distinct-on-insert", "CREATE UNLOGGED TABLE public.stage (sluice_seq int8, LIKE public.events)", "TRUNCATE public.stage",
			func(string) string {
				return `INSERT INTO public.events AS t SELECT DISTINCT ON (event_id) event_id, tenant_id, user_id, type, ts, amount, url, user_agent, attrs FROM public.stage ORDER BY event_id, sluice_seq ON CONFLICT (event_id) DO NOTHING`
			}},
		{"unlogged-delete/distinct-on-insert", "CREATE UNLOGGED TABLE public.stage (sluice_seq int8, LIKE public.events)", "DELETE FROM public.stage",
			func(string) string {
				return `INSERT INTO public.events AS t SELECT DISTINCT ON (event_id) event_id, tenant_id, user_id, type, ts, amount, url, user_agent, attrs FROM public.stage ORDER BY event_id, sluice_seq ON CONFLICT (event_id) DO NOTHING`
			}},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			url, _, _, _ := benchSetup(b)
			c := connect(b, url+"&temp_buffers=64MB&work_mem=64MB")
			mustExec(b, c, v.create)
			stage := "pg_temp.stage"
			if v.before != "" {
				stage = "public.stage"
			}
			copySQL := fmt.Sprintf(`COPY %s (sluice_seq, event_id, tenant_id, user_id, type, ts, amount, url, user_agent, attrs) FROM STDIN (FORMAT binary)`, stage)
			merge := v.merge(stage)
			var r copyReader
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				b.StopTimer()
				rb := makeReferenceBatch(benchRows, uint64(n*benchRows))
				b.SetBytes(int64(len(rb.raw)))
				b.StartTimer()
				mustExec(b, c, "BEGIN")
				if v.before != "" {
					mustExec(b, c, v.before)
				}
				r.reset(rb.keyed)
				if _, err := c.CopyFrom(context.Background(), &r, copySQL); err != nil {
					b.Fatal(err)
				}
				mustExec(b, c, merge)
				mustExec(b, c, "COMMIT")
				n++
			}
			b.ReportMetric(float64(benchRows)*float64(n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkWriteOps measures batches of a change stream through the ops
// stage (ops.go), 10k reference rows each: under PolicyIgnore with 5%
// deletes of keys stored by the previous batch (deletes), and under
// PolicyUpdate with the same deletes and 10% updates of stored keys
// keeping their url column (unchanged). Compare with
// BenchmarkWrite/merge/sluice-defaults, the same rows as plain upserts.
func BenchmarkWriteOps(b *testing.B) {
	for _, v := range []struct {
		name    string
		p       Policy
		claimed bool
	}{
		// claimed batches carry a KeyFilter, as the appliance's do: they
		// apply their plain and delete-only keys by a statement each
		// (ops.go); the loop ones apply every key in the loop, as
		// unclaimed batches do.
		{"deletes/split", PolicyIgnore, true},
		{"deletes/loop", PolicyIgnore, false},
		{"unchanged/split", PolicyUpdate, true},
		{"unchanged/loop", PolicyUpdate, false},
	} {
		b.Run(v.name, func(b *testing.B) {
			url, _, tbl, claim := benchSetup(b)
			tbl.OnConflict = v.p
			tbl.Changes = true
			var seen *KeyFilter
			if v.claimed {
				seen = NewKeyFilter(0)
			}
			w := NewWriter(url, "sluice", "g")
			defer w.Close(context.Background())
			from := int64(-1)
			var copyT, mergeT, commitT float64
			var deleted int64
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				b.StopTimer()
				base := uint64(n * benchRows)
				var data []byte
				var ends []int
				ops := make([]RowOp, benchRows)
				unch := make([]uint64, benchRows)
				for i := range benchRows {
					id := base + uint64(i)
					switch {
					case n > 0 && i%20 == 3:
						id, ops[i] = base-benchRows+uint64(i), RowDelete
					case n > 0 && i%10 == 5 && v.p == PolicyUpdate:
						id, unch[i] = base-benchRows+uint64(i), 1<<6 // url
					}
					data = appendReference(data, true, int64(i), id)
					ends = append(ends, len(data))
				}
				to := int64((n + 1) * benchRows)
				batch := &Batch{Table: tbl, Data: data, Ends: ends, Ops: ops, Unchanged: unch, Seen: seen,
					Ranges: []Range{{Topic: "t", Partition: 0, Epoch: claim.Epoch, From: from, To: to}}}
				b.SetBytes(int64(len(data)))
				b.StartTimer()
				res, err := w.Write(context.Background(), batch)
				if err != nil {
					b.Fatal(err)
				}
				copyT += res.CopyTime.Seconds()
				mergeT += res.MergeTime.Seconds()
				commitT += res.CommitTime.Seconds()
				deleted += res.Deleted
				from = to
				n++
			}
			if n > 1 && deleted == 0 {
				b.Fatal("nothing was deleted")
			}
			b.ReportMetric(float64(benchRows)*float64(n)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(copyT/float64(n)*1e3, "copy-ms")
			b.ReportMetric(mergeT/float64(n)*1e3, "merge-ms")
			b.ReportMetric(commitT/float64(n)*1e3, "commit-ms")
		})
	}
}

// BenchmarkClaim claims the keys of a batch of 50,000 reference rows on a
// KeyFilter while another batch holds 1% of them, as a direct batch of a
// null-keyed topic does (inflight.go): hashing, queueing, setting the
// shared keys aside, and the release.
func BenchmarkClaim(b *testing.B) {
	_, d := preparedReferenceBatch(b)
	f := NewKeyFilter(0)
	d.hashKeys(f)
	sel := slices.Clone(d.sel)
	var other []uint64
	for j := 0; j < len(d.hashes); j += 100 {
		other = append(other, d.hashes[j])
	}
	var ob claimBufs
	b.ReportAllocs()
	for b.Loop() {
		d.sel = append(d.sel[:0], sel...)
		o, _, _ := f.claim(other, &ob, nil, nil)
		d.hashKeys(f)
		var fl *flight
		clear(d.owners)
		fl, d.contested, d.owners = f.claim(d.hashes, &d.cb, d.contested[:0], d.owners[:0])
		d.setAside(d.contested)
		if len(d.later) != len(other) {
			b.Fatalf("%d keys set aside, want %d", len(d.later), len(other))
		}
		f.release(o)
		f.release(fl)
	}
}

// guardedTable is referenceTable with an int8 guard column, src_offset,
// last: the shape of an on_conflict update table fed by Kafka.
func guardedTable(name string) *Table {
	t := referenceTable(name)
	t.Columns = append(t.Columns, Column{Name: "src_offset", SQLType: "int8"})
	t.OffsetColumn = "src_offset"
	t.OnConflict = PolicyUpdate
	return t
}

// appendGuarded appends the reference event with key id and guard off as
// a tuple of guardedTable; version changes the row's content.
func appendGuarded(dst []byte, keyed bool, seq int64, id uint64, off int64, version int64) []byte {
	start := len(dst)
	dst = appendReference(dst, keyed, seq, id)
	binary.BigEndian.PutUint16(dst[start:], binary.BigEndian.Uint16(dst[start:])+1)
	if version > 0 {
		// The tenant_id field (after seq and the 16-byte key) is the version.
		p := start + 2 + 4 + 16
		if keyed {
			p += seqFieldBytes
		}
		binary.BigEndian.PutUint64(dst[p+4:], uint64(version))
	}
	return AppendInt8Field(dst, off)
}

// procCPU returns the CPU time (user and system) process pid has used, or
// -1 when /proc does not show it (a server on another machine).
func procCPU(pid uint32) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// BenchmarkWriteUpdates measures on_conflict update batches against the
// raw COPY limit of the same run, for each way of updating the stored
// keys. Each iteration builds a batch of updateRows guarded reference
// rows, a fraction of them newer versions (a higher guard) of keys chosen
// uniformly among all earlier ones, so mostly stored by earlier batches,
// the rest new keys. Every variant's Writer takes the batch on the direct
// path with a KeyFilter, as `sluice run` does, into its own table; a raw
// COPY writes the batch's new keys into another (the rows the table ends
// with, as bench's raw COPY limit does). The order rotates each
// iteration, so all of them see the same machine. ratio-<variant> is raw
// seconds / the variant's seconds over the run; cpu-<variant> the
// PostgreSQL backend's CPU milliseconds per batch (from /proc, when the
// server runs here), steadier than times on a loaded machine. Variants:
//
//   - update: optimistic, the UPDATE finding the stored keys (the default);
//   - probe+update: probing them with the compare-and-set first;
//   - probe+merge: probing them first, then INSERT … ON CONFLICT DO
//     UPDATE from the staging table (the path before the UPDATE);
//   - ff90: update into a target with fillfactor 90 (HOT updates).
//
// Run with e.g. -bench WriteUpdates -benchtime 10x: the tables then grow
// to about 150,000 rows at 30% updates.
func BenchmarkWriteUpdates(b *testing.B) {
	const updateRows = 20000
	type variant struct {
		name         string
		probe, merge bool
		fillfactor   int
		w            *Writer
		tbl          *Table
		epoch        int64
		t, cpu       time.Duration
	}
	for _, ratio := range []float64{0.3, 0.01} {
		b.Run(fmt.Sprintf("%g", 100*ratio), func(b *testing.B) {
			vs := []*variant{
				{name: "raw"},
				{name: "update"},
				{name: "probe+update", probe: true},
				{name: "probe+merge", probe: true, merge: true},
				{name: "ff90", fillfactor: 90},
			}
			url := newDB(b)
			c := connect(b, url)
			var tables []*Table
			parts := map[string][]int32{}
			for i, v := range vs {
				v.tbl = guardedTable(fmt.Sprint("public.events_", i))
				tables = append(tables, v.tbl)
				parts[fmt.Sprint("t", i)] = []int32{0}
			}
			if err := Migrate(testCtx(b), c, "sluice", tables); err != nil {
				b.Fatal(err)
			}
			claims, err := ClaimPartitions(testCtx(b), c, "sluice", "g", parts)
			if err != nil {
				b.Fatal(err)
			}
			for _, cl := range claims {
				i, _ := strconv.Atoi(strings.TrimPrefix(cl.Topic, "t"))
				vs[i].epoch = cl.Epoch
			}
			for _, v := range vs {
				if v.fillfactor > 0 {
					mustExec(b, c, fmt.Sprintf("ALTER TABLE %s SET (fillfactor = %d)", v.tbl.ident(), v.fillfactor))
				}
				v.w = NewWriter(url, "sluice", "g")
				v.w.hooks = &hooks{probeUpdates: v.probe, mergeUpdates: v.merge}
				defer v.w.Close(context.Background())
				if err := v.w.Prepare(testCtx(b), v.tbl); err != nil {
					b.Fatal(err)
				}
			}
			raw := vs[0].w.conn
			rawSQL := vs[0].tbl.compile("unused").copyTarget
			var seen []*KeyFilter
			for range vs {
				seen = append(seen, NewKeyFilter(0))
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var nextID uint64
			off := int64(0)
			from := int64(-1)
			var r copyReader
			n := 0
			for b.Loop() {
				var data, rawData []byte
				var ends []int
				for i := range updateRows {
					if nextID > 0 && rng.Float64() < ratio {
						data = appendGuarded(data, true, int64(i), rng.Uint64N(nextID), off, off)
					} else {
						data = appendGuarded(data, true, int64(i), nextID, off, 0)
						rawData = appendGuarded(rawData, false, 0, nextID, off, 0)
						nextID++
					}
					ends = append(ends, len(data))
					off++
				}
				for k := range vs {
					i := (n + k) % len(vs)
					v := vs[i]
					cpu0, t0 := procCPU(v.w.conn.PID()), time.Now()
					if i == 0 {
						r.reset(rawData)
						if _, err := raw.CopyFrom(context.Background(), &r, rawSQL); err != nil {
							b.Fatal(err)
						}
					} else {
						batch := &Batch{Table: v.tbl, Data: data, Ends: ends, Seen: seen[i],
							Ranges: []Range{{Topic: fmt.Sprint("t", i), Partition: 0, Epoch: v.epoch, From: from, To: off}}}
						res, err := v.w.Write(context.Background(), batch)
						if err != nil {
							b.Fatal(err)
						}
						if res.Attempts != 1 || !res.Direct {
							b.Fatalf("%s, batch %d: %+v, want one direct attempt", v.name, n, res)
						}
					}
					v.t += time.Since(t0)
					v.cpu += procCPU(v.w.conn.PID()) - cpu0
				}
				from = off
				n++
			}
			for _, v := range vs {
				if v.name != "raw" {
					b.ReportMetric(vs[0].t.Seconds()/v.t.Seconds(), "ratio-"+v.name)
				}
				if v.cpu >= 0 {
					b.ReportMetric(float64(v.cpu.Milliseconds())/float64(n), "cpu-"+v.name)
				}
			}
			for i, v := range vs {
				if v.fillfactor > 0 {
					hot := queryRows(b, c, fmt.Sprintf("SELECT n_tup_hot_upd, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'events_%d'", i))
					b.Logf("%s: %v HOT of all updates", v.name, hot)
				}
			}
			want := queryRows(b, c, "SELECT count(*), sum(tenant_id) FROM events_1")
			for i := 2; i < len(vs); i++ {
				if got := queryRows(b, c, fmt.Sprintf("SELECT count(*), sum(tenant_id) FROM events_%d", i)); !slices.Equal(got[0], want[0]) {
					b.Fatalf("%s holds %v, update %v", vs[i].name, got, want)
				}
			}
		})
	}
}

// BenchmarkKeyFilterLookup looks up 50,000 new keys (random hashes) in a
// KeyFilter that has seen 4,000,000, so its generations (8 MiB together)
// are out of the CPU's private caches, as in a long drain: the lookup of
// a direct batch (mayContain), then the batch's keys added (add).
func BenchmarkKeyFilterLookup(b *testing.B) {
	f := NewKeyFilter(0)
	r := rand.New(rand.NewPCG(1, 2))
	seen := make([]uint64, 50000)
	for range 80 {
		for i := range seen {
			seen[i] = r.Uint64()
		}
		f.add(seen)
	}
	hs := make([]uint64, 50000)
	may := make([]bool, len(hs))
	b.ReportAllocs()
	for b.Loop() {
		for i := range hs {
			hs[i] = r.Uint64()
		}
		f.mayContain(hs, may)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(hs)), "ns/key")
}
