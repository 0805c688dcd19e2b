package loadgen

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The cdc workload (Options.Workload "cdc") simulates a PostgreSQL source
// table,
//
//	orders(id int8 primary key, customer text, total numeric(12,2),
//	       status text, notes text, updated_at timestamp)
//
// receiving inserts, updates and deletes, and renders each change as the
// event Debezium's PostgreSQL connector writes through Kafka Connect's
// JsonConverter (topic shop.public.orders by convention; Options.Topic
// names it):
//
//   - the key is {"id": N} (with CDCSchema: wrapped with its Connect
//     schema), so all of a row's changes land in one partition;
//   - the value is the envelope {"before", "after", "source", "op",
//     "ts_ms", "transaction"}: op c for an insert (after: the new row), u
//     for an update (after: the whole new row; before null, as with the
//     default REPLICA IDENTITY), d for a delete (before: the key, its
//     other columns null; after null), each delete followed by its
//     tombstone (the same key, a null value);
//   - source.lsn increases with every fresh change (record i's LSN lies in
//     [2^24 + 64i, 2^24 + 64i + 64)), source.ts_ms and updated_at (µs since
//     the epoch) follow the record's position, 3 ms apart from
//     2026-11-01;
//   - without CDCSchema total is a decimal string ("12.50",
//     decimal.handling.mode=string); with it the envelope carries its
//     Connect schema, total is an org.apache.kafka.connect.data.Decimal
//     (base64 of the unscaled value, scale 2) and updated_at an
//     io.debezium.time.MicroTimestamp;
//   - an update changes status, often total, sometimes notes; one that
//     leaves a non-null notes alone sends it, with probability CDCToast,
//     as the placeholder __debezium_unavailable_value (an unchanged
//     TOASTed value); a twentieth of the notes are 2-4 KB, as TOASTed
//     values are;
//   - with Format avro the events are written as Confluent's AvroConverter
//     writes them, registry-framed Avro (cdc_avro.go), and bad records of
//     the framing kinds (Bad: wrong_magic, truncated, unknown_schema)
//     re-send a recent change spoilt, to be dead-lettered;
//   - dups (DupRatio) re-send one of the last 8 changes verbatim, replays
//     (CDCReplays) one of the last 1024; a re-sent insert or update is
//     always of a row that still exists, as a restarted connector's
//     would be.
//
// The source table's state after record i is a function of the options
// and i, and so is record i; the generator reaches it by simulating the
// table from record 0 (a Generator walks forward at no extra cost; At(i)
// for an i before the last one generated starts over from 0). Ids are
// assigned in insert order from 1 and never reused. Verify recomputes the
// source's final state the same way and compares the target with it.

// cdcWindow is how far back a replay reaches, in fresh changes.
const cdcWindow = 1024

// cdcDupWindow is how far back a dup reaches, in fresh changes.
const cdcDupWindow = 8

// cdcBaseLSN is the LSN of record 0.
const cdcBaseLSN = 1 << 24

// toastPlaceholder is Debezium's default unavailable.value.placeholder.
const toastPlaceholder = "__debezium_unavailable_value"

var (
	cdcCustomers = []string{"Ada Lovelace", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth", "Frances Allen",
		"Ken Thompson", "Radia Perlman", "John Backus", "Margaret Hamilton", "Leslie Lamport", "Shafi Goldwasser",
		"Tony Hoare", "Karen Spärck Jones", "Niklaus Wirth", "Sophie Wilson"}
	cdcStatuses = []string{"new", "paid", "packed", "shipped", "delivered", "returned", "cancelled"}
)

// cdcColumns are the target table's columns: the source's, the LSN as the
// guard and the Kafka offset (which verify does not compare).
var cdcColumns = []Column{
	{Name: "id", Type: "int8", Path: "id", Required: true},
	{Name: "customer", Type: "text", Path: "customer"},
	{Name: "total", Type: "numeric", Path: "total"},
	{Name: "status", Type: "text", Path: "status"},
	{Name: "notes", Type: "text", Path: "notes"},
	{Name: "updated_at", Type: "timestamptz", Path: "updated_at"},
	{Name: "lsn", Type: "int8", Source: "debezium.source.lsn"},
	{Name: "src_offset", Type: "int8", Source: "kafka.offset"},
}

