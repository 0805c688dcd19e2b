package loadgen

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Kind says what a generated record is: a fresh good event, a verbatim
// re-send of an earlier one, or one of the bad kinds that must end up in the
// dead-letter table.
type Kind uint8

// Record kinds. The bad kinds follow KindReplay; their names are the
// configuration and manifest names (and, except for KindNUL, the codec's
// dead-letter reason).
const (
	KindGood Kind = iota
	KindDup
	KindUpdate
	// The cdc workload's own kinds (KindGood is an insert there).
	KindDelete
	KindTombstone
	KindReplay
	KindMalformedJSON
	KindWrongType
	KindMissingRequired
	KindInvalidUTF8
	KindNUL
	KindOutOfRange
	KindOversized
	KindBadCompression
	// Registry formats only (see Kind.appliesTo).
	KindWrongMagic
	KindTruncated
	KindUnknownSchema

	numKinds
)

// NumKinds is the number of record kinds; Kind values are below it.
const NumKinds = int(numKinds)

var kindNames = [numKinds]string{
	KindGood:            "good",
	KindDup:             "dup",
	KindUpdate:          "update",
	KindDelete:          "delete",
	KindTombstone:       "tombstone",
	KindReplay:          "replay",
	KindMalformedJSON:   "malformed_json",
	KindWrongType:       "wrong_type",
	KindMissingRequired: "missing_required",
	KindInvalidUTF8:     "invalid_utf8",
	KindNUL:             "nul",
	KindOutOfRange:      "out_of_range",
	KindOversized:       "oversized",
	KindBadCompression:  "bad_compression",
	KindWrongMagic:      "wrong_magic",
	KindTruncated:       "truncated",
	KindUnknownSchema:   "unknown_schema",
}

// reasons are the codec's dead-letter reasons for the bad kinds; verify uses
// them to check that a dead letter's error names why it was rejected.
var reasons = [numKinds]string{
	KindMalformedJSON:   "malformed_json",
	KindWrongType:       "wrong_type",
	KindMissingRequired: "missing_required",
	KindInvalidUTF8:     "invalid_utf8",
	KindNUL:             "nul_in_text",
	KindOutOfRange:      "out_of_range",
	KindOversized:       "oversized",
	KindBadCompression:  "bad_compression",
	KindWrongMagic:      "bad_framing",
	KindTruncated:       "schema_mismatch",
	KindUnknownSchema:   "unknown_schema",
}

// reasonFor is the dead-letter reason of a bad kind in a format.
func reasonFor(k Kind, format string) string {
	if k == KindTruncated && format == FormatJSONSchema {
		return reasons[KindMalformedJSON] // the payload is JSON cut short
	}
	return reasons[k]
}

// appliesTo reports whether records of kind k can be generated in format.
// The cdc workload's kinds apply to none. The JSON kinds need a JSON
// payload (JSON, JSON Schema): an Avro or Protobuf schema fixes every
// field's type and presence, so a wrong type, an out-of-range number or a
// missing field cannot be written. The framing kinds need a registry
// format.
func (k Kind) appliesTo(format string) bool {
	if k >= KindDelete && k <= KindReplay {
		return false // the cdc workload's, which has no format to choose
	}
	switch format {
	case FormatJSON, "":
		return k < KindWrongMagic
	case FormatJSONSchema:
		return k < numKinds
	}
	switch k {
	case KindMalformedJSON, KindWrongType, KindMissingRequired, KindOutOfRange:
		return false
	}
	return k < numKinds
}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Bad reports whether records of kind k cannot become a row.
func (k Kind) Bad() bool { return k >= KindMalformedJSON && k < numKinds }

// ParseKind returns the bad Kind named s, e.g. "wrong_type".
func ParseKind(s string) (Kind, error) {
	for k := KindMalformedJSON; k < numKinds; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("cannot use bad record kind %q; use one of %s", s, strings.Join(BadKindNames(), ", "))
}

// BadKindNames lists the bad kinds by name.
func BadKindNames() []string {
	var s []string
	for k := KindMalformedJSON; k < numKinds; k++ {
		s = append(s, kindNames[k])
	}
	return s
}

// Schemas, by the names Options.Schema accepts.
const (
	SchemaReference = "reference"
	SchemaNarrow    = "narrow"
	SchemaWide      = "wide"
)

