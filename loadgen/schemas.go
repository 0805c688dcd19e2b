package loadgen

import (
	"fmt"
	"strconv"
	"strings"
)

// Column is one target column of a schema's table, in the appliance's
// configuration terms (docs/design.md, "Configuration").
type Column struct {
	Name     string
	Type     string // text, int8, numeric, uuid, timestamptz, jsonb, ...
	Path     string // dotted JSON path; empty when Source is set
	Source   string // kafka.offset, kafka.partition, ...; empty for a path
	Required bool
}

// schema is one generated event shape and the table it lands in.
type schema struct {
	name        string
	key         string // key column; "" for a keyless table (dedup by position)
	columns     []Column
	naturalSize int
	render      func(dst []byte, c *recCtx) []byte
}

func schemaByName(name string) *schema {
	switch name {
	case SchemaNarrow:
		return &narrowSchema
	case SchemaWide:
		return &wideSchema
	}
	return &referenceSchema
}

// baseMs is 2026-11-01T00:00:00Z; record i's timestamp is near baseMs+3i ms.
const baseMs = 1793491200000

func tsMs(c *recCtx) int64 {
	ms := baseMs + 3*c.index + int64(c.rng.intn(1000))
	if c.update {
		// A newer version's time is its own: near the update's position.
		ms = baseMs + 3*(c.version-1) + int64(c.urng.intn(1000))
	}
	return ms
}

// updated returns v, or for a newer version of an event a fresh draw below
// n in its place: the changing fields of an update.
func updated(c *recCtx, v int64, n int) int64 {
	if c.update {
		return int64(c.urng.intn(n))
	}
	return v
}

var referenceSchema = schema{
	name: SchemaReference,
	key:  "event_id",
	columns: []Column{
		{Name: "event_id", Type: "uuid", Path: "event_id", Required: true},
		{Name: "tenant_id", Type: "int8", Path: "tenant_id"},
		{Name: "user_id", Type: "int8", Path: "user_id"},
		{Name: "type", Type: "text", Path: "type"},
		{Name: "ts", Type: "timestamptz", Path: "ts"},
		{Name: "amount", Type: "numeric", Path: "amount"},
		{Name: "version", Type: "int8", Path: "version"},
		{Name: "url", Type: "text", Path: "url"},
		{Name: "user_agent", Type: "text", Path: "user_agent"},
		{Name: "attrs", Type: "jsonb", Path: "attrs"},
		{Name: "country", Type: "text", Path: "attrs.country"},
		{Name: "src_offset", Type: "int8", Source: "kafka.offset"},
	},
	naturalSize: 480,
	render:      renderReference,
}

var (
	eventTypes  = []string{"purchase", "view", "click", "add_to_cart", "checkout", "refund", "login", "search"}
	countries   = []string{"DE", "US", "FR", "GB", "NL", "SE", "PL", "ES", "IT", "JP", "BR", "IN", "CA", "AU", "CH", "AT"}
	devices     = []string{"desktop", "mobile", "tablet", "tv"}
	experiments = []string{"checkout-v2", "control", "search-rank-b", "price-test-7", "onboarding-c"}
	categories  = []string{"electronics", "books", "garden", "fashion", "toys", "grocery", "sports", "home"}
	referrers   = []string{"newsletter", "ads", "organic", "social", "partner"}
	channels    = []string{"web", "ios", "android", "email", "pos", "partner-api"} // the evolved field's values
	words       = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
		"juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"}
)

func pick(c *recCtx, s []string) string { return s[c.rng.intn(len(s))] }