// cdcSchema is the cdc workload's table, for the code that reads the
// columns and key of any workload's schema.
var cdcSchema = schema{name: WorkloadCDC, key: "id", columns: cdcColumns}

// cdcRow is one row of the simulated source table.
type cdcRow struct {
	at        int64 // the record that wrote this version: its LSN and updated_at
	total     int64 // cents
	notesOff  uint32
	notesLen  uint32
	livePos   int32 // index in cdcGen.live; -1 once deleted
	customer  uint16
	status    uint8
	notesNull bool
	toast     bool // the change at `at` sent notes as the placeholder
}

// cdcChange is a fresh change as it was rendered: enough to render it
// again, byte for byte.
type cdcChange struct {
	index int64
	id    int64
	op    byte   // 'c', 'u' or 'd'
	row   cdcRow // after the change (c, u)
}

// cdcGen is the cdc workload's state: the source table after the records
// before next.
type cdcGen struct {
	seed                                    uint64
	thrDup, thrReplay, thrUpdate, thrDelete uint64
	toast                                   uint64
	thrBad                                  [3]uint64 // wrong_magic, truncated, unknown_schema (format avro)
	wrap                                    bool
	avro                                    *cdcAvro // format avro; nil for JSON

	next         int64    // the record the state is before
	rows         []cdcRow // by id-1
	live         []int64  // ids of the rows that exist
	ring         [cdcWindow]cdcChange
	changes      int64 // fresh changes so far
	tombstoneFor int64 // the row a fresh delete left for the next record's tombstone; 0: none
	toasts       int64 // updates that sent notes as the placeholder

	// history, when not nil, keeps each row's earlier notes (verify's
	// AllowStaleToast).
	history map[int64][]cdcRow
}

func newCDCGen(o *Options) *cdcGen {
	z := &cdcGen{seed: uint64(o.Seed), wrap: o.CDCSchema}
	cum := o.DupRatio
	z.thrDup = threshold(cum)
	cum += o.CDCReplays
	z.thrReplay = threshold(cum)
	cum += o.CDCUpdates
	z.thrUpdate = threshold(cum)
	cum += o.CDCDeletes
	z.thrDelete = threshold(cum)
	z.toast = threshold(o.CDCToast)
	for k := KindWrongMagic; k <= KindUnknownSchema; k++ {
		cum += o.Bad[k]
		z.thrBad[k-KindWrongMagic] = threshold(cum)
	}
	if o.Format == FormatAvro {
		z.avro = newCDCAvro(o)
	}
	return z
}

func (z *cdcGen) reset() {
	keep := z.history != nil
	*z = cdcGen{seed: z.seed, thrDup: z.thrDup, thrReplay: z.thrReplay, thrUpdate: z.thrUpdate, thrDelete: z.thrDelete,
		toast: z.toast, thrBad: z.thrBad, wrap: z.wrap, avro: z.avro, rows: z.rows[:0], live: z.live[:0]}
	if keep {
		z.history = map[int64][]cdcRow{}
	}
}

// at fills r with record i, walking the table forward from where it is
// (from record 0 when i is behind it).
func (z *cdcGen) at(i int64, r *Rec) {
	if i < z.next {
		z.reset()
	}
	for z.next < i {
		z.step(z.next, nil)
	}
	z.step(i, r)
}

// cdcLSN is record i's source LSN: strictly increasing in i.
func (z *cdcGen) lsn(i int64) int64 {
	return cdcBaseLSN + 64*i + int64(mix(z.seed, domainLSN, uint64(i))%64)
}