// Record keys, by the names Options.Keys accepts.
const (
	// KeysEventID keys every record by its event id (a uuid string): all
	// occurrences of an event (re-sends, updates) land in one partition.
	KeysEventID = "event-id"
	// KeysNull sends records without a key, spread over the partitions by
	// the seed: a re-send lands on another partition than its original, an
	// update on any.
	KeysNull = "null"
	// KeysOtherField keys records by another field of the event, the
	// reference schema's tenant_id: many events share a key, and an
	// event's re-sends and updates (same tenant) land in its partition.
	KeysOtherField = "other-field"
)

var keyModes = []string{KeysEventID, KeysNull, KeysOtherField}

// Compressions accepted by Options.Compression and Options.ValueCompression.
var compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// Defaults.
const (
	DefaultTopic         = "events"
	DefaultSchema        = SchemaReference
	DefaultMaxValueBytes = 2 << 20
	DefaultTxnRecords    = 1000
)

// Workloads, by the names Options.Workload accepts.
const (
	// WorkloadEvents is the schema's events (reference, narrow, wide).
	WorkloadEvents = "events"
	// WorkloadCDC is a simulated source table's change events, rendered
	// as Debezium's JSON (cdc.go).
	WorkloadCDC = "cdc"
)

// The cdc workload's mix as the command-line flags default it (the
// Options fields' zero values mean none).
const (
	DefaultCDCUpdates = 0.5
	DefaultCDCDeletes = 0.1
	DefaultCDCReplays = 0.02
	DefaultCDCToast   = 0.3
)

