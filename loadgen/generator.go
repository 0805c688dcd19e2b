package loadgen

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Rec is one generated record. Its slices are owned by the Rec and reused by
// the next Generator call that fills it: copy what must outlive that call.
type Rec struct {
	// Index is the record's position in the stream, from 0.
	Index int64
	// Kind is good, dup or a bad kind.
	Kind Kind
	// EventID is the uuid in Key. For good and dup records it is the
	// event_id (or id) in the value; bad records carry a fresh id of their
	// own, in the key only when the kind removed it from the value.
	EventID [16]byte
	// ID is the source row's id (cdc workload), the value of its key.
	ID int64
	// Txn is the transaction number (Index / TxnRecords) when the options are
	// transactional, else -1.
	Txn int64
	// Version is the event version the value carries: 1 + the index of
	// the record that wrote it (a dup carries its original's); for the
	// cdc workload the change's source LSN (0 for a tombstone).
	Version int64
	// Key is the Kafka key (Options.Keys): EventID as a 36-byte uuid
	// string, nil for null keys, or the tenant_id in decimal.
	Key []byte
	// Value is the record value, compressed when ValueCompression is set.
	Value []byte
	// Headers holds a content-encoding header when the value is compressed
	// (or claims to be, for bad_compression).
	Headers []kgo.RecordHeader

	// home (15 bits) and hop place a null-keyed record (Partition).
	home, hop uint16

	scratch []byte
}

// Partition returns the partition, of n, that a null-keyed record goes to:
// one drawn by the seed for the record it carries, so that a re-send goes
// elsewhere than its original whenever n > 1 (another draw moves it by 1 to
// n-1 partitions). Records with a key are placed by the producer's key
// hashing instead.
func (r *Rec) Partition(n int) int {
	return partitionOf(r.home, r.hop, n)
}

func partitionOf(home, hop uint16, n int) int {
	if n <= 1 {
		return 0
	}
	p := int(home) % n
	if hop != 0 {
		p = (p + 1 + int(hop-1)%(n-1)) % n
	}
	return p
}

// partitionHint packs home and hop into a kgo.Record's Partition field for
// the null-key partitioner (see producer.go); always non-negative.
func (r *Rec) partitionHint() int32 { return int32(r.home)<<16 | int32(r.hop) }

func hintPartition(hint int32, n int) int {
	return partitionOf(uint16(hint>>16), uint16(hint), n)
}

func (r *Rec) reset() {
	r.ID = 0
	r.Key = r.Key[:0]
	r.Value = r.Value[:0]
	r.Headers = r.Headers[:0]
}

// Generator produces the deterministic record stream described by Options.
// A Generator is not safe for concurrent use; independent Generators with
// equal Options produce identical streams.
type Generator struct {
	o     Options
	sch   *schema
	seed  uint64
	thr   [numKinds]uint64 // cumulative kind thresholds over uint64 draws
	abort uint64           // transaction abort threshold
	next  int64

	varMean, varLo, varSpan int

	plain bool     // skip the format's encoding and value compression (verify compares plain JSON)
	enc   *encoder // nil for FormatJSON
	cdc   *cdcGen  // the cdc workload's table; nil for events

	ctx recCtx

	headerVal []byte
	zenc      *zstd.Encoder
	genc      *gzip.Writer
	lenc      *lz4.Writer
	cbuf      bytes.Buffer
}

// NewGenerator returns a Generator positioned at record 0. It applies
// o.EnsureDefaults; the caller must ensure o passes Validate (NewGenerator
// panics otherwise, as a misuse of the package).
func NewGenerator(o Options) *Generator {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		panic(fmt.Sprintf("loadgen.NewGenerator: %v", err))
	}
	g := &Generator{o: o, sch: schemaByName(o.Schema), seed: uint64(o.Seed)}
	if o.Workload == WorkloadCDC {
		g.sch = &cdcSchema
		g.cdc = newCDCGen(&g.o)
		return g
	}
	cum := o.DupRatio
	g.thr[KindDup] = threshold(cum)
	cum += o.UpdateRatio
	g.thr[KindUpdate] = threshold(cum)
	for k := KindMalformedJSON; k < numKinds; k++ {
		cum += o.Bad[k]
		g.thr[k] = threshold(cum)
	}
	g.abort = threshold(o.AbortRatio)
	if registryFormat(o.Format) {
		g.enc = newEncoder(o.Format)
	}
	g.sizeVariable()
	if o.ValueCompression != "none" {
		g.headerVal = []byte(o.ValueCompression)
	}
	return g
}