// micros is record i's updated_at, µs since the epoch.
func (z *cdcGen) micros(i int64) int64 {
	return (baseMs+3*i)*1000 + int64(mix(z.seed, domainMicros, uint64(i))%3000)
}

// step applies record i to the table and, when r is not nil, renders it.
func (z *cdcGen) step(i int64, r *Rec) {
	z.next = i + 1
	if id := z.tombstoneFor; id != 0 {
		z.tombstoneFor = 0
		if r != nil {
			r.Kind, r.ID, r.Version = KindTombstone, id, 0
			r.Key = z.appendKey(r.Key[:0], id)
			r.scratch, r.Value = r.Value[:0], nil // a null value
		}
		return
	}
	x := mix(z.seed, domainKind, uint64(i))
	kind := KindGood
	switch {
	case x < z.thrDup:
		kind = KindDup
	case x < z.thrReplay:
		kind = KindReplay
	case x < z.thrUpdate:
		kind = KindUpdate
	case x < z.thrDelete:
		kind = KindDelete
	case x < z.thrBad[0]:
		kind = KindWrongMagic
	case x < z.thrBad[1]:
		kind = KindTruncated
	case x < z.thrBad[2]:
		kind = KindUnknownSchema
	}
	var ch cdcChange
	if kind.Bad() {
		// A bad record spoils a re-send of a recent change: the
		// appliance dead-letters it and the table is left as it was.
		if src, ok := z.resend(i, KindDup); ok {
			ch = src
		} else {
			kind = KindGood // nothing to re-send: a fresh insert
		}
	}
	if kind == KindDup || kind == KindReplay {
		if src, ok := z.resend(i, kind); ok {
			ch = src
		} else {
			kind = KindGood // nothing to re-send: a fresh insert
		}
	}
	if (kind == KindUpdate || kind == KindDelete) && len(z.live) == 0 {
		kind = KindGood
	}
	rg := rng{s: mix(z.seed, domainContent, uint64(i))}
	switch kind {
	case KindGood:
		row := cdcRow{at: i, livePos: int32(len(z.live)), customer: uint16(rg.intn(len(cdcCustomers))), total: 100 + int64(rg.intn(100_000))}
		z.newNotes(&row, &rg)
		z.rows = append(z.rows, row)
		id := int64(len(z.rows))
		z.live = append(z.live, id)
		ch = z.record(cdcChange{index: i, id: id, op: 'c', row: row})
	case KindUpdate:
		id := z.live[rg.intn(len(z.live))]
		row := &z.rows[id-1]
		row.at = i
		row.status = uint8(1 + rg.intn(len(cdcStatuses)-1))
		if rg.intn(2) == 0 {
			row.total = 100 + int64(rg.intn(100_000))
		}
		row.toast = false
		if rg.intn(5) == 0 {
			if z.history != nil {
				z.history[id] = append(z.history[id], *row)
			}
			z.newNotes(row, &rg)
		} else if !row.notesNull && rg.next() < z.toast {
			row.toast = true
		}
		ch = z.record(cdcChange{index: i, id: id, op: 'u', row: *row})
	case KindDelete:
		k := rg.intn(len(z.live))
		id := z.live[k]
		last := z.live[len(z.live)-1]
		z.live[k] = last
		z.rows[last-1].livePos = int32(k)
		z.live = z.live[:len(z.live)-1]
		z.rows[id-1].livePos = -1
		z.tombstoneFor = id
		ch = z.record(cdcChange{index: i, id: id, op: 'd'})
	}
	if kind == KindUpdate && ch.row.toast {
		z.toasts++
	}
	if r == nil {
		return
	}
	r.Kind, r.ID, r.Version = kind, ch.id, z.lsn(ch.index)
	r.Key = z.appendKey(r.Key[:0], ch.id)
	if r.Value == nil {
		r.Value = r.scratch[:0]
	}
	r.Value = z.appendValue(r.Value[:0], &ch)
	if kind.Bad() {
		r.Value = z.avro.corrupt(r.Value, kind, &rg)
	}
}

