package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bufbuild/protocompile"
	"github.com/hamba/avro/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sluice-dev/sluice/registry"
)

// Record formats, by the names Options.Format accepts. The registry formats
// carry the reference workload's events in the Confluent wire format: the
// magic byte 0, the schema id as 4 bytes big-endian, for Protobuf the
// message-index list (the single byte 0: the file's first message), then
// the payload.
const (
	FormatJSON       = "json"
	FormatAvro       = "avro"
	FormatProtobuf   = "protobuf"
	FormatJSONSchema = "json_schema"
)

var formats = []string{FormatJSON, FormatAvro, FormatProtobuf, FormatJSONSchema}

// registryFormat reports whether format frames records with a schema id.
func registryFormat(format string) bool {
	return format == FormatAvro || format == FormatProtobuf || format == FormatJSONSchema
}

// AvroReferenceSchema is the reference event as an Avro record. amount is a
// decimal (scale 2, as the JSON event writes it), ts a timestamp in
// milliseconds, attrs a nested record that a jsonb column takes whole.
const AvroReferenceSchema = `{
  "type": "record",
  "name": "Event",
  "namespace": "sluice.loadgen",
  "fields": [
    {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "tenant_id", "type": "long"},
    {"name": "user_id", "type": "long"},
    {"name": "type", "type": "string"},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "version", "type": "long"},
    {"name": "url", "type": "string"},
    {"name": "user_agent", "type": "string"},
    {"name": "attrs", "type": {
      "type": "record",
      "name": "Attrs",
      "fields": [
        {"name": "country", "type": "string"},
        {"name": "device", "type": "string"},
        {"name": "session", "type": "string"},
        {"name": "experiment", "type": "string"}
      ]
    }}
  ]
}`

// ProtobufReferenceSchema is the reference event as a proto3 file; Event is
// its first message (message index [0]). amount is the decimal's text
// ("1234.56"), ts a google.protobuf.Timestamp (a well-known import, which
// registries do not store as a reference).
const ProtobufReferenceSchema = `syntax = "proto3";

package sluice.loadgen;

import "google/protobuf/timestamp.proto";

message Event {
  string event_id = 1;
  int64 tenant_id = 2;
  int64 user_id = 3;
  string type = 4;
  google.protobuf.Timestamp ts = 5;
  string amount = 6;
  string url = 7;
  string user_agent = 8;
  Attrs attrs = 9;
  int64 version = 10;
}

message Attrs {
  string country = 1;
  string device = 2;
  string session = 3;
  string experiment = 4;
}
`