// threshold maps a probability to a uint64 cut: a uniform draw x has
// x < threshold(p) with probability p.
func threshold(p float64) uint64 {
	switch {
	case p <= 0:
		return 0
	case p >= 1:
		return ^uint64(0)
	}
	return uint64(p * (1 << 63) * 2)
}

// sizeVariable picks the variable field's length distribution so that good
// values average ValueSize bytes (or the schema's natural size).
func (g *Generator) sizeVariable() {
	target := g.o.ValueSize
	if target == 0 {
		target = g.sch.naturalSize
	}
	var c recCtx
	var buf []byte
	total := 0
	const samples = 256
	for i := int64(0); i < samples; i++ {
		g.initCtx(&c, i, ident{kind: KindGood, src: i, root: i})
		c.varLen = 0
		buf = g.sch.render(buf[:0], &c)
		total += len(buf)
	}
	fixed := total / samples
	g.varMean = max(target-fixed, 0)
	spread := max(g.o.SizeSpread, 0)
	g.varLo = int(float64(g.varMean) * (1 - spread))
	g.varSpan = int(float64(g.varMean)*(1+spread)) - g.varLo + 1
}

// Options returns the generator's options with defaults applied.
func (g *Generator) Options() Options { return g.o }

// Columns returns the target table's columns for the generator's schema.
func (g *Generator) Columns() []Column { return g.sch.columns }

// KeyColumn returns the name of the target table's key column, "" for the
// keyless wide schema.
func (g *Generator) KeyColumn() string { return g.sch.key }

// SetIndex positions the generator so that the next call to Next fills record i.
func (g *Generator) SetIndex(i int64) { g.next = i }

// Next fills r with the next record and reports whether there was one: it
// returns false after Options.Records records (never, when Records is 0).
func (g *Generator) Next(r *Rec) bool {
	if g.o.Records > 0 && g.next >= g.o.Records {
		return false
	}
	g.At(g.next, r)
	g.next++
	return true
}

// At fills r with record i. It is a pure function of the options and i.
// For the cdc workload it costs nothing extra when i follows the last
// record generated, and replays the stream from record 0 when i is before
// it (cdc.go).
func (g *Generator) At(i int64, r *Rec) {
	r.reset()
	r.Index = i
	r.Txn = -1
	if g.cdc != nil {
		g.cdc.at(i, r)
		return
	}
	if g.o.Transactional {
		r.Txn = i / int64(g.o.TxnRecords)
	}
	id := g.identify(i)
	r.Kind = id.kind
	r.EventID = id.id
	r.Version = id.src + 1
	kind := id.kind
	if !kind.Bad() {
		kind = KindGood // a dup or an update renders as a good record
	}

	// The context lives in g: passed to a schema's render func it would
	// escape and cost an allocation per record.
	c := &g.ctx
	g.initCtx(c, i, id)
	c.id = r.EventID
	if g.o.Keys == KeysNull {
		r.home = uint16(mix(g.seed, domainPart, uint64(id.src)) & 0x7fff)
		r.hop = 0
		if id.kind == KindDup {
			r.hop = 1 + uint16(mix(g.seed, domainHop, uint64(i))%0x7fff)
		}
	}
	defer g.setKey(r, c)
	switch kind {
	case KindBadCompression:
		r.Value = appendGarbage(r.Value, &c.rng)
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "content-encoding", Value: zstdHeader})
		return
	case KindOversized:
		g.oversized(r, i, id)
		return // never value-compressed: the size is the point
	case KindMalformedJSON:
		r.Value = g.sch.render(r.Value, c)
		// Any proper prefix of a JSON object is invalid.
		cut := 1 + int(c.rng.next()%uint64(len(r.Value)-1))
		r.Value = r.Value[:cut]
	default:
		r.Value = g.sch.render(r.Value, c)
	}
	if g.enc != nil && !g.plain {
		g.frame(r, kind, c)
	}
	if g.headerVal != nil && !g.plain {
		g.compress(r)
	}
}

// oversized renders an oversized record: exactly MaxValueBytes+1 bytes in
// the stream's format.
func (g *Generator) oversized(r *Rec, i int64, id ident) {
	kind := id.kind
	c := &g.ctx
	c.varLen = 0
	probe := g.sch.render(r.Value[:0], c)
	if g.enc != nil && !g.plain {
		r.Value = probe
		g.frame(r, kind, c)
		probe = r.Value
	}
	fixed := len(probe)
	want := g.o.MaxValueBytes + 1
	varLen := want - fixed
	// A registry format's length prefixes grow with the text: adjust until
	// the size is exact (two rounds at most in practice).
	for range 4 {
		g.initCtx(c, i, id)
		c.id = r.EventID
		c.varLen = max(varLen, 0)
		r.Value = g.sch.render(r.Value[:0], c)
		if g.enc == nil || g.plain {
			return
		}
		g.frame(r, kind, c)
		if len(r.Value) == want {
			return
		}
		varLen += want - len(r.Value)
	}
}