// record keeps a fresh change for later re-sends and returns it.
func (z *cdcGen) record(ch cdcChange) cdcChange {
	z.ring[z.changes%cdcWindow] = ch
	z.changes++
	return ch
}

// resend picks the change record i re-sends: for a dup one of the last
// cdcDupWindow fresh changes, for a replay an older one within cdcWindow.
// An insert or update qualifies only while its row exists.
func (z *cdcGen) resend(i int64, kind Kind) (cdcChange, bool) {
	n := min(z.changes, cdcWindow)
	if n == 0 {
		return cdcChange{}, false
	}
	lo, hi := int64(0), min(n, cdcDupWindow) // how far back: [lo, hi)
	if kind == KindReplay && n > cdcDupWindow {
		lo, hi = cdcDupWindow, n
	}
	rg := rng{s: mix(z.seed, domainDup, uint64(i))}
	for range 8 {
		back := lo + int64(rg.next()%uint64(hi-lo))
		ch := z.ring[(z.changes-1-back)%cdcWindow]
		if ch.op == 'd' || z.rows[ch.id-1].livePos >= 0 {
			return ch, true
		}
	}
	return cdcChange{}, false
}

// newNotes draws a row's notes: null (15%), 20-200 bytes, or (5%) 2-4 KB,
// the size PostgreSQL TOASTs.
func (z *cdcGen) newNotes(row *cdcRow, rg *rng) {
	x := rg.intn(100)
	row.notesNull = x < 15
	row.notesOff = uint32(rg.intn(len(corpus)))
	switch {
	case row.notesNull:
		row.notesLen = 0
	case x >= 95:
		row.notesLen = uint32(2000 + rg.intn(2000))
	default:
		row.notesLen = uint32(20 + rg.intn(180))
	}
}

func (z *cdcGen) appendKey(dst []byte, id int64) []byte {
	if z.avro != nil && z.avro.keyID != 0 {
		return z.avro.appendKey(dst, id)
	}
	if z.wrap {
		dst = append(dst, `{"schema":`...)
		dst = append(dst, cdcKeySchema...)
		dst = append(dst, `,"payload":`...)
	}
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, '}')
	if z.wrap {
		dst = append(dst, '}')
	}
	return dst
}

// appendValue appends the change event of ch.
func (z *cdcGen) appendValue(dst []byte, ch *cdcChange) []byte {
	if z.avro != nil {
		return z.avro.appendValue(dst, z, ch)
	}
	if z.wrap {
		dst = append(dst, `{"schema":`...)
		dst = append(dst, cdcEnvelopeSchema...)
		dst = append(dst, `,"payload":`...)
	}
	dst = append(dst, `{"before":`...)
	if ch.op == 'd' {
		dst = append(dst, `{"id":`...)
		dst = strconv.AppendInt(dst, ch.id, 10)
		dst = append(dst, `,"customer":null,"total":null,"status":null,"notes":null,"updated_at":null}`...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"after":`...)
	if ch.op == 'd' {
		dst = append(dst, "null"...)
	} else {
		dst = z.appendRow(dst, ch.id, &ch.row)
	}
	ms := z.micros(ch.index) / 1000
	dst = append(dst, `,"source":{"version":"2.7.3.Final","connector":"postgresql","name":"shop","ts_ms":`...)
	dst = strconv.AppendInt(dst, ms, 10)
	dst = append(dst, `,"snapshot":"false","db":"shop","schema":"public","table":"orders","txId":`...)
	dst = strconv.AppendInt(dst, 700+ch.index, 10)
	dst = append(dst, `,"lsn":`...)
	dst = strconv.AppendInt(dst, z.lsn(ch.index), 10)
	dst = append(dst, `,"xmin":null},"op":"`...)
	dst = append(dst, ch.op)
	dst = append(dst, `","ts_ms":`...)
	dst = strconv.AppendInt(dst, ms+40+ch.index%60, 10)
	dst = append(dst, `,"transaction":null}`...)
	if z.wrap {
		dst = append(dst, '}')
	}
	return dst
}

func (z *cdcGen) appendRow(dst []byte, id int64, row *cdcRow) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `,"customer":"`...)
	dst = append(dst, cdcCustomers[row.customer]...)
	dst = append(dst, `","total":"`...)
	if z.wrap {
		dst = appendDecimalBase64(dst, row.total)
	} else {
		dst = appendFixed(dst, row.total, 2)
	}
	dst = append(dst, `","status":"`...)
	dst = append(dst, cdcStatuses[row.status]...)
	dst = append(dst, `","notes":`...)
	switch {
	case row.toast:
		dst = append(dst, `"`+toastPlaceholder+`"`...)
	case row.notesNull:
		dst = append(dst, "null"...)
	default:
		dst = append(dst, '"')
		dst = appendCorpus(dst, int(row.notesOff), int(row.notesLen))
		dst = append(dst, '"')
	}
	dst = append(dst, `,"updated_at":`...)
	dst = strconv.AppendInt(dst, z.micros(row.at), 10)
	return append(dst, '}')
}

