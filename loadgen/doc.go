// Package loadgen simulates the traffic Sluice ingests and verifies that it
// landed exactly once. It backs the `sluice loadgen` and `sluice verify`
// commands.
//
// Determinism. Record i of a stream is a pure function of the generation
// options (Seed, Schema, Format, Keys, ValueSize, SizeSpread,
// KeyCardinality, DupRatio, UpdateRatio, Bad, MaxValueBytes,
// ValueCompression, Transactional, AbortRatio, TxnRecords) and i:
// Generator.At(i) needs no state and Generator.Next walks the same stream.
// Delivery options (Rate, ByteRate, Duration, Compression, Topic,
// Partitions) never change content. Each record is:
//
//   - good: a new event (or, with KeyCardinality, one of that many ids with
//     new content);
//   - update: a newer version of an earlier good event: its id and
//     unchanging fields, a new ts and amount (narrow: ts and value);
//   - dup: a verbatim re-send (same key, value bytes and headers) of an
//     earlier good or update record;
//   - bad, of one kind: malformed_json (a truncated object), wrong_type
//     (tenant_id "abc"), missing_required (no event_id), invalid_utf8 (raw
//     bytes in user_agent), nul (\u0000 in user_agent), out_of_range
//     (tenant_id beyond int8), oversized (MaxValueBytes+1 bytes, never
//     value-compressed), bad_compression (a "content-encoding: zstd" header
//     over garbage). Every bad record has its own uuid key.
//
// Formats. Records are JSON unless Options.Format names a registry format
// (avro, protobuf, json_schema): then the reference schema's events are
// encoded in it with the Confluent wire format, framed with Options.SchemaID
// (RegisterSchema registers the schema under "<topic>-value" and sets it).
// The content is the same stream: each event is rendered as JSON first and
// encoded from that, so verify compares rows with the JSON rendering in
// every format. Registry formats add three bad kinds: wrong_magic (the
// first byte is neither 0 nor 1, the id and GUID framings), truncated (the payload cut short) and
// unknown_schema (an id never registered). Avro and Protobuf cannot carry
// malformed_json, wrong_type, missing_required or out_of_range: their
// schemas fix every field's type and presence. The schemas are in
// formats.go.
// With Options.EvolveAt a registry-format stream moves to a second
// version of the reference schema partway: RegisterSchema registers one
// that adds the optional field channel (EvolvedField) and sets
// Options.EvolvedSchemaID, which frames the records from EvolveAt on. An
// event version written from EvolveAt on carries a channel drawn by the
// seed, one written before (and its re-sends) none; every other field is
// what the stream without EvolveAt has. Verify then also checks the
// channel column that evolve: add_columns adds: NULL where the row's
// version has none.
//
// Versions. Every reference and narrow event carries "version": 1 + the
// index of the good or update record that wrote that version (a dup
// carries its original's), so an event's versions increase in stream
// order.
//
// Keys (Options.Keys). event-id (default): the event id as a uuid string,
// so every occurrence of an event lands in one partition and Kafka offsets
// order its versions. null: no key; Produce places each record on a
// partition drawn from the seed (Rec.Partition), a re-send always on
// another partition than its original, so offsets do not order an event's
// versions: a table updated from such a stream needs `guard: version`.
// other-field: the reference event's tenant_id, a key many events share;
// an event's re-sends and updates keep its tenant, so its partition.
//
// With Transactional, records i in
// [t×TxnRecords, (t+1)×TxnRecords) form transaction t, aborted when the seed
// says so (Generator.TxnAborted); aborted records must never land.
//
// Produce sends a stream with franz-go (idempotent, acks from all in-sync
// replicas) and returns exact counts of committed, aborted and failed
// records by kind; the Manifest (options + Stats) is what verify needs to
// know what was sent without storing it.
//
// Verify replays the stream and checks PostgreSQL:
//
//   - the target table holds every committed good event once (keyed
//     tables; once per committed occurrence for keyless ones), with every
//     column equal to what was sent (the first committed occurrence under
//     on_conflict ignore, the last in offset order under update, the
//     newest version under update with guard version; with null keys
//     and differing versions, any committed occurrence under ignore),
//     numbers, text, timestamps and jsonb compared by value;
//   - no row comes from an aborted transaction, a bad record or an id never
//     sent;
//   - keyless tables pair each row with one occurrence of its event, so one
//     occurrence lost and another landed twice is caught;
//   - dead_letters holds every committed bad record exactly once, with its
//     exact value bytes and the reason its kind was made for, and none from
//     aborted transactions or good records (matched by key, a bad record's
//     own uuid; with null or other-field keys, by value, and the key
//     checked);
//   - no record is both a row and a dead letter, and no two rows or dead
//     letters give one Kafka position (kafka.partition and kafka.offset
//     columns); a position is on a partition the topic has and, with
//     event-id keys, on the one the key hashes to.
//
// A record whose delivery the producer could not confirm (listed in the
// manifest) may or may not have landed, and only that: the event's acked
// occurrences must still be there, a row holds a version that was sent
// (under on_conflict the acked one the policy names or an uncertain one
// that would have replaced it), a bad record is never a row and a good one
// never a dead letter. In transactional runs a failed record aborted its
// transaction; a transaction whose commit outcome is unknown landed whole
// or not at all, and verify reads it both ways. Verify holds one small map
// entry per event id and per bad record and streams both tables.
package loadgen
