package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
	"github.com/sluice-dev/sluice/registry"
)

// SchemaRegistryConfig is the top-level `schema_registry:` section: where
// the writer schemas of avro, protobuf and json_schema tables come from.
type SchemaRegistryConfig struct {
	URLs         []string  `yaml:"urls"`
	Username     string    `yaml:"username"`
	Password     string    `yaml:"password"`
	PasswordFile string    `yaml:"password_file"`
	Token        string    `yaml:"token"`
	TokenFile    string    `yaml:"token_file"`
	TLS          TLSConfig `yaml:"tls"`
}

// String hides the secrets when the section is printed.
func (s SchemaRegistryConfig) String() string {
	hide := func(v string) string {
		if v == "" {
			return ""
		}
		return "xxxxx"
	}
	return fmt.Sprintf("{urls:%v username:%s password:%s password_file:%s token:%s token_file:%s}",
		s.URLs, s.Username, hide(s.Password), s.PasswordFile, hide(s.Token), s.TokenFile)
}

// GoString hides the secrets for %#v.
func (s SchemaRegistryConfig) GoString() string { return "ingest.SchemaRegistryConfig" + s.String() }

// LogValue hides the secrets when the section is logged: a JSON handler
// would marshal the fields, ignoring String.
func (s SchemaRegistryConfig) LogValue() slog.Value { return slog.StringValue(s.String()) }

func (s *SchemaRegistryConfig) applyEnv(env func(string) string) {
	if v := env("SLUICE_SCHEMA_REGISTRY_URLS"); v != "" {
		s.URLs = splitList(v)
	}
	if v := env("SLUICE_SCHEMA_REGISTRY_USERNAME"); v != "" {
		s.Username = v
	}
	if v := env("SLUICE_SCHEMA_REGISTRY_PASSWORD"); v != "" {
		s.Password = v
	}
	if v := env("SLUICE_SCHEMA_REGISTRY_TOKEN"); v != "" {
		s.Token = v
	}
}

// validate checks the section; needed says whether a table reads a
// registry format (and so which key names it, for the message).
func (s *SchemaRegistryConfig) validate(needed string) error {
	if len(s.URLs) == 0 {
		if needed != "" {
			return cfgErr("schema_registry.urls", "empty while %s reads a Schema Registry format; set schema_registry.urls or SLUICE_SCHEMA_REGISTRY_URLS, e.g. http://127.0.0.1:8081", needed)
		}
		return nil
	}
	for i, raw := range s.URLs {
		if err := registry.CheckURL(raw); err != nil {
			return cfgErr(fmt.Sprintf("schema_registry.urls[%d]", i), "%v", err)
		}
	}
	if s.TLS.CAFile != "" || s.TLS.CertFile != "" || s.TLS.KeyFile != "" || s.TLS.ServerName != "" {
		s.TLS.Enabled = true
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		return cfgErr("schema_registry.tls", "cert_file and key_file go together; set both for a client certificate, or neither")
	}
	return nil
}

// resolveSecrets reads the password and token files.
func (s *SchemaRegistryConfig) resolveSecrets(env func(string) string) error {
	if err := resolveSecret(env, &s.Password, &s.PasswordFile, "schema_registry.password", "schema_registry.password_file",
		"SLUICE_SCHEMA_REGISTRY_PASSWORD", "SLUICE_SCHEMA_REGISTRY_PASSWORD_FILE"); err != nil {
		return err
	}
	if err := resolveSecret(env, &s.Token, &s.TokenFile, "schema_registry.token", "schema_registry.token_file",
		"SLUICE_SCHEMA_REGISTRY_TOKEN", "SLUICE_SCHEMA_REGISTRY_TOKEN_FILE"); err != nil {
		return err
	}
	if s.Token != "" && s.Username != "" {
		return cfgErr("schema_registry.token", "set together with schema_registry.username; use a bearer token or basic auth, not both")
	}
	return nil
}

// newRegistry returns the Schema Registry client of cfg, or nil when no
// table needs one.
func newRegistry(cfg *Config) (*registry.Client, error) {
	s := cfg.SchemaRegistry
	if len(s.URLs) == 0 {
		return nil, nil
	}
	o := registry.Options{URLs: s.URLs, Username: s.Username, Password: s.Password, Token: s.Token, UserAgent: "sluice"}
	if s.TLS.Enabled || anyHTTPS(s.URLs) {
		tc, err := tlsConfig("schema_registry.tls", s.TLS)
		if err != nil {
			return nil, err
		}
		o.TLS = tc
	}
	c, err := registry.New(o)
	if err != nil {
		return nil, cfgErr("schema_registry", "%v", err)
	}
	return c, nil
}