// appendDecimalBase64 appends the base64 of v's shortest big-endian two's
// complement, as Kafka Connect's Decimal carries the unscaled value.
func appendDecimalBase64(dst []byte, v int64) []byte {
	var b [8]byte
	return base64.StdEncoding.AppendEncode(dst, appendDecimalBytes(b[:0], v))
}

// cdcRowSchema is the Connect schema of a row of the source table, as
// before or after (the field name follows).
const cdcRowSchema = `{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},` +
	`{"type":"string","optional":true,"field":"customer"},` +
	`{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"total"},` +
	`{"type":"string","optional":true,"field":"status"},` +
	`{"type":"string","optional":true,"field":"notes"},` +
	`{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"updated_at"}],` +
	`"optional":true,"name":"shop.public.orders.Value","field":`

// cdcEnvelopeSchema is the Connect schema of the change events, as the
// PostgreSQL connector writes it with schemas.enable=true.
const cdcEnvelopeSchema = `{"type":"struct","fields":[` + cdcRowSchema + `"before"},` + cdcRowSchema + `"after"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},` +
	`{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},` +
	`{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},` +
	`{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},` +
	`{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],` +
	`"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},` +
	`{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},` +
	`{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}],` +
	`"optional":false,"name":"shop.public.orders.Envelope","version":1}`

// cdcKeySchema is the Connect schema of the key.
const cdcKeySchema = `{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"shop.public.orders.Key"}`

// cdcTableYAML is the target of the cdc workload as one item of the
// `tables:` list: a format: debezium table keyed by id, guarded by the
// source LSN, truncates not applied (the workload sends none); converter:
// avro for format avro (which also needs the schema_registry section).
func cdcTableYAML(table, topic, format string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n", yamlScalar(table))
	fmt.Fprintf(&b, "  topics: [%s]\n", yamlScalar(topic))
	b.WriteString("  format: debezium\n")
	if format == FormatAvro {
		b.WriteString("  converter: avro\n")
	}
	b.WriteString("  create: true\n  key: [id]\n  on_conflict: update\n  guard: lsn\n  columns:\n")
	writeColumnsYAML(&b, cdcColumns)
	return b.String()
}

