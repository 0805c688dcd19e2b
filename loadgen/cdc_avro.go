package loadgen

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"
)

// The cdc workload in format avro (Options.Format FormatAvro) carries the
// same change events as its JSON, written as Confluent's AvroConverter
// writes Debezium's: the value a datum of CDCAvroValueSchema (the
// Envelope, registered as subject "<topic>-value") and the key a datum of
// CDCAvroKeySchema ("<topic>-key"), each in the Confluent wire format
// (magic byte 0, the schema id as 4 bytes big-endian). total is a Connect
// Decimal (bytes, logical type decimal, scale 2), updated_at an
// io.debezium.time.MicroTimestamp (long); a tombstone's value stays null.
// Without a key schema id (Options.KeySchemaID 0) keys are the JSON
// {"id": N}, as a key.converter JsonConverter without schemas writes
// them. Codec's Debezium decoder with ConverterAvro converts each datum
// back to the JsonConverter event with its Connect schema, whose payload
// is the JSON workload's with CDCSchema.

// CDCAvroValueSchema is the Envelope of the cdc workload's change events
// as AvroConverter registers it for Debezium's PostgreSQL connector
// (topic prefix shop, table public.orders).
const CDCAvroValueSchema = `{"type":"record","name":"Envelope","namespace":"shop.public.orders","fields":[` +
	`{"name":"before","type":["null",{"type":"record","name":"Value","fields":[` +
	`{"name":"id","type":"long"},` +
	`{"name":"customer","type":["null","string"],"default":null},` +
	`{"name":"total","type":["null",{"type":"bytes","scale":2,"precision":12,"connect.version":1,` +
	`"connect.parameters":{"scale":"2","connect.decimal.precision":"12"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],"default":null},` +
	`{"name":"status","type":["null","string"],"default":null},` +
	`{"name":"notes","type":["null","string"],"default":null},` +
	`{"name":"updated_at","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}],"default":null}` +
	`],"connect.name":"shop.public.orders.Value"}],"default":null},` +
	`{"name":"after","type":["null","Value"],"default":null},` +
	`{"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[` +
	`{"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},{"name":"ts_ms","type":"long"},` +
	`{"name":"snapshot","type":[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,last,false,incremental"},` +
	`"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],"default":"false"},` +
	`{"name":"db","type":"string"},{"name":"schema","type":"string"},{"name":"table","type":"string"},` +
	`{"name":"txId","type":["null","long"],"default":null},{"name":"lsn","type":["null","long"],"default":null},` +
	`{"name":"xmin","type":["null","long"],"default":null}` +
	`],"connect.name":"io.debezium.connector.postgresql.Source"}},` +
	`{"name":"op","type":"string"},` +
	`{"name":"ts_ms","type":["null","long"],"default":null},` +
	`{"name":"transaction","type":["null",{"type":"record","name":"block","namespace":"event","fields":[` +
	`{"name":"id","type":"string"},{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}` +
	`],"connect.version":1,"connect.name":"event.block"}],"default":null}` +
	`],"connect.version":1,"connect.name":"shop.public.orders.Envelope"}`

// CDCAvroKeySchema is the Key record of the cdc workload's change events
// (the primary key id).
const CDCAvroKeySchema = `{"type":"record","name":"Key","namespace":"shop.public.orders","fields":[{"name":"id","type":"long"}],"connect.name":"shop.public.orders.Key"}`

// KeySubject returns the registry subject of topic's keys ("<topic>-key").
func KeySubject(topic string) string { return topic + "-key" }

type cdcAvroRow struct {
	ID        int64   `avro:"id"`
	Customer  *string `avro:"customer"`
	Total     []byte  `avro:"total"`
	Status    *string `avro:"status"`
	Notes     *string `avro:"notes"`
	UpdatedAt *int64  `avro:"updated_at"`
}

type cdcAvroSource struct {
	Version   string  `avro:"version"`
	Connector string  `avro:"connector"`
	Name      string  `avro:"name"`
	TsMs      int64   `avro:"ts_ms"`
	Snapshot  *string `avro:"snapshot"`
	DB        string  `avro:"db"`
	Schema    string  `avro:"schema"`
	Table     string  `avro:"table"`
	TxID      *int64  `avro:"txId"`
	LSN       *int64  `avro:"lsn"`
	Xmin      *int64  `avro:"xmin"`
}

type cdcAvroBlock struct {
	ID                  string `avro:"id"`
	TotalOrder          int64  `avro:"total_order"`
	DataCollectionOrder int64  `avro:"data_collection_order"`
}