// Options describes the simulated traffic. The same Options (in particular
// the same Seed) always produce the same records in the same order: record i
// is a pure function of the generation fields and i. Rate, ByteRate,
// Duration, Compression, Topic and Partitions only shape how the records are
// delivered, never their content.
type Options struct {
	// Seed selects the stream. Different seeds give different event ids and
	// contents.
	Seed int64 `json:"seed"`
	// Workload is events (default: the Schema's events) or cdc: the
	// change events of a simulated source table, an orders table, as
	// Debezium's PostgreSQL connector writes them (cdc.go). The cdc
	// workload takes DupRatio and the CDC fields; the events options
	// (Schema, Format, Keys, KeyCardinality, UpdateRatio, Bad, value
	// compression, transactions) do not apply to it.
	Workload string `json:"workload,omitempty"`
	// CDCUpdates and CDCDeletes are the fractions of records that update
	// and delete a live row of the source table (the rest of the fresh
	// changes insert one; an update or delete drawn while the table is
	// empty inserts). Each delete is followed by its tombstone, which
	// takes the next record's place.
	CDCUpdates float64 `json:"cdc_updates,omitempty"`
	CDCDeletes float64 `json:"cdc_deletes,omitempty"`
	// CDCReplays is the fraction of records that re-send an older change
	// verbatim (a connector restarted from an earlier position): the
	// target's guard must reject it. DupRatio re-sends one of the last few
	// changes. A re-sent insert or update is always of a row that exists
	// in the source at that point, as a connector's replay would be: a
	// replayed upsert of a deleted row would insert it again (a delete
	// leaves no guard behind).
	CDCReplays float64 `json:"cdc_replays,omitempty"`
	// CDCToast is the fraction of updates that leave notes unchanged and
	// send it as Debezium's placeholder __debezium_unavailable_value (an
	// unchanged TOASTed column), among those that leave it unchanged and
	// non-null.
	CDCToast float64 `json:"cdc_toast,omitempty"`
	// CDCSchema wraps key and value in Kafka Connect's schema envelope
	// ({"schema": ..., "payload": ...}, schemas.enable=true), total then a
	// Connect Decimal (base64) and updated_at an io.debezium.time.MicroTimestamp;
	// without it total is a decimal string (decimal.handling.mode=string).
	CDCSchema bool `json:"cdc_schema,omitempty"`
	// Schema is "reference" (default, ~480 bytes), "narrow" (~100 bytes) or
	// "wide" (~2 KB, ~40 fields).
	Schema string `json:"schema"`
	// Format is json (default), or a registry format carrying the
	// reference schema's events: avro, protobuf, json_schema (Confluent
	// wire format; see formats.go). ValueSize and the size spread apply to
	// the JSON rendering of an event.
	Format string `json:"format,omitempty"`
	// SchemaID is the registry id framed into registry-format records
	// (RegisterSchema sets it); required to produce them.
	SchemaID int `json:"schema_id,omitempty"`
	// KeySchemaID is the registry id framed into the keys of the cdc
	// workload in format avro (RegisterSchema sets it); 0 writes them as
	// JSON.
	KeySchemaID int `json:"key_schema_id,omitempty"`
	// EvolveAt, for a registry format (events workload), is the index of
	// the first record written with a second version of the reference
	// schema, registered under the same subject: the first with one added
	// optional field, channel (EvolvedField; Avro a union of null and
	// string with default null, Protobuf an optional string, JSON Schema
	// a string or null). Records from EvolveAt on are framed with
	// EvolvedSchemaID; an event version written from EvolveAt on (a good
	// record or an update) carries a channel drawn by the seed, one
	// written before (and a re-send of it, whatever its index) none, so a
	// table following the schema (evolve: add_columns) holds NULL there.
	// 0 writes every record with the first version.
	EvolveAt int64 `json:"evolve_at,omitempty"`
	// EvolvedSchemaID is the registry id of the second version
	// (RegisterSchema sets it when EvolveAt is set); required to produce
	// records from EvolveAt on.
	EvolvedSchemaID int `json:"evolved_schema_id,omitempty"`
	// Records is the number of records to produce; 0 means until Duration
	// (Produce requires one of the two).
	Records int64 `json:"records"`
	// Start is the first record Produce sends: it sends records
	// Start..Records-1 of the stream, so a stream can be produced in
	// rounds (Stats.Records is then the end index). Not with
	// Transactional.
	Start int64 `json:"start,omitempty"`
	// Duration bounds a run; 0 means until Records.
	Duration time.Duration `json:"duration"`
	// Rate is records per second; 0 is as fast as possible. Mutually
	// exclusive with ByteRate.
	Rate float64 `json:"rate"`
	// ByteRate is value bytes per second; 0 is as fast as possible.
	ByteRate float64 `json:"byte_rate"`

	// ValueSize is the mean size in bytes of a good value; 0 keeps the
	// schema's natural size (reference ~480, narrow ~100, wide ~2000). The
	// schema's variable-length text field (user_agent, tag, notes) absorbs
	// the difference, so a ValueSize below the fixed part cannot be reached.
	ValueSize int `json:"value_size"`
	// SizeSpread in [0,1] spreads the variable field's length uniformly over
	// mean×(1±SizeSpread); default 0.5 (set a negative value for exactly the
	// mean).
	SizeSpread float64 `json:"size_spread"`

	// KeyCardinality is the number of distinct event ids good records draw
	// from; 0 makes every good record a new event. With a cardinality,
	// records that share an id differ in content (an update stream).
	KeyCardinality int64 `json:"key_cardinality"`
	// DupRatio is the fraction of records that re-send an earlier good or
	// update record verbatim: same key, same value bytes, same headers.
	DupRatio float64 `json:"dup_ratio"`
	// UpdateRatio is the fraction of records that are a newer version of
	// an earlier good record: the same event id and unchanging fields, new
	// ts and amount (narrow: ts and value) and a higher version. Every
	// event carries "version": 1 + the index of the record that wrote that
	// version, so versions increase in stream order; a table fed by
	// spread keys (Keys null) needs `guard: version` for "update" to mean
	// "newest version" (see Verify). Keyed schemas only.
	UpdateRatio float64 `json:"update_ratio,omitempty"`
	// Keys is the Kafka record key: event-id (default), null or
	// other-field (KeysEventID, KeysNull, KeysOtherField). Bad records are
	// keyed the same way (their own uuid for event-id).
	Keys string `json:"keys,omitempty"`
	// Bad maps each bad kind to the fraction of records of that kind.
	Bad map[Kind]float64 `json:"-"`
	// MaxValueBytes is the size limit the appliance enforces; oversized
	// records are one byte longer. Default 2 MiB.
	MaxValueBytes int `json:"max_value_bytes"`

	// Compression is the producer batch compression: none (default), gzip,
	// snappy, lz4 or zstd.
	Compression string `json:"compression"`
	// ValueCompression compresses each good or bad value (except
	// bad_compression records, which are garbage by design) with the named
	// codec and marks it with a "content-encoding" header; "" or none
	// leaves values plain.
	ValueCompression string `json:"value_compression"`

	// Transactional produces in transactions of TxnRecords consecutive
	// records; AbortRatio of them (chosen by the seed) are aborted, so their
	// records must never land.
	Transactional bool    `json:"transactional"`
	AbortRatio    float64 `json:"abort_ratio"`
	TxnRecords    int     `json:"txn_records"`
	// TransactionalID defaults to "sluice-loadgen-<seed>".
	TransactionalID string `json:"transactional_id,omitempty"`

	// Topic defaults to "events".
	Topic string `json:"topic"`
	// Partitions, when positive, creates Topic with that many partitions if
	// it does not exist. With Keys event-id the producer's key hashing sends
	// every occurrence of an id to the same partition; with null keys
	// Produce picks each record's partition from the seed (Rec.Partition).
	Partitions int `json:"partitions"`
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.Workload == "" {
		o.Workload = WorkloadEvents
	}
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.Format == "" {
		o.Format = FormatJSON
	}
	if o.Keys == "" {
		o.Keys = KeysEventID
	}
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if o.MaxValueBytes == 0 {
		o.MaxValueBytes = DefaultMaxValueBytes
	}
	if o.SizeSpread == 0 {
		o.SizeSpread = 0.5
	}
	if o.SizeSpread < 0 {
		o.SizeSpread = -1 // stays "exact" across repeated EnsureDefaults
	}
	if o.TxnRecords == 0 {
		o.TxnRecords = DefaultTxnRecords
	}
	if o.Compression == "" {
		o.Compression = "none"
	}
	if o.ValueCompression == "" {
		o.ValueCompression = "none"
	}
	if o.Transactional && o.TransactionalID == "" {
		o.TransactionalID = fmt.Sprintf("sluice-loadgen-%d", o.Seed)
	}
	return o
}