func anyHTTPS(urls []string) bool {
	for _, u := range urls {
		if strings.HasPrefix(u, "https://") {
			return true
		}
	}
	return false
}

// codecSchema converts a registry schema for the codec.
func codecSchema(s *registry.Schema) *codec.Schema {
	out := &codec.Schema{Type: codecSchemaType(s.Type), Text: s.Text}
	for _, r := range s.References {
		out.References = append(out.References, codec.NamedSchema{Name: r.Name,
			Schema: codec.Schema{Type: codecSchemaType(r.Schema.Type), Text: r.Schema.Text}})
	}
	return out
}

func codecSchemaType(t registry.SchemaType) codec.SchemaType {
	switch t {
	case registry.TypeProtobuf:
		return codec.SchemaProtobuf
	case registry.TypeJSON:
		return codec.SchemaJSON
	}
	return codec.SchemaAvro
}

// registryWait is the registry's health as the workers see it: the
// partitions waiting for a schema, or for PostgreSQL to add the columns a
// new schema brings (evolve: add_columns), and why. /readyz reports it.
type registryWait struct {
	mu      sync.Mutex
	waiting map[partKey]schemaWait
}

// schemaWait is what a partition waits for and the error it waits on.
type schemaWait struct{ on, why string }

// onRegistry is what a partition whose schema request failed waits for.
const onRegistry = "the schema registry"

// set records that partition k waits for the registry because of why, or
// no longer waits when why is "".
func (r *registryWait) set(k partKey, why string) { r.setOn(k, onRegistry, why) }

// setOn records that partition k waits for on because of why, or no
// longer waits when why is "".
func (r *registryWait) setOn(k partKey, on, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if why == "" {
		delete(r.waiting, k)
		return
	}
	if r.waiting == nil {
		r.waiting = map[partKey]schemaWait{}
	}
	r.waiting[k] = schemaWait{on: on, why: why}
}

// reason returns why partitions wait, naming the first of them, "" when
// none does.
func (r *registryWait) reason() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) == 0 {
		return ""
	}
	keys := make([]partKey, 0, len(r.waiting))
	for k := range r.waiting {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].partition < keys[j].partition
	})
	k := keys[0]
	w := r.waiting[k]
	return fmt.Sprintf("%d partition(s) wait for %s (%s/%d: %s)", len(r.waiting), w.on, k.topic, k.partition, w.why)
}

