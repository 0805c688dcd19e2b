package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/codec"
	"github.com/sluice-dev/sluice/registry"
)

// A format debezium table with converter avro merges rows by its key,
// which names the source table's primary key columns. When the source's
// primary key changes, Debezium registers a new Key record under
// TOPIC-key and writes the records that follow with it: were they merged
// by the old key, source rows that differ only in a new key field would
// overwrite each other in the target. So the first record whose key is
// framed with a key schema the table has not checked yet has that
// schema checked (keyCheck): a Key record whose fields are not exactly
// the fields the table's key columns read stops the partition before that
// record (stopForKey), and the table is stuck until the target's key is
// changed and Sluice restarted. The key schema is named as the decoder
// reads it (codec.KeySchemaRef): by a __key_schema_id header, else by the
// key's prefix, an id (magic byte 0) or a GUID (magic byte 1). A key
// without framing is not checked. sluice dead-letters replay checks the
// key schema of each record it replays the same way (replayKeyCheck).

// keyCheck is what a table checks record key schemas against.
type keyCheck struct {
	// fields are the fields of the key record the table's key columns
	// read, in the key's order.
	fields []string

	mu sync.Mutex
	// checked holds the key schemas checked, by id or GUID: nil when the
	// schema fits (or cannot be compared), else the fields its Key record
	// names.
	checked map[codec.SchemaRef][]string
}

// newKeyCheck returns what checks the record key schemas of tc, whose
// codec columns are cols, or nil when tc's keys are not checked: a
// table of another format or converter, a keyless one, or one whose key
// has a column that reads no top-level field of the row or the key (a
// key of its own, not the source's).
func newKeyCheck(tc TableConfig, cols []codec.Column) *keyCheck {
	f, _ := codec.ParseFormat(tc.Format)
	conv, _ := codec.ParseConverter(tc.Converter)
	if f != codec.FormatDebezium || conv != codec.ConverterAvro || len(tc.Key) == 0 {
		return nil
	}
	k := &keyCheck{checked: map[codec.SchemaRef][]string{}}
	for _, name := range tc.Key {
		i := slices.IndexFunc(cols, func(c codec.Column) bool { return c.Name == name })
		if i < 0 {
			return nil
		}
		c := cols[i]
		if c.Source != codec.SourcePath && c.Source != codec.SourceKey || c.Path == "" || strings.Contains(c.Path, ".") {
			return nil
		}
		k.fields = append(k.fields, c.Path)
	}
	return k
}

// sameKey reports whether the fields a Key record names are the key
// fields want, in any order: the key a target's unique index covers is a
// set of columns (pgcopy checks that one covers exactly the key).
func sameKey(fields, want []string) bool {
	if len(fields) != len(want) {
		return false
	}
	for _, f := range fields {
		if !slices.Contains(want, f) {
			return false
		}
	}
	return true
}

// keyChecked is a key schema a partition found fitting a table.
type keyChecked struct {
	t   *tableRT
	ref codec.SchemaRef
}

// refLabel is how logs and errors name a key schema: its id, or its GUID.
func refLabel(ref codec.SchemaRef) string {
	return strings.TrimPrefix(strings.TrimPrefix(ref.String(), "id "), "guid ")
}

// schemaByRef fetches the writer schema ref names from the schema
// registry, by GUID or by id, waiting at most 30 s for an answer.
func (a *App) schemaByRef(ctx context.Context, ref codec.SchemaRef) (*registry.Schema, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if ref.IsGUID {
		return a.reg.SchemaByGUID(ctx, refLabel(ref))
	}
	return a.reg.Schema(ctx, int(ref.ID))
}

// checkKey checks the key schema of record rec for table t when its key
// is framed with a schema (id or GUID, in the key or in a
// __key_schema_id header) partition st has not checked for t yet. It
// returns encRow when the record may be written, encAbort when it may not
// (the partition stops, or was dropped, or the App stops). Its per-record
// cost is a compare of the reference against those checked.
func (w *worker) checkKey(st *partState, t *tableRT, rec *codec.Record) encoded {
	ref, ok := codec.KeySchemaRef(rec)
	if !ok {
		return encRow
	}
	for _, c := range st.keysOK {
		if c.ref == ref && c.t == t {
			return encRow
		}
	}
	fields, ok := w.keySchemaFields(st, t, ref)
	if !ok {
		return encAbort
	}
	if fields != nil {
		w.a.stopForKey(st, t, ref, fields, rec.Offset)
		return encAbort
	}
	st.keysOK = append(st.keysOK, keyChecked{t, ref})
	return encRow
}