// validateCDC checks the options of the cdc workload.
func (o *Options) validateCDC() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"cdc updates", o.CDCUpdates}, {"cdc deletes", o.CDCDeletes}, {"cdc replays", o.CDCReplays}, {"cdc toast", o.CDCToast}, {"dup ratio", o.DupRatio}} {
		if f.v < 0 || f.v > 1 {
			return fmt.Errorf("cannot use %s %v; use a fraction in [0,1]", f.name, f.v)
		}
	}
	if sum := o.DupRatio + o.CDCReplays + o.CDCUpdates + o.CDCDeletes; sum > 1+1e-9 {
		return fmt.Errorf("cannot use dup, replay, update and delete ratios that add up to %v for the cdc workload; their sum must be at most 1 (the rest are inserts)", sum)
	}
	switch {
	case o.Format != "" && o.Format != FormatJSON && o.Format != FormatAvro:
		return fmt.Errorf("cannot generate the cdc workload in format %s: it is Debezium's JSON or AvroConverter's Avro; use --format json or avro", o.Format)
	case o.Format == FormatAvro && o.CDCSchema:
		return fmt.Errorf("cannot wrap Avro change events with their Connect schema: the registry holds it; drop --cdc-schema")
	case o.KeySchemaID < 0 || o.KeySchemaID >= unknownSchemaID:
		return fmt.Errorf("cannot use key schema id %d; use the id the registry gave the key schema", o.KeySchemaID)
	case o.Keys != "" && o.Keys != KeysEventID:
		return fmt.Errorf("cannot key the cdc workload by %s: its key is the row's {\"id\": N}; drop --keys", o.Keys)
	case o.KeyCardinality != 0 || o.UpdateRatio != 0:
		return fmt.Errorf("cannot use key cardinality or update ratio with the cdc workload; use --cdc-updates and --cdc-deletes")
	case o.Format != FormatAvro && len(o.badByName()) > 0:
		return fmt.Errorf("cannot generate bad records in the cdc workload's JSON; drop --bad and --bad-ratio, or use --format avro (wrong_magic, truncated, unknown_schema)")
	case o.Transactional:
		return fmt.Errorf("cannot produce the cdc workload in transactions; drop --transactional")
	case o.Format == FormatAvro && !cdcBadOnly(o.Bad):
		return fmt.Errorf("cannot generate the bad records %v in the cdc workload; use wrong_magic, truncated or unknown_schema", o.badByName())
	case o.ValueCompression != "" && o.ValueCompression != "none":
		return fmt.Errorf("cannot compress cdc values one by one (value compression %s); use --compression for producer batches", o.ValueCompression)
	}
	return nil
}

// cdcBadOnly reports whether bad holds only the kinds the cdc workload
// generates in format avro: the registry framing kinds.
func cdcBadOnly(bad map[Kind]float64) bool {
	for k, r := range bad {
		if r > 0 && !cdcBadKind(k) {
			return false
		}
	}
	return true
}

func cdcBadKind(k Kind) bool { return k >= KindWrongMagic && k <= KindUnknownSchema }

// CDCFinalRows calls f, in id order, with each row of the cdc workload's
// source table after the records 0..records-1 of o's stream: its key and
// a snapshot read event (op r) carrying it, in the stream's encoding (with
// the schema wrapper when o.CDCSchema), whose decoding is the row the
// target must end with. It stops at f's first error and returns it.
func CDCFinalRows(o Options, records int64, f func(id int64, key, value []byte) error) error {
	o.Workload, o.Records = WorkloadCDC, records
	g := NewGenerator(o)
	if records > 0 {
		g.At(records-1, &Rec{})
	}
	z := g.cdc
	var key, val []byte
	for k := range z.rows {
		row := z.rows[k]
		if row.livePos < 0 {
			continue
		}
		id := int64(k + 1)
		row.toast = false // a snapshot reads the value
		key = z.appendKey(key[:0], id)
		val = z.appendValue(val[:0], &cdcChange{index: row.at, id: id, op: 'r', row: row})
		if err := f(id, key, val); err != nil {
			return err
		}
	}
	return nil
}

// CDCRows returns the number of rows of the cdc workload's source table
// after the records 0..records-1 of o's stream.
func CDCRows(o Options, records int64) int64 {
	o.Workload, o.Records = WorkloadCDC, records
	g := NewGenerator(o)
	if records > 0 {
		g.At(records-1, &Rec{})
	}
	return int64(len(g.cdc.live))
}
