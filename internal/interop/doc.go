// Package interop holds Sluice's interoperability tests: records written by
// a real client that Sluice did not write land exactly once, value for
// value. It has no code outside its tests.
//
// # Confluent's Python serializers
//
// TestConfluentPython runs testdata/produce.py with Debian's python3 and its
// python3-confluent-kafka (1.7, librdkafka underneath) once per format:
//
//   - avro: the legacy AvroProducer (confluent_kafka.avro, python3-avro);
//   - protobuf: schema_registry.protobuf.ProtobufSerializer, with a message
//     class built at run time from a FileDescriptorProto (no protoc); the
//     serializer registers google/protobuf/timestamp.proto and wrappers.proto
//     as references under their own subjects;
//   - json_schema: schema_registry.json_schema.JSONSerializer (python3-
//     jsonschema validates every value before it is sent).
//
// Each run gets its own database (in one private PostgreSQL), embedded
// broker (kfake, 4 partitions) and embedded Schema Registry (srfake). The
// serializer registers its schema (auto.register.schemas) and produces
// records keyed by id, about one in twelve an exact re-send of an earlier
// record, then a plain producer adds bad records of kinds no serializer
// prevents: a value without framing, one shorter than the prefix, an id the
// registry never gave, a payload cut short, a tombstone, a qty beyond the
// int4 column, a NUL in a text field, and per format a message index naming
// no message and the serializer's own framing of the file's second message
// (Protobuf: 1.7 writes message indexes as unsigned varints, not zigzag, so
// [1] reads as a negative count) or a value that skipped validation (JSON
// Schema).
// The script writes the rows it expects (one JSON object per row) and where
// each bad record went. The real appliance then drains the topic into a
// keyed table; the test compares every column of every row, checks that
// each bad record is in sluice.dead_letters exactly once with the right
// reason and its exact bytes, and that the counts add up: rows + re-sends
// + bad records = records in the log.
//
// # Debezium events in Avro
//
// TestDebeziumAvroPython runs testdata/debezium_avro.py, which frames
// Debezium change events (a PostgreSQL connector's Envelope with a
// Decimal, MicroTimestamp, Date and ZonedTimestamp, and its Key record)
// with the legacy AvroProducer, as AvroConverter frames them: creates,
// updates sending the TOAST placeholder, deletes by before and by the
// record key with their tombstones, and a message. A converter: avro
// table must end up holding the source's final state, with no dead
// letter.
//
// # Comparing values
//
// PostgreSQL's side is each column cast to text in a session with TimeZone
// UTC, DateStyle ISO and bytea_output hex. The expected side is what
// Python computed, normalised per column type to what PostgreSQL prints:
//
//   - text, int2/4/8, numeric, date: the same text exactly. numeric keeps
//     its scale, so an Avro decimal(12,2) must print two decimals and a
//     JSON number must keep the digits it was written with.
//   - bool: JSON true/false as "true"/"false".
//   - uuid: the canonical lower-case form of the UUID the producer sent
//     (in upper case, without hyphens or in braces for JSON Schema).
//   - bytea: the bytes (hex in the expected file) as \x followed by lower-
//     case hex.
//   - float4, float8: PostgreSQL's shortest text parsed back as a float of
//     the column's width must have the expected value's exact bits (so -0
//     is told from 0). Python computes a float4's expected value by
//     rounding through struct.pack('<f').
//   - timestamptz: the expected instant (Python rounds nanoseconds to the
//     microsecond; the inputs avoid exact ties, where PostgreSQL rounds a
//     double) printed as PostgreSQL prints it in UTC:
//     "2006-01-02 15:04:05.999999+00", trailing fraction zeros dropped.
//   - jsonb: equal as JSON values: objects by key whatever the order,
//     arrays element by element, numbers by exact decimal value (jsonb
//     stores numbers as numeric, so 1.0 and 1 are the same), strings
//     exactly. For Protobuf the expected JSON is protojson's with proto
//     field names and 64-bit integers as numbers: fields at their default
//     left out, bytes in base64, Timestamps as protojson writes them,
//     unnamed enum numbers as numbers.
//   - NULL: JSON null in the expected row.
package interop