// keySchemaFields returns the fields of key schema ref when they are not
// t's key fields, nil when they are (or the schema cannot be compared:
// the registry does not have it, or it is no Key record, which is logged).
// Each schema is fetched once per table. ok is false when the partition
// was dropped or the App is stopping while the registry did not answer.
func (w *worker) keySchemaFields(st *partState, t *tableRT, ref codec.SchemaRef) (fields []string, ok bool) {
	a := w.a
	pk := partKey{st.topic, st.partition}
	backoff := 200 * time.Millisecond
	for {
		fields, err := a.keySchemaVerdict(a.hardCtx, t, st.topic, ref)
		if err == nil {
			a.regWait.set(pk, "")
			return fields, true
		}
		a.regWait.set(pk, err.Error())
		a.m.registryErrors.Inc()
		a.log.Warn("cannot fetch a key writer schema; the partition waits and retries", "topic", st.topic, "partition", st.partition,
			"schema", refLabel(ref), "retry_in", backoff, "err", err)
		if !a.registryRetry(st, &backoff) {
			return nil, false
		}
	}
}

// keySchemaVerdict returns the fields of key schema ref (of a record of
// topic) when they are not t's key fields, nil when they are or the
// schema cannot be compared (the registry does not have it, or it is no
// Key record: logged). The verdict is cached per table; an error is the
// registry's, not answering (not cached: the caller retries).
func (a *App) keySchemaVerdict(ctx context.Context, t *tableRT, topic string, ref codec.SchemaRef) ([]string, error) {
	k := t.keys
	k.mu.Lock()
	fields, done := k.checked[ref]
	k.mu.Unlock()
	if done {
		return fields, nil
	}
	s, err := a.schemaByRef(ctx, ref)
	switch {
	case err == nil:
		names, kerr := codec.DebeziumAvroKey(codecSchema(s))
		if kerr != nil {
			a.log.Warn("a key writer schema is no Key record of fields; the table's key is not checked against it", "table", t.cfg.Name,
				"topic", topic, "schema", refLabel(ref), "err", kerr)
		} else if !sameKey(names, k.fields) {
			fields = names
		} else {
			a.log.Info("key writer schema checked: it names the table's key", "table", t.cfg.Name, "topic", topic,
				"schema", refLabel(ref), "key", names)
		}
	case registry.IsPermanent(err):
		a.log.Warn("a key writer schema cannot be had from the schema registry; the table's key is not checked against it", "table", t.cfg.Name,
			"topic", topic, "schema", refLabel(ref), "err", err)
	default:
		return nil, err
	}
	k.mu.Lock()
	k.checked[ref] = fields
	k.mu.Unlock()
	return fields, nil
}

// stopForKey stops partition st before its record whose key schema ref
// names the key fields fields, which are not table t's: nothing of the
// partition is written from that record on (its chunks are dropped and
// its fetching paused), and t is stuck until a restart. The ERROR saying
// so is logged once per table and key schema.
func (a *App) stopForKey(st *partState, t *tableRT, ref codec.SchemaRef, fields []string, offset int64) {
	fix := fmt.Sprintf("alter the target's primary key to (%s), set key: [%s] for table %s, and restart",
		strings.Join(fields, ", "), strings.Join(fields, ", "), t.cfg.Name)
	why := fmt.Sprintf("the source's primary key changed: records of %s/%d are keyed by (%s) (key schema %s), but table %s merges rows by (%s), which would overwrite rows that differ in the new key; nothing of the partition is written from offset %d on; %s",
		st.topic, st.partition, strings.Join(fields, ", "), ref, t.cfg.Name, strings.Join(t.cfg.Key, ", "), offset, fix)
	st.stopWhy.Store(&why)
	st.haltReason.Store(&why)
	s := &t.stuck
	s.mu.Lock()
	first := s.keyChange == ""
	if first {
		s.keyChange, s.keySince = why, time.Now()
	}
	s.mu.Unlock()
	a.noteError(fmt.Sprintf("key schema %s/%d", st.topic, st.partition), fmt.Errorf("%s", why))
	// A partition claimed again (after a rebalance) meets the cached
	// mismatch again, as does another partition of the table keyed by the
	// same schema: the ERROR is logged once per table and key schema.
	if t.ev.once("keychange\x00" + ref.String()) {
		a.log.Error("TABLE STUCK: the record key's schema names another primary key than the table's; the partition writes nothing more; /readyz reports it",
			"table", t.cfg.Name, "topic", st.topic, "partition", st.partition, "key", t.cfg.Key, "new_key", fields, "key_schema", refLabel(ref),
			"fix", fix, "action", a.cfg.Stuck.Action)
	}
	if first && a.cfg.Stuck.Action == "exit" {
		a.fail(fmt.Errorf("cannot continue: %s (stuck.action: exit)", why))
	}
}