type cdcAvroEnvelope struct {
	Before      *cdcAvroRow   `avro:"before"`
	After       *cdcAvroRow   `avro:"after"`
	Source      cdcAvroSource `avro:"source"`
	Op          string        `avro:"op"`
	TsMs        *int64        `avro:"ts_ms"`
	Transaction *cdcAvroBlock `avro:"transaction"`
}

type cdcAvroKey struct {
	ID int64 `avro:"id"`
}

var cdcAvroSchemas = sync.OnceValues(func() (value, key avro.Schema) {
	return avro.MustParse(CDCAvroValueSchema), avro.MustParse(CDCAvroKeySchema)
})

// cdcAvro encodes the cdc workload's change events as AvroConverter
// does; its fields are reused from record to record.
type cdcAvro struct {
	valueID, keyID uint32
	value, key     avro.Schema

	env                      cdcAvroEnvelope
	row                      cdcAvroRow
	customer, status, notes  string
	updatedAt, txID, lsn, ts int64
	snapshot                 string
	notesBuf                 []byte
	total                    [9]byte
}

func newCDCAvro(o *Options) *cdcAvro {
	v, k := cdcAvroSchemas()
	return &cdcAvro{valueID: uint32(o.SchemaID), keyID: uint32(o.KeySchemaID), value: v, key: k}
}

// appendKey appends the framed key of row id.
func (a *cdcAvro) appendKey(dst []byte, id int64) []byte {
	b, err := avro.Marshal(a.key, &cdcAvroKey{ID: id})
	if err != nil {
		panic(fmt.Sprintf("loadgen: cannot encode the cdc key as Avro: %v", err))
	}
	dst = appendFraming(dst, FormatAvro, a.keyID)
	return append(dst, b...)
}

// appendValue appends the framed change event of ch, the same event as
// z's JSON rendering.
func (a *cdcAvro) appendValue(dst []byte, z *cdcGen, ch *cdcChange) []byte {
	env := &a.env
	*env = cdcAvroEnvelope{Op: string(ch.op)}
	if ch.op == 'd' {
		a.row = cdcAvroRow{ID: ch.id}
		env.Before = &a.row
	} else {
		row := &ch.row
		a.customer, a.status = cdcCustomers[row.customer], cdcStatuses[row.status]
		a.updatedAt = z.micros(row.at)
		a.row = cdcAvroRow{ID: ch.id, Customer: &a.customer, Total: appendDecimalBytes(a.total[:0], row.total), Status: &a.status, UpdatedAt: &a.updatedAt}
		switch {
		case row.toast:
			a.notes = toastPlaceholder
			a.row.Notes = &a.notes
		case !row.notesNull:
			a.notesBuf = appendCorpus(a.notesBuf[:0], int(row.notesOff), int(row.notesLen))
			a.notes = string(a.notesBuf)
			a.row.Notes = &a.notes
		}
		env.After = &a.row
	}
	ms := z.micros(ch.index) / 1000
	a.snapshot, a.txID, a.lsn, a.ts = "false", 700+ch.index, z.lsn(ch.index), ms+40+ch.index%60
	env.Source = cdcAvroSource{Version: "2.7.3.Final", Connector: "postgresql", Name: "shop", TsMs: ms, Snapshot: &a.snapshot,
		DB: "shop", Schema: "public", Table: "orders", TxID: &a.txID, LSN: &a.lsn}
	env.TsMs = &a.ts
	b, err := avro.Marshal(a.value, env)
	if err != nil {
		panic(fmt.Sprintf("loadgen: record %d: cannot encode the change event as Avro: %v", ch.index, err))
	}
	dst = appendFraming(dst, FormatAvro, a.valueID)
	return append(dst, b...)
}

// corrupt turns the framed value v into a bad record of kind k (the
// registry formats' framing kinds), drawing from rg.
func (a *cdcAvro) corrupt(v []byte, k Kind, rg *rng) []byte {
	const prefix = 5
	switch k {
	case KindWrongMagic:
		v[0] = byte(2 + rg.intn(254)) // neither 0 nor 1, as in Generator.frame
	case KindUnknownSchema:
		binary.BigEndian.PutUint32(v[1:], unknownSchemaID+uint32(rg.intn(16)))
	case KindTruncated:
		v = v[:prefix+rg.intn(len(v)-prefix)] // any proper prefix of a record is invalid
	}
	return v
}

// appendDecimalBytes appends v's shortest big-endian two's complement, as
// Kafka Connect's Decimal carries the unscaled value.
func appendDecimalBytes(dst []byte, v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	k := 0
	for k < 7 && (b[k] == 0 && b[k+1]&0x80 == 0 || b[k] == 0xff && b[k+1]&0x80 != 0) {
		k++ // the byte only repeats the sign of the next
	}
	return append(dst, b[k:]...)
}