// fetchSchema gets the writer schema a decoder asked for and gives it to
// the decoder: a value schema by AddSchema, a key schema (need.Key, the
// subject TOPIC-key) by AddKeySchema; the registry looks both up by id or
// GUID alike. A schema the registry does not have is handed over as nil
// (its records become dead letters; the decoder asks again for a later
// record after 30 s, as a lagging registry replica may learn it).
// Anything else (registry down, slow, 5xx, refused credentials) is retried
// with backoff until it works, the partition is dropped or the App is
// stopping: it returns false then, and the caller abandons the chunk (its
// records are fetched again by whoever owns the partition next).
//
// t is the table dec decodes for: a new value schema may add columns to
// it (evolve: add_columns; key schemas do not); nil for a decoder of a
// when: condition.
func (w *worker) fetchSchema(st *partState, t *tableRT, dec *codec.Decoder, need *codec.SchemaNeededError) bool {
	a := w.a
	add := dec.AddSchema
	what := "writer schema"
	if need.Key {
		add, what = dec.AddKeySchema, "key writer schema"
	}
	if a.reg == nil {
		// Unreachable: validation requires schema_registry for these formats.
		add(need.Ref, nil)
		return true
	}
	key := partKey{st.topic, st.partition}
	backoff := 200 * time.Millisecond
	// warnOnce logs what every decoder of t meeting the schema would find
	// alike once per table (each condition's decoder of a when: route,
	// without a table, says it itself).
	warnOnce := func(kind, msg string, args ...any) {
		if t == nil || t.ev.once(kind+"\x00"+what+"\x00"+need.Ref.String()) {
			a.log.Warn(msg, args...)
		}
	}
	for {
		s, err := a.schemaByRef(a.hardCtx, need.Ref)
		var cs *codec.Schema
		var evolveErr error
		if err == nil {
			cs = codecSchema(s)
			// evolve: add_columns adds the fields the table lacks before
			// the decoder compiles the schema for the table's columns;
			// for Protobuf those of the message the record is (a later
			// record of another message of the schema adds nothing), for
			// format debezium those of the Envelope's row. A writer
			// schema that lists none (no Envelope; a JSON Schema root
			// without properties) is logged once per table and schema,
			// not by each decoder meeting it.
			if t != nil && !need.Key && t.cfg.Evolve == "add_columns" {
				fields, ferr := t.schemaFields(cs, need.Indexes)
				if ferr == nil && len(fields) > 0 {
					evolveErr = a.evolve(a.hardCtx, t, fields)
				} else if t.ev.once("no fields\x00" + need.Ref.String()) {
					what := "top-level fields"
					if t.format == codec.FormatDebezium {
						what = "row fields"
					}
					if ferr == nil {
						ferr = errors.New("it lists none")
					}
					a.log.Warn("a writer schema gives no "+what+" to follow; the table gets no column for it", "table", t.cfg.Name,
						"topic", st.topic, "schema", need.Ref.String(), "err", ferr)
				}
			}
		}
		switch {
		case err == nil && evolveErr != nil:
			// The registry answered; PostgreSQL did not add the columns
			// (a lock held on the target, a missing privilege): the
			// partition waits for PostgreSQL, which is no registry error.
			a.regWait.setOn(key, "PostgreSQL to add columns to "+t.cfg.Name, evolveErr.Error())
			a.log.Warn("cannot add the columns of a new "+what+"; the partition waits and retries", "topic", st.topic, "partition", st.partition,
				"table", t.cfg.Name, "schema", need.Ref.String(), "retry_in", backoff, "err", evolveErr)
		case err == nil:
			a.regWait.set(key, "")
			if cerr := add(need.Ref, cs); cerr != nil {
				warnOnce("unfit", "a "+what+" cannot fill the table; its records become dead letters", "topic", st.topic, "schema", need.Ref.String(), "err", cerr)
			} else {
				a.log.Info(what+" compiled", "topic", st.topic, "schema", need.Ref.String(), "subject", s.Subject, "version", s.Version)
				if t != nil && !need.Key && t.cfg.derived != nil && t.cfg.Evolve != "add_columns" {
					if fields, ferr := t.schemaFields(cs, need.Indexes); ferr == nil {
						a.logUnstored(t, st.topic, need.Ref.String(), fields)
					}
				}
				if t != nil && !need.Key {
					// Right for a field only newer writer schemas have,
					// silent for a misspelt path: say which. (Debezium's
					// paths name fields of the row, below the envelope.)
					miss := codec.UnmatchedPaths(cs, need.Indexes, t.cols)
					if t.format == codec.FormatDebezium {
						miss = codec.UnmatchedRowPaths(cs, t.cols)
					}
					if len(miss) > 0 {
						// The columns are part of what is said: a table
						// that gained columns may miss others.
						warnOnce("unmatched "+strings.Join(miss, ","), "columns whose path names no field of the writer schema are NULL in its records (dead letters, missing_required, where required); check their paths",
							"table", t.cfg.Name, "topic", st.topic, "schema", need.Ref.String(), "columns", miss)
					}
				}
			}
			return true
		case registry.IsPermanent(err):
			// Not found (40403), a schema type Sluice cannot read, or
			// references that cannot be resolved.
			a.regWait.set(key, "")
			warnOnce("unavailable", "a "+what+" cannot be had from the schema registry; its records become dead letters",
				"topic", st.topic, "schema", need.Ref.String(), "err", err)
			add(need.Ref, nil)
			return true
		}
		if err != nil {
			a.regWait.set(key, err.Error())
			a.m.registryErrors.Inc()
			a.log.Warn("cannot fetch a "+what+"; the partition waits and retries", "topic", st.topic, "partition", st.partition,
				"schema", need.Ref.String(), "retry_in", backoff, "err", err)
		}
		if !a.registryRetry(st, &backoff) {
			return false
		}
	}
}

