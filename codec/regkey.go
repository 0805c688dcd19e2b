package codec

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Columns that read fields of the record key: source kafka.key with a
// path. In the registry formats the key is decoded with its own writer
// schema, cached apart from the value's; in FormatJSON (and for
// FormatJSONSchema's payload) it is a JSON object. Deletes of registry
// formats read the key columns from a framed key the same way
// (appendRegistryDelete).

// keyFields reads the fields of record keys that columns take.
type keyFields struct {
	cols   []Column // the plans' path columns: one per decoder column reading the key by path
	slotOf []int    // per decoder column: its index in cols, -1 when it reads no field of the key
	paths  int      // kafka.key columns with a path: the key is read for every record
	extra  int      // of those, the ones that are not key columns (Column.Key)

	schemas schemaCache // key writer schemas (registry formats)
	indexes []int       // Protobuf message indexes of the key

	// JSON keys (FormatJSON, FormatJSONSchema).
	p     parser
	root  *node
	slots []int // per cols entry: its parser slot

	// The key of the record being decoded.
	plan   valuePlan // Avro, Protobuf
	parsed bool      // JSON: p holds the parsed key
}

// newKeyFields returns what reads the key fields cols take, or nil when no
// column needs one. For deletes of registry formats the key columns with
// a value path read the same path from the key.
func newKeyFields(format Format, cols []column, opts Options) *keyFields {
	k := &keyFields{slotOf: make([]int, len(cols)), root: &node{slot: -1}}
	deletes := opts.Deletes && format.UsesRegistry()
	for i := range cols {
		c := &cols[i]
		k.slotOf[i] = -1
		pc := Column{Name: c.Name, Type: c.Type, Path: c.Path}
		switch {
		case c.Source == SourceKey && c.Path != "":
			k.paths++
			if !c.Key {
				k.extra++
			}
			pc.Required = c.Required
		case deletes && c.Source == SourcePath && c.Key:
		default:
			continue
		}
		k.slotOf[i] = len(k.cols)
		k.cols = append(k.cols, pc)
		k.slots = append(k.slots, slotAt(k.root, c.Path, &k.p.slots))
	}
	if len(k.cols) == 0 {
		return nil
	}
	k.root.fillSubtree()
	k.p.maxDepth = opts.MaxDepth
	k.schemas.max = opts.MaxSchemas
	return k
}

// validateKeyPath checks a kafka.key column with a path.
func validateKeyPath(format Format, c Column) error {
	switch format {
	case FormatJSON, FormatAvro, FormatProtobuf, FormatJSONSchema:
	default:
		return fmt.Errorf("source kafka.key with path %q reads a field of a JSON or schema registry key, which format %s does not decode; "+
			"drop the path to take the key as received, or use format json, avro, protobuf or json_schema", c.Path, format)
	}
	if slices.Contains(strings.Split(c.Path, "."), "") {
		return fmt.Errorf("path %q has an empty segment; write dotted field names of the key like id or customer.id", c.Path)
	}
	return nil
}

// keyPathError makes an error of a key schema or key datum name the key:
// its path kafka.key, or kafka.key.PATH for a field.
func keyPathError(re *RowError) {
	if re.Path == "" {
		re.Path = "kafka.key"
	} else if !strings.HasPrefix(re.Path, "kafka.key") {
		re.Path = "kafka.key." + re.Path
	}
}

// AddKeySchema is AddSchema for the writer schema of record keys, after
// AppendFields returned a *SchemaNeededError with Key set. Key schemas are
// compiled for the columns that read fields of the key and cached apart
// from value schemas (the same ref may be in both), up to
// Options.MaxSchemas. Its records fail as AddSchema describes, their
// errors naming kafka.key. A key schema must be of the format's type.
func (d *Decoder) AddKeySchema(ref SchemaRef, s *Schema) error {
	if !d.usesRegistry() {
		return fmt.Errorf("cannot add a key schema to a decoder for format %s, which reads no schema registry framing", d.format)
	}
	if d.dbzAvro != nil {
		return d.addSchema(&d.dbzAvro.keySchemas, ref, s, nil, true)
	}
	if d.rk == nil {
		return fmt.Errorf("cannot add a key schema: no column reads a field of the record key (source kafka.key with a path, or a key column under deletes)")
	}
	return d.addSchema(&d.rk.schemas, ref, s, d.rk.cols, true)
}

// keyFramed reports whether rec's key carries registry framing: a
// __key_schema_id header that is not null, or a first byte that is a
// magic byte (no JSON or text key starts with byte 0 or 1).
func keyFramed(rec *Record) bool {
	if _, ok := schemaIDHeader(rec, keySchemaIDHeader); ok {
		return true
	}
	return len(rec.Key) > 0 && (rec.Key[0] == magicID || rec.Key[0] == magicGUID)
}

