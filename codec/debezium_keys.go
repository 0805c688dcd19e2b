package codec

import (
	"fmt"
	"strings"
)

// Deletes of every format: reading the Kafka record key into the key
// columns, and the per-record change state (Op, Unchanged).

// Op reports what the last record AppendFields accepted means for its row.
// For OpUpsert and OpDelete AppendFields appended NumFields() fields; for
// OpTruncate and OpSkip it appended nothing, and the caller frames no
// tuple.
//
// Deletes of plain formats (Options.Deletes): a tombstone is OpDelete, and
// its tuple holds the key columns (Column.Key) read from the record key,
// every other path column NULL and kafka.* source columns as for any
// record. A framed key of a registry format is decoded with its writer
// schema (see Record keys in the package comment). Otherwise the key is
// read as follows: a JSON object key by each key column's path (path
// event_id reads the key's event_id; a kafka.key column with a path reads
// that path); a JSON string,
// number or boolean fills the single key column; a key that is not JSON
// is taken as a string (valid UTF-8 without NUL) for the single key column.
// Values convert as a record value's do, so a string key fills a text,
// integer or uuid column. A tombstone without a key, a key that is JSON
// null or an array, an object key without a key column's path, a scalar
// key for several key columns or a value that does not convert is
// ReasonBadKey.
func (d *Decoder) Op() Op { return d.op }

// Unchanged returns the columns of the last accepted record whose stored
// value must be kept (FormatDebezium's unavailable-value placeholder of
// TOASTed columns); they hold NULL in the tuple. It is empty (nil) for
// most records. The set is valid until the next AppendFields.
func (d *Decoder) Unchanged() ColumnSet {
	if !d.dirty {
		return nil
	}
	return d.unchanged
}

// beginChange resets the change state before a record.
func (d *Decoder) beginChange() {
	d.op = OpUpsert
	if d.dirty {
		clear(d.unchanged)
		d.dirty = false
	}
}

// endChange drops references to the record's memory and forgets the
// change state of a rejected record.
func (d *Decoder) endChange(failed bool) {
	if d.keys != nil {
		d.keys.p.doc = nil
	}
	if d.dbz != nil {
		d.dbz.sub.doc = nil
	}
	if failed {
		d.beginChange()
	}
}

func (d *Decoder) setUnchanged(i int) {
	d.unchanged[i>>6] |= 1 << (i & 63)
	d.dirty = true
}

// initChanges prepares deletes and FormatDebezium once the columns are
// validated.
func (d *Decoder) initChanges() error {
	d.unchanged = make(ColumnSet, (len(d.cols)+63)/64)
	if d.format == FormatDebezium {
		d.keys = newKeyReader(d.cols, true, d.opts.MaxDepth)
		if d.opts.Converter == ConverterAvro {
			za := &dbzAvro{}
			za.keySchemas.max = d.opts.MaxSchemas
			for _, w := range []*connectWriter{&za.value, &za.key} {
				w.max, w.maxDepth = d.opts.MaxDecompressedBytes, d.opts.MaxDepth
			}
			za.prune = true
			for i := range d.cols {
				za.event = za.event || d.cols[i].Source == SourceValue
				za.prune = za.prune && d.cols[i].Source != SourceValue && d.cols[i].Source != SourceUnmapped
			}
			d.dbzAvro = za
		}
		return d.initDebezium()
	}
	if !d.opts.Deletes {
		return nil
	}
	k := newKeyReader(d.cols, false, d.opts.MaxDepth)
	if k.paths == 0 && !k.kafkaKey {
		return fmt.Errorf("cannot apply deletes: no key column reads the record key; mark the key columns " +
			"(Column.Key, the table's key) among the columns that read a path of the key or kafka.key")
	}
	d.keys = k
	return nil
}

// keyReader parses record keys and finds the key columns' values in them.
type keyReader struct {
	p        parser
	root     *node
	bare     []int // per column: slot of its path in a key object; -1 unless a key path column
	wrapped  []int // the same below "payload" (Debezium keys with a schema); nil for plain formats
	payload  int   // slot of "payload", -1 for plain formats
	paths    int   // number of key path columns
	single   int   // the key path column when paths == 1
	jsonKey  bool  // that column is json or jsonb
	kafkaKey bool  // a key column reads kafka.key

	// The key last parsed.
	slots  []int // bare or wrapped for an object key, nil otherwise
	scalar span  // the value of a key that is not an object
}

func newKeyReader(cols []column, debezium bool, maxDepth int) *keyReader {
	k := &keyReader{root: &node{slot: -1}, payload: -1, single: -1}
	k.p.maxDepth = maxDepth
	k.bare = make([]int, len(cols))
	var payload *node
	if debezium {
		k.wrapped = make([]int, len(cols))
		k.payload = slotAt(k.root, "payload", &k.p.slots)
		payload = k.root.child("payload")
	}
	for i := range cols {
		c := &cols[i]
		k.bare[i] = -1
		if k.wrapped != nil {
			k.wrapped[i] = -1
		}
		if !c.Key {
			continue
		}
		switch {
		case c.Source == SourcePath, c.Source == SourceKey && c.Path != "":
			k.paths++
			k.single = i
			k.jsonKey = c.Type == TypeJSON || c.Type == TypeJSONB
			k.bare[i] = slotAt(k.root, c.Path, &k.p.slots)
			if payload != nil {
				k.wrapped[i] = slotAt(payload, c.Path, &k.p.slots)
			}
		case c.Source == SourceKey:
			k.kafkaKey = true
		}
	}
	k.root.fillSubtree()
	return k
}