// JSONSchemaReference is the reference event's JSON Schema; the payload is
// the JSON event itself.
const JSONSchemaReference = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "Event",
  "type": "object",
  "properties": {
    "event_id": {"type": "string", "format": "uuid"},
    "tenant_id": {"type": "integer"},
    "user_id": {"type": "integer"},
    "type": {"type": "string"},
    "ts": {"type": "string", "format": "date-time"},
    "amount": {"type": "number"},
    "version": {"type": "integer"},
    "url": {"type": "string"},
    "user_agent": {"type": "string"},
    "attrs": {
      "type": "object",
      "properties": {
        "country": {"type": "string"},
        "device": {"type": "string"},
        "session": {"type": "string"},
        "experiment": {"type": "string"}
      }
    }
  },
  "required": ["event_id"]
}`

// ReferenceSchema returns the registry schema type and text of the
// reference event in a registry format.
func ReferenceSchema(format string) (registry.SchemaType, string, error) {
	switch format {
	case FormatAvro:
		return registry.TypeAvro, AvroReferenceSchema, nil
	case FormatProtobuf:
		return registry.TypeProtobuf, ProtobufReferenceSchema, nil
	case FormatJSONSchema:
		return registry.TypeJSON, JSONSchemaReference, nil
	}
	return 0, "", fmt.Errorf("cannot register a schema for format %q; use avro, protobuf or json_schema", format)
}

// EvolvedField is the field the second version of the reference schema
// adds (Options.EvolveAt): an optional string, a text column of a table
// that follows the schema.
const EvolvedField = "channel"

// evolvedSchemas are the reference schema's second versions: the first
// with EvolvedField added, optional (Avro: a union of null and string,
// default null; Protobuf: proto3 optional, field 11; JSON Schema: a
// string or null, not required).
var evolvedSchemas = map[string]string{
	FormatAvro: strings.TrimSuffix(AvroReferenceSchema, "\n  ]\n}") +
		",\n    {\"name\": \"" + EvolvedField + "\", \"type\": [\"null\", \"string\"], \"default\": null}\n  ]\n}",
	FormatProtobuf: strings.Replace(ProtobufReferenceSchema, "  int64 version = 10;\n",
		"  int64 version = 10;\n  optional string "+EvolvedField+" = 11;\n", 1),
	FormatJSONSchema: strings.Replace(JSONSchemaReference, "\n  },\n  \"required\"",
		",\n    \""+EvolvedField+"\": {\"type\": [\"string\", \"null\"]}\n  },\n  \"required\"", 1),
}

// EvolvedReferenceSchema returns the registry schema type and text of the
// reference event's second version in a registry format: the first with
// the optional EvolvedField added (Options.EvolveAt).
func EvolvedReferenceSchema(format string) (registry.SchemaType, string, error) {
	typ, _, err := ReferenceSchema(format)
	if err != nil {
		return 0, "", err
	}
	return typ, evolvedSchemas[format], nil
}

// Subject returns the registry subject of topic's values (the
// TopicNameStrategy: "<topic>-value").
func Subject(topic string) string { return topic + "-value" }

// valueSchema returns the registry schema type and text of o's values:
// the reference event's in o.Format, or for the cdc workload in format
// avro its Envelope (CDCAvroValueSchema).
func valueSchema(o *Options) (registry.SchemaType, string, error) {
	if o.Workload == WorkloadCDC {
		if o.Format != FormatAvro {
			return 0, "", fmt.Errorf("cannot register a schema for the cdc workload in format %q; use avro", o.Format)
		}
		return registry.TypeAvro, CDCAvroValueSchema, nil
	}
	return ReferenceSchema(o.Format)
}

// RegisterSchema registers the schema of o's values (the reference schema
// of o.Format) under Subject(o.Topic) in the registry ro describes and
// sets o.SchemaID; with o.EvolveAt set it registers the second version
// (EvolvedReferenceSchema) there too, right away, and sets
// o.EvolvedSchemaID (a reader follows the writer schemas records name,
// so records before EvolveAt keep the first); for the cdc workload in format avro it registers the
// Envelope there and the Key (CDCAvroKeySchema) under KeySubject(o.Topic)
// and sets o.KeySchemaID too. It is idempotent: the registry returns the
// id it already gave a schema.
func RegisterSchema(ctx context.Context, o *Options, ro registry.Options) error {
	o.EnsureDefaults()
	typ, text, err := valueSchema(o)
	if err != nil {
		return err
	}
	cl, err := registry.New(ro)
	if err != nil {
		return err
	}
	id, err := cl.Register(ctx, Subject(o.Topic), typ, text)
	if err != nil {
		return err
	}
	if o.Workload == WorkloadCDC {
		kid, err := cl.Register(ctx, KeySubject(o.Topic), registry.TypeAvro, CDCAvroKeySchema)
		if err != nil {
			return err
		}
		o.KeySchemaID = kid
	}
	if o.EvolveAt > 0 {
		typ, text, err := EvolvedReferenceSchema(o.Format)
		if err != nil {
			return err
		}
		eid, err := cl.Register(ctx, Subject(o.Topic), typ, text)
		if err != nil {
			return err
		}
		o.EvolvedSchemaID = eid
	}
	o.SchemaID = id
	return nil
}

// LookupEvolvedSchemaID returns the id under which the registry ro
// describes holds the second version of the reference schema of o.Format
// (as RegisterSchema registers it with EvolveAt set) in
// Subject(o.Topic), registering nothing.
func LookupEvolvedSchemaID(ctx context.Context, o Options, ro registry.Options) (int, error) {
	o.EnsureDefaults()
	typ, text, err := EvolvedReferenceSchema(o.Format)
	if err != nil {
		return 0, err
	}
	return lookupID(ctx, ro, Subject(o.Topic), typ, text)
}

// LookupSchemaID returns the id under which the registry ro describes holds
// the schema of o's values (as RegisterSchema registers it) in
// Subject(o.Topic), registering nothing.
func LookupSchemaID(ctx context.Context, o Options, ro registry.Options) (int, error) {
	o.EnsureDefaults()
	typ, text, err := valueSchema(&o)
	if err != nil {
		return 0, err
	}
	return lookupID(ctx, ro, Subject(o.Topic), typ, text)
}

// lookupKeySchemaID returns the id under which the registry ro describes
// holds the cdc workload's Key (as RegisterSchema registers it) in
// KeySubject(topic), registering nothing.
func lookupKeySchemaID(ctx context.Context, topic string, ro registry.Options) (int, error) {
	return lookupID(ctx, ro, KeySubject(topic), registry.TypeAvro, CDCAvroKeySchema)
}

// lookupID returns the id under which the registry ro describes holds
// schema text of type typ in subject, registering nothing.
func lookupID(ctx context.Context, ro registry.Options, subject string, typ registry.SchemaType, text string) (int, error) {
	cl, err := registry.New(ro)
	if err != nil {
		return 0, err
	}
	return cl.Lookup(ctx, subject, typ, text)
}

// unknownSchemaID is the first of the ids that unknown_schema records name;
// registries hand out far smaller ones.
const unknownSchemaID = 2_000_000_000

// appendFraming appends the Confluent wire-format prefix.
func appendFraming(dst []byte, format string, id uint32) []byte {
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, id)
	if format == FormatProtobuf {
		dst = append(dst, 0) // message indexes [0]
	}
	return dst
}

// refEvent is the reference event in Go values, parsed back from its JSON
// rendering so that every format carries exactly what verify compares.
type refEvent struct {
	EventID   string    `avro:"event_id"`
	TenantID  int64     `avro:"tenant_id"`
	UserID    int64     `avro:"user_id"`
	Type      string    `avro:"type"`
	TS        time.Time `avro:"ts"`
	Amount    *big.Rat  `avro:"amount"`
	Version   int64     `avro:"version"`
	URL       string    `avro:"url"`
	UserAgent string    `avro:"user_agent"`
	Attrs     refAttrs  `avro:"attrs"`
	// Channel is the second schema version's field (nil: absent, or
	// null); the first version's Avro schema has no field to write it to.
	Channel *string `avro:"channel"`

	amountText []byte
	channel    string
}

type refAttrs struct {
	Country    string `avro:"country"`
	Device     string `avro:"device"`
	Session    string `avro:"session"`
	Experiment string `avro:"experiment"`
}

// encoder turns the JSON rendering of reference events into a registry
// format's payload.
type encoder struct {
	format string
	ev     refEvent
	amount big.Rat
	fields []jsonField
	nested []jsonField
	// The schema versions' Avro schemas and Protobuf messages: [0] the
	// first, [1] the second (EvolvedReferenceSchema).
	avro [2]avro.Schema
	pb   [2]*dynamicpb.Message
	pbf  [2]protoFields
	ua   []byte // user_agent with invalid UTF-8 bytes replaced by '?'
}

func newEncoder(format string) *encoder {
	e := &encoder{format: format}
	switch format {
	case FormatAvro:
		e.avro[0], e.avro[1] = avroReference(), avroEvolved()
	case FormatProtobuf:
		for v, md := range []protoreflect.MessageDescriptor{protoReference(), protoEvolved()} {
			e.pb[v] = dynamicpb.NewMessage(md)
			e.pbf[v] = newProtoFields(md)
		}
	}
	return e
}

var avroEvolved = sync.OnceValue(func() avro.Schema {
	s, err := avro.Parse(evolvedSchemas[FormatAvro])
	if err != nil {
		panic(fmt.Sprintf("loadgen: cannot parse the evolved Avro reference schema: %v", err))
	}
	return s
})

var protoEvolved = sync.OnceValue(func() protoreflect.MessageDescriptor {
	return compileProto(evolvedSchemas[FormatProtobuf])
})

var avroReference = sync.OnceValue(func() avro.Schema {
	s, err := avro.Parse(AvroReferenceSchema)
	if err != nil {
		panic(fmt.Sprintf("loadgen: cannot parse AvroReferenceSchema: %v", err))
	}
	return s
})

var protoReference = sync.OnceValue(func() protoreflect.MessageDescriptor {
	return compileProto(ProtobufReferenceSchema)
})

// compileProto returns the Event message of a version of the reference
// schema's proto file.
func compileProto(text string) protoreflect.MessageDescriptor {
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"event.proto": text}),
	})}
	files, err := c.Compile(context.Background(), "event.proto")
	if err != nil {
		panic(fmt.Sprintf("loadgen: cannot compile the Protobuf reference schema: %v", err))
	}
	return files[0].Messages().ByName("Event")
}

type protoFields struct {
	eventID, tenantID, userID, typ, ts, amount, version, url, userAgent, attrs protoreflect.FieldDescriptor
	seconds, nanos                                                             protoreflect.FieldDescriptor
	country, device, session, experiment                                       protoreflect.FieldDescriptor
	channel                                                                    protoreflect.FieldDescriptor // nil in the first version
}

func newProtoFields(md protoreflect.MessageDescriptor) protoFields {
	f := md.Fields()
	a := f.ByName("attrs").Message().Fields()
	t := f.ByName("ts").Message().Fields()
	return protoFields{
		eventID: f.ByName("event_id"), tenantID: f.ByName("tenant_id"), userID: f.ByName("user_id"),
		typ: f.ByName("type"), ts: f.ByName("ts"), amount: f.ByName("amount"), version: f.ByName("version"), url: f.ByName("url"),
		userAgent: f.ByName("user_agent"), attrs: f.ByName("attrs"),
		seconds: t.ByName("seconds"), nanos: t.ByName("nanos"),
		country: a.ByName("country"), device: a.ByName("device"), session: a.ByName("session"), experiment: a.ByName("experiment"),
		channel: f.ByName(EvolvedField),
	}
}

// parse fills e.ev from a reference event's JSON rendering. The generator
// renders valid events for the kinds that reach it, so any failure is a
// bug.
func (e *encoder) parse(js []byte) error {
	var err error
	if e.fields, err = parseObject(js, e.fields[:0]); err != nil {
		return err
	}
	str := func(fs []jsonField, name string) (string, error) {
		tok := findField(fs, name)
		s, ok := jsonString(tok)
		if !ok {
			return "", fmt.Errorf("field %s is %.40q, not a string", name, tok)
		}
		return string(s), nil
	}
	num := func(name string) (int64, error) {
		return strconv.ParseInt(string(findField(e.fields, name)), 10, 64)
	}
	ev := &e.ev
	if ev.EventID, err = str(e.fields, "event_id"); err != nil {
		return err
	}
	if ev.TenantID, err = num("tenant_id"); err != nil {
		return err
	}
	if ev.UserID, err = num("user_id"); err != nil {
		return err
	}
	if ev.Type, err = str(e.fields, "type"); err != nil {
		return err
	}
	ts, err := str(e.fields, "ts")
	if err != nil {
		return err
	}
	if ev.TS, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return err
	}
	ev.amountText = findField(e.fields, "amount")
	// The generator writes amounts with two decimals (appendFixed); parse
	// them as cents rather than through Rat.SetString, which dominates.
	whole, frac, ok := bytes.Cut(ev.amountText, []byte("."))
	cents, err := strconv.ParseInt(string(whole)+string(frac), 10, 64)
	if !ok || len(frac) != 2 || err != nil {
		return fmt.Errorf("amount %q is not a decimal with two digits", ev.amountText)
	}
	e.amount.SetFrac64(cents, 100)
	ev.Amount = &e.amount
	if ev.Version, err = num("version"); err != nil {
		return err
	}
	if ev.URL, err = str(e.fields, "url"); err != nil {
		return err
	}
	if ev.UserAgent, err = str(e.fields, "user_agent"); err != nil {
		return err
	}
	if e.nested, err = parseObject(findField(e.fields, "attrs"), e.nested[:0]); err != nil {
		return err
	}
	ev.Channel = nil
	if tok := findField(e.fields, EvolvedField); tok != nil && string(tok) != "null" {
		if ev.channel, err = str(e.fields, EvolvedField); err != nil {
			return err
		}
		ev.Channel = &ev.channel
	}
	a := &ev.Attrs
	for _, f := range []struct {
		dst  *string
		name string
	}{{&a.Country, "country"}, {&a.Device, "device"}, {&a.Session, "session"}, {&a.Experiment, "experiment"}} {
		if *f.dst, err = str(e.nested, f.name); err != nil {
			return err
		}
	}
	return nil
}

// appendPayload appends the payload of the event rendered as js in
// schema version v (0 the first, 1 the second) and returns the offset in
// dst of user_agent's bytes (-1 for JSON Schema, whose payload is js
// itself).
func (e *encoder) appendPayload(dst, js []byte, v int) ([]byte, int, error) {
	if e.format == FormatJSONSchema {
		return append(dst, js...), -1, nil
	}
	if err := e.parse(js); err != nil {
		return dst, 0, fmt.Errorf("cannot parse the generated event %.60q: %w", js, err)
	}
	start := len(dst)
	switch e.format {
	case FormatAvro:
		b, err := avro.Marshal(e.avro[v], &e.ev)
		if err != nil {
			return dst, 0, fmt.Errorf("cannot encode the event as Avro: %w", err)
		}
		dst = append(dst, b...)
	case FormatProtobuf:
		var err error
		if dst, err = e.appendProto(dst, v); err != nil {
			return dst, 0, err
		}
	}
	off := bytes.Index(dst[start:], []byte(e.ev.UserAgent))
	if e.format == FormatProtobuf {
		off = bytes.Index(dst[start:], e.ua)
	}
	if off < 0 {
		return dst, 0, fmt.Errorf("cannot find user_agent in the encoded %s event", e.format)
	}
	if e.format == FormatProtobuf {
		copy(dst[start+off:], e.ev.UserAgent) // restore bytes proto refuses to marshal
	}
	return dst, start + off, nil
}

func (e *encoder) appendProto(dst []byte, v int) ([]byte, error) {
	m, f, ev := e.pb[v], &e.pbf[v], &e.ev
	m.Reset()
	m.Set(f.eventID, protoreflect.ValueOfString(ev.EventID))
	m.Set(f.tenantID, protoreflect.ValueOfInt64(ev.TenantID))
	m.Set(f.userID, protoreflect.ValueOfInt64(ev.UserID))
	m.Set(f.typ, protoreflect.ValueOfString(ev.Type))
	ts := m.Mutable(f.ts).Message()
	ts.Set(f.seconds, protoreflect.ValueOfInt64(ev.TS.Unix()))
	ts.Set(f.nanos, protoreflect.ValueOfInt32(int32(ev.TS.Nanosecond())))
	m.Set(f.amount, protoreflect.ValueOfString(string(ev.amountText)))
	m.Set(f.version, protoreflect.ValueOfInt64(ev.Version))
	m.Set(f.url, protoreflect.ValueOfString(ev.URL))
	// proto3 strings must be valid UTF-8 to marshal: send a same-length
	// stand-in and put the real bytes back afterwards (invalid_utf8).
	e.ua = append(e.ua[:0], ev.UserAgent...)
	for i := 0; i < len(e.ua); {
		r, n := utf8.DecodeRune(e.ua[i:])
		if r == utf8.RuneError && n == 1 {
			e.ua[i] = '?'
		}
		i += n
	}
	m.Set(f.userAgent, protoreflect.ValueOfString(string(e.ua)))
	a := m.Mutable(f.attrs).Message()
	a.Set(f.country, protoreflect.ValueOfString(ev.Attrs.Country))
	a.Set(f.device, protoreflect.ValueOfString(ev.Attrs.Device))
	a.Set(f.session, protoreflect.ValueOfString(ev.Attrs.Session))
	a.Set(f.experiment, protoreflect.ValueOfString(ev.Attrs.Experiment))
	if f.channel != nil && ev.Channel != nil {
		m.Set(f.channel, protoreflect.ValueOfString(*ev.Channel))
	}
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, m)
	if err != nil {
		return dst, fmt.Errorf("cannot encode the event as Protobuf: %w", err)
	}
	return out, nil
}