// frame replaces r.Value, the JSON rendering of the event, by its
// registry-format encoding with the wire-format prefix, and injects the
// framing kinds.
func (g *Generator) frame(r *Rec, kind Kind, c *recCtx) {
	id, v := uint32(g.o.SchemaID), 0
	if g.o.EvolveAt > 0 && r.Index >= g.o.EvolveAt {
		id, v = uint32(g.o.EvolvedSchemaID), 1
	}
	if kind == KindUnknownSchema {
		id = unknownSchemaID + uint32(c.rng.intn(16))
	}
	out := appendFraming(r.scratch[:0], g.o.Format, id)
	prefix := len(out)
	out, uaOff, err := g.enc.appendPayload(out, r.Value, v)
	if err != nil {
		panic(fmt.Sprintf("loadgen: record %d: %v", r.Index, err))
	}
	switch kind {
	case KindWrongMagic:
		// Neither 0 (an id follows) nor 1 (a GUID follows): both are
		// framings a reader accepts, and 1 would make the record an
		// unknown_schema one instead.
		out[0] = byte(2 + c.rng.intn(254))
	case KindTruncated:
		switch g.o.Format {
		case FormatProtobuf:
			// Cut inside user_agent's bytes: a cut between fields would
			// leave a valid, shorter message.
			n := len(g.enc.ev.UserAgent)
			out = out[:uaOff+c.rng.intn(n)]
		default:
			// Any proper prefix of an Avro record or a JSON object is
			// invalid, the empty payload included.
			out = out[:prefix+c.rng.intn(len(out)-prefix)]
		}
	}
	// Swap buffers: the JSON buffer becomes the next call's scratch.
	r.Value, r.scratch = out, r.Value
}

// ident is what a record is, resolved without rendering it.
type ident struct {
	kind Kind
	id   [16]byte
	// src is the record whose event version this one carries: i itself,
	// or the earlier good or update record a dup re-sends. The version is
	// src+1.
	src int64
	// root is the good record whose content the event's unchanging fields
	// come from: src, or the earlier good record the update src revises.
	root int64
}

// identify resolves record i's kind, event id, version and content
// without rendering it.
func (g *Generator) identify(i int64) ident {
	kind := g.kindAt(i)
	if kind.Bad() {
		return ident{kind: kind, id: g.uuid(domainID, uint64(i)), src: i, root: i}
	}
	src := i
	if kind == KindDup {
		if src = g.dupSource(i); src < 0 {
			kind, src = KindGood, i // nothing earlier to re-send: a fresh event
		}
	}
	root := src
	if src == i && kind == KindUpdate || kind == KindDup && g.kindAt(src) == KindUpdate {
		if root = g.updateSource(src); root < 0 {
			root = src // nothing earlier to revise: a fresh event
			if src == i {
				kind = KindGood
			}
		}
	}
	return ident{kind: kind, id: g.goodID(root), src: src, root: root}
}

// TxnAborted reports whether transaction txn is aborted by design.
func (g *Generator) TxnAborted(txn int64) bool {
	if !g.o.Transactional || txn < 0 {
		return false
	}
	return mix(g.seed, domainAbort, uint64(txn)) < g.abort
}

// kindAt is record i's drawn kind, before dup resolution.
func (g *Generator) kindAt(i int64) Kind {
	x := mix(g.seed, domainKind, uint64(i))
	if x < g.thr[KindDup] {
		return KindDup
	}
	if x < g.thr[KindUpdate] {
		return KindUpdate
	}
	for k := KindMalformedJSON; k < numKinds; k++ {
		if x < g.thr[k] {
			return k
		}
	}
	return KindGood
}

// dupSource picks the earlier good or update record that record i
// re-sends, or -1.
func (g *Generator) dupSource(i int64) int64 {
	if i == 0 {
		return -1
	}
	r := rng{s: mix(g.seed, domainDup, uint64(i))}
	for range 16 {
		j := int64(r.next() % uint64(i))
		if k := g.kindAt(j); k == KindGood || k == KindUpdate {
			return j
		}
	}
	return -1
}