func renderReference(dst []byte, c *recCtx) []byte {
	dst = append(dst, '{')
	if c.kind != KindMissingRequired {
		dst = append(dst, `"event_id":"`...)
		dst = appendUUID(dst, c.id)
		dst = append(dst, `",`...)
	}
	dst = append(dst, `"tenant_id":`...)
	tenant := int64(1 + c.rng.intn(5000))
	c.tenant = tenant
	switch c.kind {
	case KindWrongType:
		dst = append(dst, `"abc"`...)
	case KindOutOfRange:
		dst = append(dst, "99999999999999999999"...)
	default:
		dst = strconv.AppendInt(dst, tenant, 10)
	}
	dst = append(dst, `,"user_id":`...)
	dst = strconv.AppendInt(dst, int64(1+c.rng.intn(10_000_000)), 10)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, pick(c, eventTypes)...)
	dst = append(dst, `","ts":"`...)
	dst = appendTimestampMs(dst, tsMs(c))
	dst = append(dst, `","amount":`...)
	dst = appendFixed(dst, updated(c, int64(c.rng.intn(1_000_000)), 1_000_000), 2)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, c.version, 10)
	dst = append(dst, `,"url":"https://shop.example.com/`...)
	dst = append(dst, pick(c, categories)...)
	dst = append(dst, "/p/"...)
	dst = strconv.AppendInt(dst, int64(c.rng.intn(1_000_000)), 10)
	dst = append(dst, "?ref="...)
	dst = append(dst, pick(c, referrers)...)
	dst = append(dst, `","user_agent":"Mozilla/5.0 (`...)
	dst = appendVarText(dst, c)
	dst = append(dst, `)","attrs":{"country":"`...)
	dst = append(dst, pick(c, countries)...)
	dst = append(dst, `","device":"`...)
	dst = append(dst, pick(c, devices)...)
	dst = append(dst, `","session":"`...)
	var s [16]byte
	a, b := c.rng.next(), c.rng.next()
	for k := range 8 {
		s[k], s[8+k] = byte(a>>(8*k)), byte(b>>(8*k))
	}
	s[6], s[8] = s[6]&0x0f|0x40, s[8]&0x3f|0x80
	dst = appendUUID(dst, s)
	dst = append(dst, `","experiment":"`...)
	dst = append(dst, pick(c, experiments)...)
	if c.channel != "" {
		dst = append(dst, `"},"`+EvolvedField+`":"`...)
		dst = append(dst, c.channel...)
		return append(dst, `"}`...)
	}
	return append(dst, `"}}`...)
}

// appendVarText appends the variable-length text field's content, injecting
// the text-level bad kinds (invalid UTF-8, NUL) in its middle.
func appendVarText(dst []byte, c *recCtx) []byte {
	n := c.varLen
	off := c.rng.intn(len(corpus))
	half := n / 2
	dst = appendCorpus(dst, off, half)
	switch c.kind {
	case KindInvalidUTF8:
		dst = append(dst, 0xff, 0xfe, 0xc3) // 0xc3 starts a 2-byte sequence that never ends
	case KindNUL:
		dst = append(dst, `\u0000`...)
	}
	return appendCorpus(dst, off+half, n-half)
}

func appendCorpus(dst []byte, off, n int) []byte {
	off %= len(corpus)
	for n > 0 {
		k := min(n, len(corpus)-off)
		dst = append(dst, corpus[off:off+k]...)
		n -= k
		off = 0
	}
	return dst
}

// corpus is user-agent-like text with no JSON-special characters, fixed for
// all seeds (the seed picks offsets into it).
var corpus = func() string {
	toks := []string{"Windows NT 10.0; ", "Win64; x64", "Macintosh; ", "Intel Mac OS X 14_5", "X11; Linux x86_64",
		"iPhone; CPU iPhone OS 17_4 like Mac OS X", " AppleWebKit/537.36", " (KHTML, like Gecko)", " Chrome/126.0.0.0",
		" Safari/537.36", " Firefox/127.0", " Mobile/15E148", " Edg/126.0.2592.87", " Version/17.4", "; rv:127.0",
		" OPR/111.0.0.0", " SamsungBrowser/25.0", "; Android 14; Pixel 8", " Gecko/20100101"}
	var sb strings.Builder
	r := rng{s: 0x5eed}
	for sb.Len() < 1<<16 {
		sb.WriteString(toks[r.intn(len(toks))])
	}
	return sb.String()
}()

var narrowSchema = schema{
	name: SchemaNarrow,
	key:  "id",
	columns: []Column{
		{Name: "id", Type: "uuid", Path: "id", Required: true},
		{Name: "ts", Type: "timestamptz", Path: "ts"},
		{Name: "value", Type: "float8", Path: "value"},
		{Name: "tag", Type: "text", Path: "tag"},
		{Name: "version", Type: "int8", Path: "version"},
		{Name: "src_offset", Type: "int8", Source: "kafka.offset"},
	},
	naturalSize: 120,
	render:      renderNarrow,
}