// registryRetry waits *backoff before a partition's next try at the
// registry (or at PostgreSQL, for the columns of a new writer schema) and
// doubles it, up to 10 s. It returns false, clearing the partition's
// registry wait, when the App stops or the partition is dropped meanwhile.
func (a *App) registryRetry(st *partState, backoff *time.Duration) bool {
	key := partKey{st.topic, st.partition}
	t := time.NewTimer(*backoff)
	select {
	case <-a.hardCtx.Done():
		t.Stop()
		a.regWait.set(key, "")
		return false
	case <-t.C:
	}
	if st.dropped.Load() {
		a.regWait.set(key, "")
		return false
	}
	*backoff = min(*backoff*2, 10*time.Second)
	return true
}

// derivation is what deriveColumns learnt of a table whose columns come
// from the registry, and fitDerived of its target.
type derivation struct {
	subject string
	version int
	// keySubject and keyVersion name the key schema the key was taken
	// from (format debezium without key); keySubject is "" otherwise.
	keySubject string
	keyVersion int
	// add holds the derived columns an existing target lacks, which
	// addDerived adds before the target is checked (evolve: add_columns).
	add []pgcopy.Column
	// over names the fields of a format debezium table past
	// pgcopy.MaxUnchangedColumns, which get no column.
	over []string
	// skipped names the fields that get no column (a name that cannot
	// name one, type null), and lacks those an existing target has no
	// column for (without evolve: add_columns): with over, the fields
	// the start warns are not stored, which logUnstored does not name
	// again (unstoredAtStart).
	skipped, lacks []string
}

// unstoredAtStart lists the fields the start warned are not stored.
func (d *derivation) unstoredAtStart() []string {
	return slices.Concat(d.skipped, d.over, d.lacks)
}

// deriveTables derives the columns of the registry-format tables that list
// none (deriveColumns) and fits them to the targets that exist
// (fitDerived), on conn, or on a connection of its own when conn is nil.
// reg is nil when no table reads a registry format.
func deriveTables(ctx context.Context, cfg *Config, reg *registry.Client, conn *pgconn.PgConn, log *slog.Logger) error {
	if reg == nil {
		return nil
	}
	if err := deriveColumns(cfg, reg, log); err != nil {
		return err
	}
	if !slices.ContainsFunc(cfg.Tables, func(tc TableConfig) bool { return tc.derived != nil }) {
		return nil
	}
	if conn == nil {
		c, err := connectPG(ctx, cfg.Postgres.URL, 30*time.Second, log)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		conn = c
	}
	return fitDerived(ctx, conn, cfg, reg, log)
}