// decodeKey reads rec's key (not nil) for the appendKeyPath calls that
// follow: a registry key is decoded with its writer schema, a JSON key
// parsed.
func (d *Decoder) decodeKey(rec *Record) *RowError {
	k := d.rk
	key := rec.Key
	if d.format.UsesRegistry() {
		var f framing
		if len(rec.Headers) == 0 && len(key) >= 5 && key[0] == magicID && d.format != FormatProtobuf {
			f.ref.ID = int32(binary.BigEndian.Uint32(key[1:]))
			f.payload = key[5:]
		} else {
			var rerr *RowError
			f, rerr = parseFramingOf(rec, key, &keySide, d.format == FormatProtobuf, k.indexes)
			k.indexes = f.indexes
			if rerr != nil {
				keyPathError(rerr)
				return rerr
			}
		}
		plan, rerr := d.lookup(&k.schemas, &f, true)
		if rerr != nil {
			return rerr
		}
		if plan != nil {
			k.plan = plan
			if rerr := plan.decode(f.payload); rerr != nil {
				keyPathError(rerr)
				return rerr
			}
			return nil
		}
		key = f.payload // JSON Schema: the JSON document after the framing
	}
	k.p.reset(key)
	if _, ok := k.p.parseDocument(k.root); !ok {
		return &RowError{Path: "kafka.key", Reason: k.p.errReason,
			Detail: fmt.Sprintf("%s at byte %d of the key; columns that read a field of the key need a JSON object key", k.p.errDetail, k.p.errPos)}
	}
	k.parsed = true
	return nil
}

// releaseKey drops the references to the record's key.
func (k *keyFields) release() {
	if k.plan != nil {
		if r, ok := k.plan.(planReleaser); ok {
			r.release()
		}
		k.plan = nil
	}
	k.parsed = false
	k.p.doc = nil
}

// appendKeyPath appends column i, which reads a field of the key decoded
// by decodeKey; NULL when no key was decoded (a null key).
func (d *Decoder) appendKeyPath(dst []byte, c *column, i int) ([]byte, *RowError) {
	k := d.rk
	j := k.slotOf[i]
	switch {
	case k.plan != nil:
		out, rerr := k.plan.appendPath(dst, j)
		if rerr != nil {
			keyPathError(rerr)
		}
		return out, rerr
	case k.parsed:
		sp := k.p.slots[k.slots[j]]
		// The conversions read d.p: let the key's parser stand in for it.
		d.p, k.p = k.p, d.p
		var rerr *RowError
		dst, rerr = d.appendPath(dst, c, sp)
		d.p, k.p = k.p, d.p
		if rerr != nil {
			keyPathError(rerr)
		}
		return dst, rerr
	}
	return c.null(dst)
}

// appendDeleteKey appends key column i of a delete from the decoded key:
// a value that is missing or does not convert is ReasonBadKey.
func (d *Decoder) appendDeleteKey(dst []byte, c *column, i int) ([]byte, *RowError) {
	start := len(dst)
	path := d.rk.cols[d.rk.slotOf[i]].Path
	out, rerr := d.appendKeyPath(dst, c, i)
	if rerr != nil {
		return dst[:start], &RowError{Column: c.Name, Path: "kafka.key", Reason: ReasonBadKey,
			Detail: fmt.Sprintf("key value at %s: %s: %s", path, rerr.Reason, rerr.Detail)}
	}
	if len(out)-start == 4 && binary.BigEndian.Uint32(out[start:]) == 0xffffffff {
		return dst[:start], &RowError{Column: c.Name, Path: "kafka.key", Reason: ReasonBadKey,
			Detail: fmt.Sprintf("the key has no value at %s, so the delete cannot name its row", path)}
	}
	return out, nil
}

// appendRegistryDelete appends the tuple of a tombstone whose key is read
// with its writer schema: key columns (Column.Key) take their path of the
// key (a kafka.key column its own path, a path column the same path in
// the key record, as Debezium and Confluent keys hold the primary key
// fields), other columns reading the key by path take theirs, other path
// columns are NULL.
func (d *Decoder) appendRegistryDelete(dst []byte, rec *Record) ([]byte, *RowError) {
	if rerr := d.decodeKey(rec); rerr != nil {
		return dst, rerr
	}
	d.p.reset(nil)
	for i := range d.cols {
		c := &d.cols[i]
		var rerr *RowError
		switch {
		case d.rk.slotOf[i] >= 0 && c.Key:
			dst, rerr = d.appendDeleteKey(dst, c, i)
		case d.rk.slotOf[i] >= 0:
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

// KeySchemaRef returns the writer schema reference of rec's framed key:
// that of its last __key_schema_id header with a value, else the key's
// own prefix (magic byte 0 and the 4-byte id, or 1 and the 16-byte
// GUID), as the decoder reads them. ok is false for a key without
// framing or with a truncated reference (the decoder makes that record
// bad_framing when it reads the key). It does not allocate.
func KeySchemaRef(rec *Record) (ref SchemaRef, ok bool) {
	b := rec.Key
	if len(rec.Headers) > 0 {
		if hv, found := schemaIDHeader(rec, keySchemaIDHeader); found {
			b = hv
		}
	}
	switch {
	case len(b) >= 5 && b[0] == magicID:
		return SchemaRef{ID: int32(binary.BigEndian.Uint32(b[1:]))}, true
	case len(b) >= 17 && b[0] == magicGUID:
		ref = SchemaRef{IsGUID: true}
		copy(ref.GUID[:], b[1:17])
		return ref, true
	}
	return SchemaRef{}, false
}