func renderNarrow(dst []byte, c *recCtx) []byte {
	dst = append(dst, '{')
	if c.kind != KindMissingRequired {
		dst = append(dst, `"id":"`...)
		dst = appendUUID(dst, c.id)
		dst = append(dst, `",`...)
	}
	dst = append(dst, `"ts":"`...)
	dst = appendTimestampMs(dst, tsMs(c))
	dst = append(dst, `","value":`...)
	v := updated(c, int64(c.rng.intn(100_000_000)), 100_000_000) - 50_000_000
	switch c.kind {
	case KindWrongType:
		dst = append(dst, `"abc"`...)
	case KindOutOfRange:
		dst = append(dst, "1e999"...) // beyond float8
	default:
		dst = appendFixed(dst, v, 3)
	}
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, c.version, 10)
	dst = append(dst, `,"tag":"`...)
	dst = appendVarText(dst, c)
	return append(dst, `"}`...)
}

// The wide table is keyless: rows are deduplicated by Kafka position, so a
// re-sent event lands once per committed occurrence.
var wideSchema = schema{
	name:        SchemaWide,
	columns:     wideColumns(),
	naturalSize: 2000,
	render:      renderWide,
}

func wideColumns() []Column {
	cols := []Column{
		{Name: "id", Type: "uuid", Path: "id", Required: true},
		{Name: "ts", Type: "timestamptz", Path: "ts"},
		{Name: "seq", Type: "int8", Path: "seq"},
	}
	add := func(prefix, typ string, n int) {
		for k := 1; k <= n; k++ {
			name := fmt.Sprintf("%s_%02d", prefix, k)
			cols = append(cols, Column{Name: name, Type: typ, Path: name})
		}
	}
	add("f_int", "int8", 10)
	add("f_num", "numeric", 5)
	add("f_float", "float8", 5)
	add("f_bool", "bool", 5)
	add("f_text", "text", 10)
	cols = append(cols,
		Column{Name: "notes", Type: "text", Path: "notes"},
		Column{Name: "meta", Type: "jsonb", Path: "meta"},
		Column{Name: "region", Type: "text", Path: "meta.region"},
		Column{Name: "src_partition", Type: "int4", Source: "kafka.partition"},
		Column{Name: "src_offset", Type: "int8", Source: "kafka.offset"},
	)
	return cols
}

// wideNames holds the JSON keys of the repeated wide fields, built once so
// rendering does not format names.
var wideNames = func() (n [5][]string) {
	for g, p := range []string{"f_int", "f_num", "f_float", "f_bool", "f_text"} {
		cnt := 5
		if g == 0 || g == 4 {
			cnt = 10
		}
		for k := 1; k <= cnt; k++ {
			n[g] = append(n[g], fmt.Sprintf(`"%s_%02d":`, p, k))
		}
	}
	return n
}()

func renderWide(dst []byte, c *recCtx) []byte {
	dst = append(dst, '{')
	if c.kind != KindMissingRequired {
		dst = append(dst, `"id":"`...)
		dst = appendUUID(dst, c.id)
		dst = append(dst, `",`...)
	}
	dst = append(dst, `"ts":"`...)
	dst = appendTimestampMs(dst, tsMs(c))
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, c.index, 10)
	for k, name := range wideNames[0] {
		dst = append(dst, ',')
		dst = append(dst, name...)
		v := int64(c.rng.next()>>1) >> (c.rng.intn(60))
		switch {
		case k == 0 && c.kind == KindWrongType:
			dst = append(dst, `"abc"`...)
		case k == 0 && c.kind == KindOutOfRange:
			dst = append(dst, "99999999999999999999"...)
		default:
			dst = strconv.AppendInt(dst, v, 10)
		}
	}
	for _, name := range wideNames[1] {
		dst = append(dst, ',')
		dst = append(dst, name...)
		dst = appendFixed(dst, int64(c.rng.intn(100_000_000)), 2)
	}
	for _, name := range wideNames[2] {
		dst = append(dst, ',')
		dst = append(dst, name...)
		dst = appendFixed(dst, int64(c.rng.intn(2_000_000_000))-1_000_000_000, 4)
	}
	for _, name := range wideNames[3] {
		dst = append(dst, ',')
		dst = append(dst, name...)
		if c.rng.next()&1 == 0 {
			dst = append(dst, "false"...)
		} else {
			dst = append(dst, "true"...)
		}
	}
	for _, name := range wideNames[4] {
		dst = append(dst, ',')
		dst = append(dst, name...)
		dst = append(dst, '"')
		dst = appendCorpus(dst, c.rng.intn(len(corpus)), 10+c.rng.intn(40))
		dst = append(dst, '"')
	}
	dst = append(dst, `,"notes":"`...)
	dst = appendVarText(dst, c)
	dst = append(dst, `","meta":{"region":"`...)
	dst = append(dst, pick(c, countries)...)
	dst = append(dst, `","rank":`...)
	dst = strconv.AppendInt(dst, int64(c.rng.intn(1000)), 10)
	dst = append(dst, `,"flags":["`...)
	dst = append(dst, pick(c, words)...)
	dst = append(dst, `","`...)
	dst = append(dst, pick(c, words)...)
	dst = append(dst, `"],"beta":`...)
	if c.rng.next()&1 == 0 {
		dst = append(dst, "false"...)
	} else {
		dst = append(dst, "true"...)
	}
	return append(dst, `}}`...)
}