// updateDraws bounds updateSource's draws. Good records are 1 - dups -
// updates - bad of the stream: at --update-ratio 0.9, 9%. Sixteen draws
// then missed 22% of the time and the update became a fresh event, so a
// stream asked for 90% updates held 69%; 256 miss once in 10^10. The
// first sixteen draws are the same as before, so streams whose updates
// found their event in sixteen (every one at ratios up to 0.5, in
// practice) are unchanged.
const updateDraws = 256

// updateSource picks the earlier good record that update i revises, or -1.
// Its draws are the update's own, so a dup of the update resolves to the
// same event.
func (g *Generator) updateSource(i int64) int64 {
	if i == 0 {
		return -1
	}
	r := rng{s: mix(g.seed, domainUpdate, uint64(i))}
	for range updateDraws {
		j := int64(r.next() % uint64(i))
		if g.kindAt(j) == KindGood {
			return j
		}
	}
	return -1
}

func (g *Generator) goodID(i int64) [16]byte {
	if g.o.KeyCardinality > 0 {
		slot := mix(g.seed, domainSlot, uint64(i)) % uint64(g.o.KeyCardinality)
		return g.uuid(domainSlotID, slot)
	}
	return g.uuid(domainID, uint64(i))
}

func (g *Generator) uuid(domain, n uint64) [16]byte {
	r := rng{s: mix(g.seed, domain, n)}
	var u [16]byte
	a, b := r.next(), r.next()
	for k := range 8 {
		u[k] = byte(a >> (8 * k))
		u[8+k] = byte(b >> (8 * k))
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

func (g *Generator) initCtx(c *recCtx, i int64, id ident) {
	kind := id.kind
	if !kind.Bad() {
		kind = KindGood
	}
	c.index = id.root
	c.kind = kind
	c.version = id.src + 1
	c.update = id.src != id.root
	if c.update {
		c.urng = rng{s: mix(g.seed, domainVersion, uint64(id.src))}
	}
	c.channel = ""
	if g.o.EvolveAt > 0 && id.src >= g.o.EvolveAt {
		// The second schema version's field, of the version src wrote
		// (a re-send carries its original's): drawn apart from rng so
		// that the other fields are the same with or without it.
		c.channel = channels[mix(g.seed, domainChannel, uint64(id.src))%uint64(len(channels))]
	}
	c.rng = rng{s: mix(g.seed, domainContent, uint64(id.root))}
	c.varLen = g.varLo
	if g.varSpan > 1 {
		c.varLen += int(c.rng.next() % uint64(g.varSpan))
	}
	if kind.Bad() {
		// A bad record's content is its own, not a good record's.
		c.rng = rng{s: mix(g.seed, domainBad, uint64(i))}
		c.index = i
	}
}

// setKey sets r.Key by Options.Keys once r is rendered (c.tenant is the
// rendered tenant_id).
func (g *Generator) setKey(r *Rec, c *recCtx) {
	switch g.o.Keys {
	case KeysNull:
		r.Key = nil
	case KeysOtherField:
		if r.Kind == KindBadCompression {
			// Garbage has no tenant: draw one as a producer would find it.
			c.tenant = 1 + int64(mix(g.seed, domainBad, uint64(r.Index))%5000)
		}
		r.Key = strconv.AppendInt(r.Key[:0], c.tenant, 10)
	default:
		r.Key = appendUUID(r.Key[:0], r.EventID)
	}
}

var zstdHeader = []byte("zstd")

func (g *Generator) compress(r *Rec) {
	var err error
	switch g.o.ValueCompression {
	case "zstd":
		if g.zenc == nil {
			g.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
			if err != nil {
				panic(fmt.Sprintf("loadgen: cannot create a zstd encoder: %v", err))
			}
		}
		r.scratch = g.zenc.EncodeAll(r.Value, r.scratch[:0])
	case "snappy":
		r.scratch = snappy.Encode(r.scratch[:cap(r.scratch)], r.Value)
	case "gzip", "lz4":
		g.cbuf.Reset()
		if g.o.ValueCompression == "gzip" {
			if g.genc == nil {
				g.genc, _ = gzip.NewWriterLevel(&g.cbuf, gzip.BestSpeed)
			} else {
				g.genc.Reset(&g.cbuf)
			}
			g.genc.Write(r.Value)
			err = g.genc.Close()
		} else {
			if g.lenc == nil {
				g.lenc = lz4.NewWriter(&g.cbuf)
			} else {
				g.lenc.Reset(&g.cbuf)
			}
			g.lenc.Write(r.Value)
			err = g.lenc.Close()
		}
		if err != nil {
			panic(fmt.Sprintf("loadgen: cannot %s-compress a value in memory: %v", g.o.ValueCompression, err))
		}
		r.scratch = append(r.scratch[:0], g.cbuf.Bytes()...)
	}
	// Swap buffers rather than copy: Value keeps the compressed bytes and
	// the plain buffer becomes the next call's scratch.
	r.Value, r.scratch = r.scratch, r.Value
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: "content-encoding", Value: g.headerVal})
}