// slotAt returns the parser slot of the dotted path below n, creating the
// nodes and the slot as needed.
func slotAt(n *node, path string, slots *[]span) int {
	for {
		seg, rest, more := strings.Cut(path, ".")
		n = n.child(seg)
		if !more {
			break
		}
		path = rest
	}
	if n.slot < 0 {
		n.slot = len(*slots)
		*slots = append(*slots, span{})
	}
	return n.slot
}

func badKey(format string, args ...any) *RowError {
	return &RowError{Path: "kafka.key", Reason: ReasonBadKey, Detail: fmt.Sprintf(format, args...)}
}

// parse reads key for the field calls that follow.
func (k *keyReader) parse(key []byte) *RowError {
	k.slots, k.scalar = nil, span{}
	k.p.reset(key)
	i := 0
	for i < len(key) && (key[i] == ' ' || key[i] == '\t' || key[i] == '\n' || key[i] == '\r') {
		i++
	}
	if i < len(key) && key[i] == '{' {
		if _, ok := k.p.parseDocument(k.root); !ok {
			return badKey("the key is not valid JSON: %s: %s at byte %d", k.p.errReason, k.p.errDetail, k.p.errPos)
		}
		k.slots = k.bare
		if k.payload >= 0 && k.p.slots[k.payload].kind == kindObject {
			k.slots = k.wrapped
		}
		return nil
	}
	sp, ok := k.p.parseDocument(nil)
	switch {
	case !ok:
		// Not JSON: the key's bytes are a string.
		if k.jsonKey && k.paths == 1 {
			return badKey("the key is not valid JSON, which a json key column needs: %s at byte %d", k.p.errDetail, k.p.errPos)
		}
		if reason, detail := checkText(key); reason != "" {
			return badKey("the key is neither JSON nor text: %s", detail)
		}
		k.p.reset(key)
		sp = span{start: 0, end: len(key), kind: kindString}
	case sp.kind == kindNull || sp.kind == kindArray:
		return badKey("the key is a JSON %s; a delete needs an object, a string or a number", sp.kind)
	}
	if k.paths != 1 {
		return badKey("a key that is not a JSON object fills one key column, and the table has %d key columns read from the key; "+
			"send an object key with a field per key column", k.paths)
	}
	k.scalar = sp
	return nil
}

// field returns the span of key path column i in the key last parsed.
func (k *keyReader) field(i int) span {
	if k.slots != nil {
		if s := k.slots[i]; s >= 0 {
			return k.p.slots[s]
		}
		return span{}
	}
	if i == k.single {
		return k.scalar
	}
	return span{}
}

// appendKeyField appends key path column i from the key last parsed, with
// the conversions of FormatDebezium (enc) or of plain JSON.
func (d *Decoder) appendKeyField(dst []byte, i int, c *column, enc fieldEnc) ([]byte, *RowError) {
	sp := d.keys.field(i)
	if sp.kind == kindNone || sp.kind == kindNull {
		return dst, &RowError{Column: c.Name, Path: "kafka.key", Reason: ReasonBadKey,
			Detail: fmt.Sprintf("the key has no value at %s, so the delete cannot name its row", c.Path)}
	}
	// The conversions read d.p: let the key's parser stand in for it.
	d.p, d.keys.p = d.keys.p, d.p
	var rerr *RowError
	if d.dbz != nil {
		dst, rerr = d.appendChangeField(dst, -1, c, sp, enc)
	} else {
		dst, rerr = d.appendPath(dst, c, sp)
	}
	d.p, d.keys.p = d.keys.p, d.p
	if rerr != nil {
		return dst, &RowError{Column: c.Name, Path: "kafka.key", Reason: ReasonBadKey,
			Detail: fmt.Sprintf("key value at %s: %s: %s", c.Path, rerr.Reason, rerr.Detail)}
	}
	return dst, nil
}

// appendDelete appends the tuple of a tombstone under Options.Deletes.
func (d *Decoder) appendDelete(dst []byte, rec *Record) ([]byte, *RowError) {
	d.op = OpDelete
	if rec.Key == nil {
		return dst, badKey("tombstone without a key: a delete needs the record key to name its row")
	}
	if d.format.UsesRegistry() && d.rk != nil && (d.rk.paths > 0 || keyFramed(rec)) {
		return d.appendRegistryDelete(dst, rec)
	}
	if d.keys.paths > 0 {
		if rerr := d.keys.parse(rec.Key); rerr != nil {
			return dst, rerr
		}
	}
	if d.rk != nil && d.rk.extra > 0 {
		// Columns that read a field of the key without being key columns.
		if rerr := d.decodeKey(rec); rerr != nil {
			return dst, rerr
		}
	}
	d.p.reset(nil)
	for i := range d.cols {
		c := &d.cols[i]
		var rerr *RowError
		switch {
		case c.Key && (c.Source == SourcePath || c.Source == SourceKey && c.Path != ""):
			dst, rerr = d.appendKeyField(dst, i, c, fieldEnc{})
		case c.Source == SourceKey && c.Path != "":
			dst, rerr = d.appendKeyPath(dst, c, i)
		case c.Source == SourcePath:
			dst = appendNull(dst)
		default:
			dst, rerr = d.appendSource(dst, c, rec, nil, span{})
		}
		if rerr != nil {
			return dst, rerr
		}
	}
	return dst, nil
}