// TableConfigYAML returns the configuration of the table that schema's events
// land in, as one item of the `tables:` list (docs/configuration.md),
// starting with "- name:" and ending with a newline. Place it under a
// `tables:` line. Keyed schemas (reference, narrow) use on_conflict: ignore;
// the wide table is keyless and deduplicated by Kafka position.
func TableConfigYAML(schema, table, topic string) string {
	return TableConfigYAMLFormat(schema, FormatJSON, table, topic)
}

// TableConfigYAMLFormat is TableConfigYAML for records in format (json,
// avro, protobuf, json_schema): the columns and paths are the same in
// every format. A registry format also needs the configuration's
// schema_registry section.
func TableConfigYAMLFormat(schema, format, table, topic string) string {
	return TableSpec{Schema: schema, Format: format, Table: table, Topic: topic}.YAML()
}

// TableSpec describes the table a stream lands in.
type TableSpec struct {
	Schema, Format, Table, Topic string
	// Workload cdc makes the table a format: debezium replica of the cdc
	// workload's source table (key id, guard lsn from
	// debezium.source.lsn, on_conflict update; converter avro for Format
	// avro); Schema, OnConflict and Guard are then ignored.
	Workload string
	// OnConflict is the keyed table's policy: ignore (default) or update.
	OnConflict string
	// Guard is the column that orders versions under update: "" for the
	// default (the kafka.offset column, src_offset), or "version", which
	// a stream with spread keys (Options.Keys null) needs.
	Guard string
}

// YAML returns the table as one item of the `tables:` list, starting with
// "- name:" and ending with a newline.
func (t TableSpec) YAML() string {
	if t.Workload == WorkloadCDC {
		return cdcTableYAML(t.Table, t.Topic, t.Format)
	}
	s := schemaByName(t.Schema)
	if t.Format == "" {
		t.Format = FormatJSON
	}
	if t.OnConflict == "" {
		t.OnConflict = "ignore"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n", yamlScalar(t.Table))
	fmt.Fprintf(&b, "  topics: [%s]\n", yamlScalar(t.Topic))
	fmt.Fprintf(&b, "  format: %s\n  create: true\n", t.Format)
	if s.key != "" {
		fmt.Fprintf(&b, "  key: [%s]\n  on_conflict: %s\n", s.key, yamlScalar(t.OnConflict))
		if t.Guard != "" {
			fmt.Fprintf(&b, "  guard: %s\n", yamlScalar(t.Guard))
		}
	}
	b.WriteString("  columns:\n")
	writeColumnsYAML(&b, s.columns)
	return b.String()
}

// writeColumnsYAML writes cols as the items of a table's columns: list.
func writeColumnsYAML(b *strings.Builder, cols []Column) {
	for _, c := range cols {
		fmt.Fprintf(b, "    - {name: %s, type: %s", c.Name, c.Type)
		if c.Source != "" {
			fmt.Fprintf(b, ", source: %s", c.Source)
		} else {
			fmt.Fprintf(b, ", path: %s", c.Path)
		}
		if c.Required {
			b.WriteString(", required: true")
		}
		b.WriteString("}\n")
	}
}

// yamlScalar quotes s unless it is a plain identifier-like scalar.
func yamlScalar(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return strconv.Quote(s)
		}
	}
	if s == "" || s[0] == '-' {
		return strconv.Quote(s)
	}
	return s
}