// deriveColumns fills the columns of the tables that list none and
// derive them (TableConfig.derivesColumns) from the latest schema of the
// first topic's value subject: one column per top-level field, named and
// typed as codec.SchemaFields maps it, or, for format debezium (the
// AvroConverter's Envelope), one per field of the row, typed as
// codec.DebeziumAvroFields maps it. A field whose name cannot name a
// column, or of type null (nullField), is logged and skipped. A format
// debezium table without key takes it from the record key's schema
// (deriveKey).
func deriveColumns(cfg *Config, reg *registry.Client, log *slog.Logger) error {
	for i := range cfg.Tables {
		tc := &cfg.Tables[i]
		if !tc.derivesColumns() {
			continue
		}
		f, _ := codec.ParseFormat(tc.Format)
		key := fmt.Sprintf("tables[%d].columns", i)
		topic := ""
		for _, tp := range tc.Topics {
			if !isPattern(tp) {
				topic = tp
				break
			}
		}
		subject := topic + "-value"
		s, err := latestSchema(reg, subject)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return cfgErr(key, "empty, and the schema registry has no subject %s to derive table %s's columns from; %s: register the schema first, or list the columns",
				subject, tc.Name, strategyNote)
		case err != nil:
			return cfgErr(key, "empty, and the columns cannot be derived from the registry subject %s: %v; list the columns, or start when the registry answers", subject, err)
		}
		fields, err := subjectFields(f, s)
		if err != nil {
			return cfgErr(key, "empty, and the schema of subject %s (version %d) gives no columns: %v; list the columns", subject, s.Version, err)
		}
		noColumn := map[string]string{} // field: why it gets no column
		var skipped []string            // those fields, in order
		for _, fd := range fields {
			if why := unusableFieldName(fd.Name); why != "" {
				log.Warn("a field of the subject gets no column: "+why+"; its values are not stored; list the columns to map it with a column of another name",
					"table", tc.Name, "subject", subject, "field", fd.Name)
				noColumn[fd.Name] = why
				skipped = append(skipped, fd.Name)
				continue
			}
			if fd.Type == codec.TypeInvalid {
				why, fix := nullField(tc.Evolve == "add_columns")
				log.Warn("a field of the subject gets no column: "+why+"; its values are not stored; "+fix,
					"table", tc.Name, "subject", subject, "field", fd.Name)
				noColumn[fd.Name] = "its type is null"
				skipped = append(skipped, fd.Name)
				continue
			}
			tc.Columns = append(tc.Columns, ColumnConfig{Name: fd.Name, Type: fd.Type.String(), Path: fd.Name})
		}
		if len(tc.Columns) == 0 {
			return cfgErr(key, "empty, and the schema of subject %s (version %d) has no field that can name a column; list the columns", subject, s.Version)
		}
		d := &derivation{subject: subject, version: s.Version, skipped: skipped}
		if f == codec.FormatDebezium && len(tc.Key) == 0 {
			if err := deriveKey(tc, i, reg, topic, d); err != nil {
				return err
			}
		}
		for _, k := range tc.Key {
			if slices.ContainsFunc(tc.Columns, func(c ColumnConfig) bool { return c.Name == k }) {
				continue
			}
			if why, ok := noColumn[k]; ok {
				return cfgErr(fmt.Sprintf("tables[%d].key", i), "key column %q, a field of subject %s (version %d), gets no column: %s; list the columns, mapping the field with a column of another name (path: %s)",
					k, subject, s.Version, why, k)
			}
			if d.keySubject != "" {
				return cfgErr(fmt.Sprintf("tables[%d].key", i), "empty, and field %q of the key subject %s (version %d) is no column of the rows of subject %s (version %d); set key to the source table's primary key columns, or list the columns",
					k, d.keySubject, d.keyVersion, subject, s.Version)
			}
			return cfgErr(fmt.Sprintf("tables[%d].key", i), "key column %q is not a field of subject %s (version %d); name a top-level field, or list the columns", k, subject, s.Version)
		}
		if f == codec.FormatDebezium && len(tc.Columns) > pgcopy.MaxUnchangedColumns {
			// More than TOAST placeholders can keep stored values for:
			// fitDerived refuses to create such a table, and writes the
			// first columns into one that exists (grown by evolution,
			// which stops there too), naming the rest.
			n := 0
			for _, c := range tc.Columns {
				if tc.structural(c.Name) {
					n++
				}
			}
			tc.Columns = slices.DeleteFunc(tc.Columns, func(c ColumnConfig) bool {
				if tc.structural(c.Name) {
					return false
				}
				if n++; n > pgcopy.MaxUnchangedColumns {
					d.over = append(d.over, c.Name)
					return true
				}
				return false
			})
		}
		// Checked as listed columns are: the guard, and partition: and
		// unmapped: against the columns.
		if err := tc.validate(fmt.Sprintf("tables[%d]", i)); err != nil {
			return err
		}
		tc.derived = d
	}
	return nil
}

// structural reports whether column name is one a derived table keeps
// whatever its subject and target say: a key, the guard or the partition
// column (the target check names one that is missing).
func (tc *TableConfig) structural(name string) bool {
	return slices.Contains(tc.Key, name) || name == tc.Guard || tc.Partition != nil && name == tc.Partition.Column
}

// subjectFields lists the fields of a version of a derived table's
// subject that give its columns: the top-level fields (for Protobuf those
// of the file's first message, as Confluent's serializers register the
// record type first: docs/schema-registry.md), or, for format debezium,
// the fields of the Envelope's row.
func subjectFields(f codec.Format, s *registry.Schema) ([]codec.SchemaField, error) {
	if f == codec.FormatDebezium {
		return codec.DebeziumAvroFields(codecSchema(s))
	}
	return codec.SchemaFields(codecSchema(s), nil)
}

// strategyNote says which subjects a derived table is read from: there
// is no setting for another subject name strategy, since records are
// decoded by their schema id whatever the strategy.
const strategyNote = "tables are derived from the subjects of TopicNameStrategy, the serializers' default (<topic>-value, <topic>-key), " +
	"and there is no setting for RecordNameStrategy or TopicRecordNameStrategy (under which records still decode, by schema id)"