// recCtx is what a schema renderer draws one record's content from.
type recCtx struct {
	rng    rng
	index  int64
	id     [16]byte
	kind   Kind // KindGood or a bad kind the renderer must inject
	varLen int  // length of the schema's variable text field

	version int64 // the "version" field
	update  bool  // a newer version: the changing fields come from urng
	urng    rng
	tenant  int64  // set by the reference renderer: the tenant_id it wrote
	channel string // the evolved field's value (Options.EvolveAt); "" for none
}

// Hash domains keep the per-purpose streams independent.
const (
	domainKind uint64 = iota + 1
	domainDup
	domainID
	domainSlot
	domainSlotID
	domainContent
	domainBad
	domainAbort
	domainUpdate
	domainVersion
	domainPart
	domainHop
	domainLSN
	domainMicros
	domainChannel
)

// mix hashes (seed, domain, n) into a well-distributed uint64 (splitmix64
// finalizer over a combination that differs for every triple in practice).
func mix(seed, domain, n uint64) uint64 {
	return splitmix(splitmix(seed^domain*0x9e3779b97f4a7c15) + n*0xbf58476d1ce4e5b9)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// rng is splitmix64: tiny state, cheap, and good enough for test traffic.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	x := r.s
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

const hexDigits = "0123456789abcdef"

// appendUUID appends u in the canonical 8-4-4-4-12 lowercase form.
func appendUUID(dst []byte, u [16]byte) []byte {
	for k, b := range u {
		if k == 4 || k == 6 || k == 8 || k == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst
}

// parseUUID parses the canonical form; ok is false for anything else.
func parseUUID(s []byte) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for k := 0; k < 36; {
		if s[k] == '-' {
			k++
			continue
		}
		hi, ok1 := unhex(s[k])
		lo, ok2 := unhex(s[k+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		k += 2
	}
	return u, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendFixed appends v/10^scale with exactly scale decimals, e.g. 1234 with
// scale 2 is "12.34".
func appendFixed(dst []byte, v int64, scale int) []byte {
	if v < 0 {
		dst = append(dst, '-')
		v = -v
	}
	var p int64 = 1
	for range scale {
		p *= 10
	}
	dst = strconv.AppendInt(dst, v/p, 10)
	dst = append(dst, '.')
	f := v % p
	for p /= 10; p > 0; p /= 10 {
		dst = append(dst, byte('0'+f/p))
		f %= p
	}
	return dst
}

// appendTimestampMs appends ms since the Unix epoch as RFC 3339 UTC with
// milliseconds, e.g. 2026-11-01T00:00:01.234Z, without time.Time.
func appendTimestampMs(dst []byte, ms int64) []byte {
	days := ms / 86400000
	rem := ms % 86400000
	// Civil from days (H. Hinnant), valid for the years we generate.
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	dst = append4(dst, int(y))
	dst = append(dst, '-')
	dst = append2(dst, int(m))
	dst = append(dst, '-')
	dst = append2(dst, int(d))
	dst = append(dst, 'T')
	dst = append2(dst, int(rem/3600000))
	dst = append(dst, ':')
	dst = append2(dst, int(rem/60000%60))
	dst = append(dst, ':')
	dst = append2(dst, int(rem/1000%60))
	dst = append(dst, '.')
	msPart := int(rem % 1000)
	dst = append(dst, byte('0'+msPart/100), byte('0'+msPart/10%10), byte('0'+msPart%10))
	return append(dst, 'Z')
}

func append2(dst []byte, v int) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }

func append4(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

// appendGarbage appends 64..575 random bytes that are not a zstd frame (the
// first byte is never the frame magic's 0x28).
func appendGarbage(dst []byte, r *rng) []byte {
	n := 64 + r.intn(512)
	for k := 0; k < n; k += 8 {
		x := r.next()
		for b := 0; b < 8 && k+b < n; b++ {
			dst = append(dst, byte(x>>(8*b)))
		}
	}
	if dst[len(dst)-n] == 0x28 {
		dst[len(dst)-n] = 0x29
	}
	return dst
}