// Validate reports the first invalid field, naming the option and the fix.
func (o *Options) Validate() error {
	switch o.Workload {
	case "", WorkloadEvents:
	case WorkloadCDC:
		if err := o.validateCDC(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("cannot use workload %q; use events or cdc", o.Workload)
	}
	switch o.Schema {
	case SchemaReference, SchemaNarrow, SchemaWide:
	default:
		return fmt.Errorf("cannot use schema %q; use reference, narrow or wide", o.Schema)
	}
	if o.Format != "" && !slices.Contains(formats, o.Format) {
		return fmt.Errorf("cannot use format %q; use one of %s", o.Format, strings.Join(formats, ", "))
	}
	if registryFormat(o.Format) && o.Schema != SchemaReference {
		return fmt.Errorf("cannot generate schema %s in format %s; registry formats carry the reference schema only", o.Schema, o.Format)
	}
	if o.SchemaID < 0 || o.SchemaID >= unknownSchemaID {
		return fmt.Errorf("cannot use schema id %d; use the id the registry gave the schema", o.SchemaID)
	}
	if o.EvolveAt < 0 {
		return fmt.Errorf("cannot evolve the schema at record %d; use a record index, or 0 for one schema version", o.EvolveAt)
	}
	if o.EvolveAt > 0 && (!registryFormat(o.Format) || o.Workload == WorkloadCDC) {
		return fmt.Errorf("cannot evolve the schema at record %d in format %s; a second schema version needs a registry format (avro, protobuf, json_schema) of the events workload", o.EvolveAt, o.Format)
	}
	if o.EvolvedSchemaID < 0 || o.EvolvedSchemaID >= unknownSchemaID {
		return fmt.Errorf("cannot use evolved schema id %d; use the id the registry gave the second schema version", o.EvolvedSchemaID)
	}
	if o.Records < 0 {
		return fmt.Errorf("cannot produce %d records; use a positive count, or 0 with a duration", o.Records)
	}
	if o.Start < 0 || o.Start > 0 && o.Transactional {
		return fmt.Errorf("cannot start at record %d; use a positive index, without transactions", o.Start)
	}
	if o.Duration < 0 {
		return fmt.Errorf("cannot run for a negative duration %v", o.Duration)
	}
	if o.Rate < 0 || o.ByteRate < 0 {
		return fmt.Errorf("cannot use a negative rate; use 0 for as fast as possible")
	}
	if o.Rate > 0 && o.ByteRate > 0 {
		return fmt.Errorf("cannot limit both records/s (rate %v) and bytes/s (byte rate %v); set only one", o.Rate, o.ByteRate)
	}
	if o.ValueSize < 0 {
		return fmt.Errorf("cannot use value size %d; use a positive mean size in bytes or 0 for the schema's natural size", o.ValueSize)
	}
	if o.SizeSpread > 1 {
		return fmt.Errorf("cannot use size spread %v; use a fraction in [0,1]", o.SizeSpread)
	}
	if o.KeyCardinality < 0 {
		return fmt.Errorf("cannot use key cardinality %d; use a positive count or 0 for unique events", o.KeyCardinality)
	}
	if o.Keys != "" && !slices.Contains(keyModes, o.Keys) {
		return fmt.Errorf("cannot use keys %q; use one of %s", o.Keys, strings.Join(keyModes, ", "))
	}
	if o.Keys == KeysOtherField && o.Schema != SchemaReference {
		return fmt.Errorf("cannot key %s events by another field: only the reference schema has one (tenant_id); use keys event-id or null", o.Schema)
	}
	if o.UpdateRatio < 0 || o.UpdateRatio > 1 {
		return fmt.Errorf("cannot use update ratio %v; use a fraction in [0,1]", o.UpdateRatio)
	}
	if o.UpdateRatio > 0 && o.Schema == SchemaWide {
		return fmt.Errorf("cannot generate updates (update ratio %v) for the keyless wide schema: every record is a row there; use schema reference or narrow", o.UpdateRatio)
	}
	if o.MaxValueBytes < 1024 {
		return fmt.Errorf("cannot use max value bytes %d; use at least 1024", o.MaxValueBytes)
	}
	sum := o.DupRatio + o.UpdateRatio
	if o.DupRatio < 0 || o.DupRatio > 1 {
		return fmt.Errorf("cannot use dup ratio %v; use a fraction in [0,1]", o.DupRatio)
	}
	for k, r := range o.Bad {
		if !k.Bad() {
			return fmt.Errorf("cannot use %q as a bad record kind; use one of %s", k, strings.Join(BadKindNames(), ", "))
		}
		if r < 0 || r > 1 {
			return fmt.Errorf("cannot use ratio %v for bad kind %s; use a fraction in [0,1]", r, k)
		}
		if r > 0 && !k.appliesTo(o.Format) {
			return fmt.Errorf("cannot generate %s records in format %s; use one of %s", k, o.Format, strings.Join(BadKindNamesFor(o.Format), ", "))
		}
		sum += r
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("cannot use dup, update and bad ratios that add up to %v; their sum must be at most 1", sum)
	}
	if !validCompression(o.Compression) {
		return fmt.Errorf("cannot use compression %q; use one of %s", o.Compression, strings.Join(compressions, ", "))
	}
	if !validCompression(o.ValueCompression) {
		return fmt.Errorf("cannot use value compression %q; use one of %s", o.ValueCompression, strings.Join(compressions, ", "))
	}
	if o.AbortRatio < 0 || o.AbortRatio > 1 {
		return fmt.Errorf("cannot use abort ratio %v; use a fraction in [0,1]", o.AbortRatio)
	}
	if o.AbortRatio > 0 && !o.Transactional {
		return fmt.Errorf("cannot abort transactions (abort ratio %v) without transactional producing; enable transactional", o.AbortRatio)
	}
	if o.TxnRecords < 0 {
		return fmt.Errorf("cannot use %d records per transaction; use a positive count", o.TxnRecords)
	}
	if o.Topic == "" {
		return fmt.Errorf("cannot produce without a topic; set the topic")
	}
	if o.Partitions < 0 {
		return fmt.Errorf("cannot create a topic with %d partitions; use a positive count or 0 to leave the topic as is", o.Partitions)
	}
	return nil
}

func validCompression(s string) bool {
	for _, c := range compressions {
		if s == c {
			return true
		}
	}
	return false
}

// SpreadBad spreads ratio evenly over every bad kind of o.Format except
// oversized (for JSON: ratio/7 each), so a single "bad ratio" covers the
// cheap kinds. Oversized records cost MaxValueBytes each and must be asked
// for explicitly. The cdc workload in format avro spreads it over the
// framing kinds. Set o.Workload and o.Format first.
func (o *Options) SpreadBad(ratio float64) {
	if o.Bad == nil {
		o.Bad = make(map[Kind]float64)
	}
	spread := func(k Kind) bool {
		if o.Workload == WorkloadCDC {
			return o.Format == FormatAvro && cdcBadKind(k)
		}
		return k != KindOversized && k.appliesTo(o.Format)
	}
	n := 0
	for k := KindMalformedJSON; k < numKinds; k++ {
		if spread(k) {
			n++
		}
	}
	for k := KindMalformedJSON; k < numKinds; k++ {
		if spread(k) {
			o.Bad[k] = ratio / float64(n)
		}
	}
}

// BadKindNamesFor lists the bad kinds that format can carry.
func BadKindNamesFor(format string) []string {
	var s []string
	for k := KindMalformedJSON; k < numKinds; k++ {
		if k.appliesTo(format) {
			s = append(s, kindNames[k])
		}
	}
	return s
}

// badByName is the JSON form of Options.Bad.
func (o *Options) badByName() map[string]float64 {
	m := make(map[string]float64, len(o.Bad))
	for k, r := range o.Bad {
		if r > 0 {
			m[k.String()] = r
		}
	}
	return m
}

func (o *Options) setBadByName(m map[string]float64) error {
	o.Bad = make(map[Kind]float64, len(m))
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k, err := ParseKind(n)
		if err != nil {
			return err
		}
		o.Bad[k] = m[n]
	}
	return nil
}