// deriveKey sets the key of format debezium table tc (tables[i]), which
// has none, to the fields of the latest schema of the record key's
// subject, TOPIC-key: Debezium's Key record of the source table's primary
// key, registered when the connector's key converter is the AvroConverter.
func deriveKey(tc *TableConfig, i int, reg *registry.Client, topic string, d *derivation) error {
	key := fmt.Sprintf("tables[%d].key", i)
	subject := topic + "-key"
	s, err := latestSchema(reg, subject)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return cfgErr(key, "empty, and the schema registry has no subject %s to take table %s's primary key from (the connector registers it when its key.converter is the AvroConverter; %s); set key to the source table's primary key columns (e.g. key: [id])",
			subject, tc.Name, strategyNote)
	case err != nil:
		return cfgErr(key, "empty, and the primary key cannot be read from the registry subject %s: %v; set key to the source table's primary key columns (e.g. key: [id])", subject, err)
	}
	names, err := codec.DebeziumAvroKey(codecSchema(s))
	if err != nil {
		return cfgErr(key, "empty, and the schema of subject %s (version %d) gives no primary key: %v; set key to the source table's primary key columns (e.g. key: [id])", subject, s.Version, err)
	}
	tc.Key = names
	d.keySubject, d.keyVersion = subject, s.Version
	return nil
}

// latestSchema fetches the latest schema of subject, within 30 s.
func latestSchema(reg *registry.Client, subject string) (*registry.Schema, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return reg.LatestSchema(ctx, subject)
}

// fitDerived fits the derived columns to targets that exist: CREATE TABLE
// IF NOT EXISTS leaves a table as it is, so a field the subject gained
// since the table was created has no column there. With evolve:
// add_columns the column is added before the target is checked
// (addDerived), as evolution adds it for a new writer schema; without,
// the table is used with the columns it has and the field's values are
// not stored, as for a table whose columns are listed. The key, guard and
// partition columns are kept: the target check names what is missing. A
// column keeps the target's type. A target column of a field that only
// earlier versions of the subject have (dropped from the source) is
// written, NULL in the rows of later versions, as while running
// (droppedFields). It logs the columns of each derived table.
func fitDerived(ctx context.Context, conn *pgconn.PgConn, cfg *Config, reg *registry.Client, log *slog.Logger) error {
	for i := range cfg.Tables {
		tc := &cfg.Tables[i]
		d := tc.derived
		if d == nil {
			continue
		}
		have, exists, err := pgcopy.TargetColumns(ctx, conn, &pgcopy.Table{Name: tc.Name})
		if err != nil {
			return err
		}
		d.add = nil
		if len(d.over) > 0 {
			if !exists {
				return cfgErr(fmt.Sprintf("tables[%d].columns", i), "empty, and the rows of subject %s (version %d) have %d fields, but format debezium keeps the stored value of a TOASTed column (__debezium_unavailable_value) for at most %d columns; list the columns to keep, or split the table",
					d.subject, d.version, len(tc.Columns)+len(d.over), pgcopy.MaxUnchangedColumns)
			}
			log.Warn(fmt.Sprintf("fields of the subject get no column: the table would have more than %d columns, and format debezium keeps the stored value of a TOASTed column for at most %d; their values are not stored; list the columns to choose them, or split the table",
				pgcopy.MaxUnchangedColumns, pgcopy.MaxUnchangedColumns), "table", tc.Name, "subject", d.subject, "version", d.version, "fields", d.over)
		}
		var lacks []string
		if exists {
			// A column is never retyped: a field whose type changed
			// since goes into the column as it is, as while running.
			var retyped []string
			for j, c := range tc.Columns {
				if typ := have[c.Name]; typ != "" && typ != c.Type {
					retyped = append(retyped, c.Name+" "+typ+" (the field's type gives "+c.Type+")")
					tc.Columns[j].Type = typ
				}
			}
			tc.Columns = slices.DeleteFunc(tc.Columns, func(c ColumnConfig) bool {
				if _, ok := have[c.Name]; ok || tc.structural(c.Name) {
					return false
				}
				lacks = append(lacks, c.Name)
				if tc.Evolve == "add_columns" {
					d.add = append(d.add, pgcopy.Column{Name: c.Name, SQLType: c.Type})
					return false
				}
				return true
			})
			if err := droppedFields(tc, reg, have, log); err != nil {
				return err
			}
			if len(retyped) > 0 {
				log.Warn("columns keep their type though the subject's fields have another (a column is never retyped); values a column cannot hold become dead letters naming it; change the column (ALTER TABLE … ALTER COLUMN … TYPE) to hold them, and restart",
					"table", tc.Name, "subject", d.subject, "version", d.version, "columns", retyped)
			}
		}
		desc := make([]string, len(tc.Columns))
		for j, c := range tc.Columns {
			desc[j] = c.Name + " " + c.Type
		}
		msg := "columns derived from the schema registry; the table is created with them"
		if exists {
			msg = "columns derived from the schema registry for an existing table"
		}
		attrs := []any{"table", tc.Name, "subject", d.subject, "version", d.version, "columns", desc}
		if d.keySubject != "" {
			attrs = append(attrs, "key", tc.Key, "key_subject", d.keySubject, "key_version", d.keyVersion)
		}
		log.Info(msg, attrs...)
		d.lacks = nil
		if len(lacks) > 0 && d.add == nil {
			d.lacks = lacks
			const fix = "set evolve: add_columns to add them, or add them yourself (ALTER TABLE … ADD COLUMN)"
			log.Warn("the table has no column for fields of the subject; their values are not stored; "+fix,
				"table", tc.Name, "subject", d.subject, "version", d.version, "fields", lacks)
		}
	}
	return nil
}

// droppedFields gives derived table tc, whose target has the columns
// have, a column for each field that an earlier version of its subject
// has, the latest does not, and the target has a column for: a column
// dropped from the source. While running, the table wrote such a column
// (NULL in the records of the new version, an update too); without it a
// restarted instance would not, and an update would keep the row's old
// value there. A target column that no version has (one added by hand)
// is left alone. The versions are read from the latest down, only while
// such columns are left; a format debezium table takes them up to
// pgcopy.MaxUnchangedColumns.
func droppedFields(tc *TableConfig, reg *registry.Client, have map[string]string, log *slog.Logger) error {
	d := tc.derived
	rest := map[string]bool{}
	for name, typ := range have {
		if typ != "" && name != tc.Unmapped && !pgcopy.ReservedColumn(name) && !slices.ContainsFunc(tc.Columns, func(c ColumnConfig) bool { return c.Name == name }) {
			rest[name] = true
		}
	}
	f, _ := codec.ParseFormat(tc.Format)
	var added []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for v := d.version - 1; v >= 1 && len(rest) > 0; v-- {
		s, err := reg.SubjectVersion(ctx, d.subject, v)
		if registry.IsPermanent(err) {
			continue // deleted for good, or references that no longer resolve
		}
		if err != nil {
			return fmt.Errorf("cannot read the earlier versions of subject %s, whose fields table %s has columns for: %w", d.subject, tc.Name, err)
		}
		fields, err := subjectFields(f, s)
		if err != nil {
			continue // an earlier version that gives no columns
		}
		for _, fd := range fields {
			if !rest[fd.Name] || f == codec.FormatDebezium && len(tc.Columns) >= pgcopy.MaxUnchangedColumns {
				continue
			}
			delete(rest, fd.Name)
			tc.Columns = append(tc.Columns, ColumnConfig{Name: fd.Name, Type: have[fd.Name], Path: fd.Name})
			added = append(added, fd.Name+" "+have[fd.Name])
		}
	}
	if len(added) > 0 {
		log.Info("columns of fields earlier versions of the subject have, and its latest lacks, are written: NULL in the rows of later versions",
			"table", tc.Name, "subject", d.subject, "version", d.version, "columns", added)
	}
	return nil
}

// addDerived adds the columns fitDerived found a derived table's target
// lacking (evolve: add_columns), as evolution adds them, before the target
// is checked against pt.
func addDerived(ctx context.Context, conn *pgconn.PgConn, tc *TableConfig, pt *pgcopy.Table, log *slog.Logger) error {
	if tc.derived == nil || len(tc.derived.add) == 0 {
		return nil
	}
	if _, err := pgcopy.AddColumns(ctx, conn, pt, tc.derived.add, evolveLockTimeout); err != nil {
		return fmt.Errorf("cannot evolve table %s: %w", tc.Name, err)
	}
	names := make([]string, len(tc.derived.add))
	for i, c := range tc.derived.add {
		names[i] = c.Name + " " + c.SQLType
	}
	log.Info("table evolved: columns added for fields of the subject's latest schema", "table", tc.Name, "subject", tc.derived.subject,
		"version", tc.derived.version, "columns", names)
	return nil
}
