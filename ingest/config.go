package ingest

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
	"github.com/sluice-dev/sluice/internal/kafkaauth"
	"github.com/sluice-dev/sluice/internal/redact"
)

// Config is the appliance's configuration. Its YAML keys are a contract
// (docs/design.md, "Configuration"); Load fills defaults, applies SLUICE_*
// environment overrides and validates.
type Config struct {
	Kafka          KafkaConfig          `yaml:"kafka"`
	SchemaRegistry SchemaRegistryConfig `yaml:"schema_registry"`
	Postgres       PostgresConfig       `yaml:"postgres"`
	Batch          BatchConfig          `yaml:"batch"`
	Tables         []TableConfig        `yaml:"tables"`
	Metrics        MetricsConfig        `yaml:"metrics"`
	Log            LogConfig            `yaml:"log"`
	// DeadLetters and Stuck: retention.go and readiness.go.
	DeadLetters DeadLettersConfig `yaml:"dead_letters"`
	Stuck       StuckConfig       `yaml:"stuck"`
}

// KafkaConfig is the `kafka:` section.
type KafkaConfig struct {
	Brokers     []string   `yaml:"brokers"`
	Group       string     `yaml:"group"`
	Isolation   string     `yaml:"isolation"`
	StartOffset string     `yaml:"start_offset"`
	TLS         TLSConfig  `yaml:"tls"`
	SASL        SASLConfig `yaml:"sasl"`
	// SessionTimeout is how long the group waits for a silent member
	// before reassigning its partitions (failover time).
	SessionTimeout Duration `yaml:"session_timeout"`
	// RebalanceTimeout bounds how long a revoke may take to commit
	// in-flight batches.
	RebalanceTimeout Duration `yaml:"rebalance_timeout"`
	// FetchMaxBytes caps one fetch response (bounds memory).
	FetchMaxBytes Size `yaml:"fetch_max_bytes"`
	// MissingTopics says what a configured topic that does not exist
	// does: "wait" (default: warn, count it, /readyz not ready, consume it
	// once it is created) or "fail" (Run fails at start, naming it).
	MissingTopics string `yaml:"missing_topics"`
}

// TLSConfig is `kafka.tls`.
type TLSConfig struct {
	Enabled    bool   `yaml:"enabled"`
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// SASLConfig is `kafka.sasl`.
type SASLConfig struct {
	Mechanism    string `yaml:"mechanism"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// PostgresConfig is the `postgres:` section.
type PostgresConfig struct {
	// URL is a libpq URL or keyword/value string; sslmode, sslrootcert,
	// sslcert and sslkey go here. After Parse it also holds the password
	// from PasswordFile or SLUICE_POSTGRES_PASSWORD (security.go): never
	// log it.
	URL      string `yaml:"url"`
	Schema   string `yaml:"schema"`
	MaxConns int    `yaml:"max_conns"`
	// PasswordFile holds the password (a mounted secret); it wins over
	// the URL's password, and may not be combined with
	// SLUICE_POSTGRES_PASSWORD.
	PasswordFile string `yaml:"password_file"`
}

// BatchConfig is the `batch:` section.
type BatchConfig struct {
	MaxRows          int      `yaml:"max_rows"`
	MaxBytes         Size     `yaml:"max_bytes"`
	MaxAge           Duration `yaml:"max_age"`
	MaxInflightBytes Size     `yaml:"max_inflight_bytes"`
	// HugePages marks the process's heap for transparent huge pages
	// (internal/hugepages). Off by default: it pays only when the Go
	// memory limit leaves the heap room (docs/operations.md, "Memory").
	HugePages bool `yaml:"huge_pages"`
}

// TableConfig is one item of `tables:`.
type TableConfig struct {
	Name   string   `yaml:"name"`
	Topics []string `yaml:"topics"`
	Format string   `yaml:"format"`
	// Converter names the Kafka Connect converter that wrote format
	// debezium's events: json (JsonConverter, the default) or avro
	// (Confluent's AvroConverter; the writer schemas come from the
	// Schema Registry).
	Converter  string         `yaml:"converter"`
	Create     *bool          `yaml:"create"`
	Key        []string       `yaml:"key"`
	OnConflict string         `yaml:"on_conflict"`
	Columns    []ColumnConfig `yaml:"columns"`
	// MaxRecordBytes: a record whose key and value, as received, take
	// more than this is dead-lettered as oversized. Default 1MiB.
	MaxRecordBytes Size `yaml:"max_record_bytes"`
	// When takes only the records whose header or field equals a value;
	// several tables may then read one topic (fanout.go).
	When *WhenConfig `yaml:"when"`
	// Deletes makes a tombstone (a record with a null value) delete the
	// row whose key the record key names (keyed tables only). Format
	// debezium always applies its deletes.
	Deletes bool `yaml:"deletes"`
	// Truncate applies Debezium truncate events (op t) by emptying the
	// target, as a barrier in the stream; without it they are skipped and
	// counted.
	Truncate bool `yaml:"truncate"`
	// Guard names a column holding a monotonic version of the row (the
	// Kafka offset, Debezium's source LSN, a timestamp): an upsert or
	// delete only replaces a stored row whose guard is lower. Default: the
	// first kafka.offset column.
	Guard string `yaml:"guard"`
	// Partition partitions the target by time (docs/partitions.md).
	Partition *PartitionConfig `yaml:"partition"`
	// Evolve "add_columns" adds a nullable column for each top-level field
	// a newer writer schema adds (registry formats; format debezium with
	// converter avro: each field of the Envelope's row).
	Evolve string `yaml:"evolve"`
	// Unmapped names a jsonb column that keeps every top-level member of
	// a JSON record (format json or json_schema) no column maps.
	Unmapped string `yaml:"unmapped"`

	// derived is set when the columns come from the registry (deriveTables).
	derived *derivation
}

// ColumnConfig is one item of a table's `columns:`.
type ColumnConfig struct {
	Name     string `yaml:"name"`
	Type     string `yaml:"type"`
	Path     string `yaml:"path"`
	Source   string `yaml:"source"`
	Required bool   `yaml:"required"`
}

// MetricsConfig is the `metrics:` section.
type MetricsConfig struct {
	Listen string `yaml:"listen"`
	// Pprof serves /debug/pprof/ on the metrics listener; it requires a
	// loopback Listen (see checkPprof).
	Pprof bool `yaml:"pprof"`
}

// LogConfig is the `log:` section.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Duration is a time.Duration written as "250ms", "5s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil || v < 0 {
		return fmt.Errorf("cannot parse %q as a duration; write it like 250ms, 5s or 1m", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as "32MiB", "512KiB", "1GB" or a plain number.
type Size int64

// UnmarshalYAML parses a size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// MarshalYAML writes the size in bytes.
func (s Size) MarshalYAML() (any, error) { return int64(s), nil }

var sizeRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
}

// ParseSize parses "32MiB", "1.5GB", "4096".
func ParseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("cannot parse %q as a size; write it like 32MiB, 512KiB, 1GB or 4096", s)
	}
	unit, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("cannot parse %q as a size: unknown unit %q; use B, KiB, MiB, GiB, KB, MB or GB", s, m[2])
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q as a size: %w", s, err)
	}
	return int64(f * unit), nil
}

// DefaultMaxConns is postgres.max_conns when the configuration does not
// set it: the number of CPUs, between 2 and 4. Each writer connection has
// a worker decoding and framing its batches; more of them than cores
// only contend for the CPU (and, with PostgreSQL on the same machine, take
// it from the server), while two let one batch commit as the next is
// encoded. Four is where a separate server stops gaining.
func DefaultMaxConns() int { return min(max(runtime.NumCPU(), 2), 4) }

// Defaults returns a configuration with every default filled and no tables.
func Defaults() Config {
	return Config{
		Kafka: KafkaConfig{
			Brokers:          []string{"127.0.0.1:9092"},
			Group:            "sluice",
			Isolation:        "read_committed",
			StartOffset:      "earliest",
			SessionTimeout:   Duration(10 * time.Second),
			RebalanceTimeout: Duration(30 * time.Second),
			FetchMaxBytes:    Size(4 << 20),
			MissingTopics:    "wait",
		},
		Postgres: PostgresConfig{
			URL:      "postgres://postgres@127.0.0.1:5432/postgres",
			Schema:   "sluice",
			MaxConns: DefaultMaxConns(),
		},
		Batch: BatchConfig{
			MaxRows:          50000,
			MaxBytes:         Size(32 << 20),
			MaxAge:           Duration(250 * time.Millisecond),
			MaxInflightBytes: Size(256 << 20),
		},
		Metrics: MetricsConfig{Listen: "127.0.0.1:9187"},
		Log:     LogConfig{Level: "info", Format: "text"},
		Stuck:   defaultStuck(),
	}
}

// ConfigError is a configuration mistake: the key, what is wrong and the fix.
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return "invalid configuration: " + e.Msg
	}
	return fmt.Sprintf("invalid configuration: %s: %s", e.Key, e.Msg)
}

func cfgErr(key, format string, args ...any) error {
	return &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// LoadFile reads path (empty: no file, defaults only), applies environment
// overrides from env (nil: os.Getenv) and validates.
func LoadFile(path string, env func(string) string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read config file: %w; pass an existing file with --config or SLUICE_CONFIG", err)
		}
	}
	return Parse(data, env)
}

// Parse parses YAML (which may be empty), applies environment overrides from
// env (nil: os.Getenv) and validates.
func Parse(data []byte, env func(string) string) (*Config, error) {
	c := Defaults()
	if len(strings.TrimSpace(string(data))) > 0 {
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, fmt.Errorf("cannot parse config YAML: %w", err)
		}
		if len(root.Content) > 0 {
			if err := checkKeys(root.Content[0], reflect.TypeOf(c), ""); err != nil {
				return nil, err
			}
			if err := root.Content[0].Decode(&c); err != nil {
				return nil, fmt.Errorf("invalid configuration: %s", strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  "))
			}
		}
	}
	if env == nil {
		env = os.Getenv
	}
	c.applyEnv(env)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := c.resolveSecrets(env); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkKeys rejects keys that no struct field knows, naming the full key, its
// line and the valid keys. yaml.v3's KnownFields reports the Go type instead.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return cfgErr(prefix, "line %d: expected a mapping of keys", n.Line)
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = t.Field(i).Type
			names = append(names, tag)
		}
		sort.Strings(names)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				return cfgErr(key, "unknown key (line %d); valid keys here: %s", n.Content[i].Line, strings.Join(names, ", "))
			}
			_, custom := reflect.New(ft).Interface().(yaml.Unmarshaler)
			if custom || isLeaf(ft) {
				// Decode leaves here so a type mistake names its key.
				if err := n.Content[i+1].Decode(reflect.New(ft).Interface()); err != nil {
					msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
					return cfgErr(key, "%s (line %d)", msg, n.Content[i+1].Line)
				}
				continue
			}
			if err := checkKeys(n.Content[i+1], ft, key); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			// yaml.v3's own message ("cannot unmarshal !!str `id` into
			// []string") names neither the key nor the fix.
			return cfgErr(prefix, "line %d: expected a list, e.g. [%s]", n.Line, listExample(n))
		}
		_, custom := reflect.New(t.Elem()).Interface().(yaml.Unmarshaler)
		for i, item := range n.Content {
			key := fmt.Sprintf("%s[%d]", prefix, i)
			if custom || isLeaf(t.Elem()) {
				if err := item.Decode(reflect.New(t.Elem()).Interface()); err != nil {
					msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
					return cfgErr(key, "%s (line %d)", msg, item.Line)
				}
				continue
			}
			if err := checkKeys(item, t.Elem(), key); err != nil {
				return err
			}
		}
	}
	return nil
}

// listExample is the list a user most likely meant where n, which is not
// a list, stands: its value as the one item, or a placeholder.
func listExample(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Value != "" {
		return n.Value
	}
	return "a, b"
}

func isLeaf(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64, reflect.String, reflect.Float64:
		return true
	case reflect.Pointer:
		return isLeaf(t.Elem())
	}
	return false
}

func (c *Config) applyEnv(env func(string) string) {
	if v := env("SLUICE_KAFKA_BROKERS"); v != "" {
		c.Kafka.Brokers = splitList(v)
	}
	if v := env("SLUICE_KAFKA_GROUP"); v != "" {
		c.Kafka.Group = v
	}
	if v := env("SLUICE_POSTGRES_URL"); v != "" {
		c.Postgres.URL = v
	}
	if v := env("SLUICE_METRICS_LISTEN"); v != "" {
		c.Metrics.Listen = v
	}
	if v := env("SLUICE_KAFKA_SASL_USERNAME"); v != "" {
		c.Kafka.SASL.Username = v
	}
	if v := env("SLUICE_KAFKA_SASL_PASSWORD"); v != "" {
		c.Kafka.SASL.Password = v
	}
	if v := env("SLUICE_LOG_LEVEL"); v != "" {
		c.Log.Level = v
	}
	c.SchemaRegistry.applyEnv(env)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks every key and fills per-table defaults. Errors name the key
// and the fix.
func (c *Config) Validate() error {
	k := &c.Kafka
	if len(k.Brokers) == 0 {
		return cfgErr("kafka.brokers", "no brokers; list at least one host:port, e.g. [\"127.0.0.1:9092\"], or set SLUICE_KAFKA_BROKERS")
	}
	for i, b := range k.Brokers {
		if !strings.Contains(b, ":") {
			return cfgErr(fmt.Sprintf("kafka.brokers[%d]", i), "%q has no port; write host:port, e.g. %s:9092", b, b)
		}
	}
	if k.Group == "" {
		return cfgErr("kafka.group", "empty; set a consumer group name, e.g. sluice")
	}
	if k.Isolation != "read_committed" && k.Isolation != "read_uncommitted" {
		return cfgErr("kafka.isolation", "%q is not valid; use read_committed or read_uncommitted", k.Isolation)
	}
	if k.StartOffset != "earliest" && k.StartOffset != "latest" {
		return cfgErr("kafka.start_offset", "%q is not valid; use earliest or latest", k.StartOffset)
	}
	if k.MissingTopics != "wait" && k.MissingTopics != "fail" {
		return cfgErr("kafka.missing_topics", "%q is not valid; use wait or fail", k.MissingTopics)
	}
	switch mech := strings.ToUpper(k.SASL.Mechanism); {
	case mech == "":
		if k.SASL.Username != "" {
			return cfgErr("kafka.sasl.mechanism", "empty but a username is set; use %s", kafkaauth.MechanismList())
		}
	case slices.Contains(kafkaauth.Mechanisms, mech):
		k.SASL.Mechanism = mech
		if k.SASL.Username == "" {
			return cfgErr("kafka.sasl.username", "empty while kafka.sasl.mechanism is %s; set it (or SLUICE_KAFKA_SASL_USERNAME)", k.SASL.Mechanism)
		}
	default:
		return cfgErr("kafka.sasl.mechanism", "%q is not supported; use %s", k.SASL.Mechanism, kafkaauth.MechanismList())
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	if k.SessionTimeout.D() < time.Second {
		return cfgErr("kafka.session_timeout", "%s is too short; use at least 1s (default 10s)", k.SessionTimeout.D())
	}
	if k.RebalanceTimeout.D() < time.Second {
		return cfgErr("kafka.rebalance_timeout", "%s is too short; use at least 1s (default 30s)", k.RebalanceTimeout.D())
	}
	if k.FetchMaxBytes < 1<<10 {
		return cfgErr("kafka.fetch_max_bytes", "%d is too small; use at least 1KiB (default 4MiB)", k.FetchMaxBytes)
	}
	if k.FetchMaxBytes > math.MaxInt32 {
		// The Kafka protocol sizes a fetch in an int32: a larger value
		// would wrap (4GiB to 0, 3GiB to a negative size).
		return cfgErr("kafka.fetch_max_bytes", "%d is too large; the Kafka protocol allows at most 2147483647 (2GiB - 1; default 4MiB)", k.FetchMaxBytes)
	}

	p := &c.Postgres
	if p.URL == "" {
		return cfgErr("postgres.url", "empty; set a URL like postgres://user@host:5432/db or SLUICE_POSTGRES_URL")
	}
	if _, err := pgconn.ParseConfig(p.URL); err != nil {
		return cfgErr("postgres.url", "cannot parse: %s; write it like postgres://user@host:5432/db?sslmode=verify-full", redact.PGParseDetail(err))
	}
	if !identRe.MatchString(p.Schema) {
		return cfgErr("postgres.schema", "%q is not a plain identifier; use letters, digits and _ (default sluice)", p.Schema)
	}
	if p.MaxConns < 1 || p.MaxConns > 256 {
		return cfgErr("postgres.max_conns", "%d is out of range; use 1..256 (default %d on this machine)", p.MaxConns, DefaultMaxConns())
	}

	b := &c.Batch
	if b.MaxRows < 1 {
		return cfgErr("batch.max_rows", "%d must be at least 1 (default 50000)", b.MaxRows)
	}
	if b.MaxBytes < 1<<10 {
		return cfgErr("batch.max_bytes", "%d bytes is too small; use at least 1KiB (default 32MiB)", b.MaxBytes)
	}
	if b.MaxAge.D() <= 0 {
		return cfgErr("batch.max_age", "must be positive, e.g. 250ms")
	}
	if b.MaxInflightBytes < b.MaxBytes {
		return cfgErr("batch.max_inflight_bytes", "%d is below batch.max_bytes (%d); raise it to at least max_bytes (default 256MiB)", b.MaxInflightBytes, b.MaxBytes)
	}

	if len(c.Tables) == 0 {
		return cfgErr("tables", "no tables; add at least one table with name, topics and columns (see docs/configuration.md)")
	}
	seenTopic := map[string]string{}
	seenTable := map[string]string{} // qualified name: the name as first written
	for i := range c.Tables {
		t := &c.Tables[i]
		key := fmt.Sprintf("tables[%d]", i)
		if err := t.validate(key); err != nil {
			return err
		}
		q := qualifiedName(t.Name)
		if first, ok := seenTable[q]; ok {
			if first != t.Name {
				return cfgErr(key+".name", "table %s is configured twice (as %s and %s); merge the two entries", q, first, t.Name)
			}
			return cfgErr(key+".name", "table %s is configured twice; merge the two entries", t.Name)
		}
		seenTable[q] = t.Name
		for _, tp := range t.Topics {
			if other, ok := seenTopic[tp]; ok && t.Truncate {
				return cfgErr(key+".truncate", "topic %q also feeds table %s, so its truncate events cannot be applied to one table; remove truncate", tp, other)
			}
			seenTopic[tp] = t.Name
		}
	}
	needRegistry := ""
	for i := range c.Tables {
		if f, _ := codec.ParseFormat(c.Tables[i].Format); f.UsesRegistry() {
			needRegistry = fmt.Sprintf("tables[%d] (format %s)", i, c.Tables[i].Format)
			break
		}
		if c.Tables[i].Converter == "avro" {
			needRegistry = fmt.Sprintf("tables[%d] (converter avro)", i)
			break
		}
	}
	if err := c.SchemaRegistry.validate(needRegistry); err != nil {
		return err
	}

	if c.Metrics.Listen != "" && !strings.Contains(c.Metrics.Listen, ":") {
		return cfgErr("metrics.listen", "%q has no port; write host:port, e.g. 127.0.0.1:9187, or empty to disable", c.Metrics.Listen)
	}
	if err := c.Stuck.validate(); err != nil {
		return err
	}
	if err := c.Metrics.checkPprof(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return cfgErr("log.level", "%q is not valid; use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return cfgErr("log.format", "%q is not valid; use text or json", c.Log.Format)
	}
	return nil
}

func (t *TableConfig) validate(key string) error {
	if t.Name == "" {
		return cfgErr(key+".name", "empty; name the target table, e.g. public.events")
	}
	// A template ({topic}, {topic.N}) is checked as the name it makes:
	// the placeholders are replaced with plain identifiers first.
	parts := strings.Split(tableTemplate.ReplaceAllString(t.Name, "t"), ".")
	if len(parts) > 2 {
		return cfgErr(key+".name", "%q has too many dots; write table or schema.table", t.Name)
	}
	for _, p := range parts {
		if !identRe.MatchString(p) {
			return cfgErr(key+".name", "%q is not a plain identifier; use letters, digits and _ (schema.table)", t.Name)
		}
	}
	if len(t.Topics) == 0 {
		return cfgErr(key+".topics", "no topics; list the Kafka topics that feed %s", t.Name)
	}
	for j, tp := range t.Topics {
		if isPattern(tp) {
			if _, err := compilePattern(tp); err != nil {
				return cfgErr(fmt.Sprintf("%s.topics[%d]", key, j), "%q is not a valid /regex/ pattern: %v", tp, err)
			}
		}
	}
	f, err := codec.ParseFormat(t.Format)
	if err != nil {
		return cfgErr(key+".format", "%v", err)
	}
	if t.Format == "" {
		t.Format = "json"
	}
	conv, err := codec.ParseConverter(t.Converter)
	if err != nil {
		return cfgErr(key+".converter", "%v", err)
	}
	if conv != codec.ConverterJSON && f != codec.FormatDebezium {
		return cfgErr(key+".converter", "names the converter of format debezium's change events, and format %s has none; remove converter (format avro reads plain Avro records)", f)
	}
	if t.Converter == "" && f == codec.FormatDebezium {
		t.Converter = "json"
	}
	if t.OnConflict == "" {
		t.OnConflict = "ignore"
		if f == codec.FormatDebezium {
			t.OnConflict = "update" // a replica takes every change
		}
	}
	if f == codec.FormatDebezium && t.OnConflict != "update" {
		return cfgErr(key+".on_conflict", "format debezium mirrors a source table, so later changes must overwrite earlier ones; set on_conflict: update (or leave it out)")
	}
	// A format debezium table whose columns come from the registry at
	// start takes its key from there too when it has none (deriveKey); it
	// is checked again with them.
	derives := t.derivesColumns()
	keyLater := f == codec.FormatDebezium && derives
	if (t.Deletes || f == codec.FormatDebezium && !keyLater) && len(t.Key) == 0 {
		what := "deletes: true"
		if f == codec.FormatDebezium {
			what = "format debezium"
		}
		return cfgErr(key+".key", "empty, but %s deletes rows by key; set key to the source table's primary key columns (e.g. key: [id])", what)
	}
	if f == codec.FormatDebezium && len(t.Columns) > pgcopy.MaxUnchangedColumns {
		return cfgErr(key+".columns", "%d columns, but format debezium keeps the stored value of a TOASTed column (__debezium_unavailable_value) for at most %d; split the table or map fewer columns", len(t.Columns), pgcopy.MaxUnchangedColumns)
	}
	if t.When != nil {
		if err := t.When.validate(key + ".when"); err != nil {
			return err
		}
		if t.Truncate {
			return cfgErr(key+".truncate", "cannot be combined with when: (a truncate event cannot be routed by record); remove one")
		}
	}
	if t.Truncate && f != codec.FormatDebezium {
		return cfgErr(key+".truncate", "only format debezium carries truncate events; remove truncate or use format debezium")
	}
	if _, err := pgcopy.ParsePolicy(t.OnConflict); err != nil {
		return cfgErr(key+".on_conflict", "%q is not valid; use ignore (first write wins) or update (the newest write wins, by the guard column)", t.OnConflict)
	}
	if t.OnConflict == "update" && len(t.Key) == 0 && !keyLater {
		// Without a key no row is ever replaced: each record is a row of
		// its own, which is not what update asks for.
		return cfgErr(key+".on_conflict", "update replaces the stored row of a key, but table %s has no key; set key to the columns that identify a row (e.g. key: [id]), or remove on_conflict: without a key every record becomes a row of its own", t.Name)
	}
	if t.MaxRecordBytes == 0 {
		t.MaxRecordBytes = 1 << 20
	}
	if f == codec.FormatRaw {
		if err := t.validateGrowth(key, f, rawColumnNames()); err != nil {
			return err
		}
		if len(t.Columns) > 0 {
			return cfgErr(key+".columns", "format raw has fixed columns (topic, partition, offset, timestamp, key, value, headers); remove columns or use format json")
		}
		if len(t.Key) > 0 {
			return cfgErr(key+".key", "format raw is keyed by (topic, partition, offset); remove key")
		}
		return nil
	}
	if len(t.Columns) == 0 {
		if derives {
			// The columns come from the registry at start (deriveColumns,
			// which validates the table again with them); what does not
			// depend on them is checked now.
			if !slices.ContainsFunc(t.Topics, func(s string) bool { return !isPattern(s) }) || hasTemplate(t.Name) {
				return cfgErr(key+".columns", "empty, and table %s has no plain topic to read the subject's schema from (patterns and {topic} names need columns); list the columns", t.Name)
			}
			return t.validateGrowth(key, f, nil)
		}
		return cfgErr(key+".columns", "table %s has no columns; list at least one {name, type, path|source} (format avro, protobuf or json_schema, and debezium with converter: avro, with create: true derive them from the Schema Registry)", t.Name)
	}
	names := map[string]bool{}
	for j, col := range t.Columns {
		ck := fmt.Sprintf("%s.columns[%d]", key, j)
		if !identRe.MatchString(col.Name) {
			return cfgErr(ck+".name", "%q is not a plain identifier; use letters, digits and _", col.Name)
		}
		if names[col.Name] {
			return cfgErr(ck+".name", "column %s appears twice; rename or remove one", col.Name)
		}
		names[col.Name] = true
		if _, err := codec.ParseType(col.Type); err != nil {
			return cfgErr(ck+".type", "%v", err)
		}
		if col.Source == codec.SourceUnmapped.String() {
			// The decoder's source of the column unmapped: adds, which
			// validateGrowth checks; not one to configure.
			return cfgErr(ck+".source", "unmapped is not a column source; to keep the members no column maps, set unmapped: %s on the table (formats json and json_schema) and remove this column", col.Name)
		}
		src, err := codec.ParseSource(col.Source)
		if err != nil {
			return cfgErr(ck+".source", "%v", err)
		}
		if src == codec.SourcePath && col.Path == "" {
			return cfgErr(ck, "column %s has neither path nor source; set path (e.g. attrs.country) or source (e.g. kafka.offset)", col.Name)
		}
		if src == codec.SourceKey && col.Path != "" {
			if f != codec.FormatJSON && !f.UsesRegistry() {
				return cfgErr(ck, "column %s reads a field of the record key (source kafka.key with path %s), which format %s does not decode; drop the path to take the key as received, or use format json, avro, protobuf or json_schema", col.Name, col.Path, f)
			}
		} else if src != codec.SourcePath && col.Path != "" {
			return cfgErr(ck, "column %s has both path and source; keep one (only source kafka.key takes a path: a field of the key)", col.Name)
		}
	}
	if err := t.checkGuard(key); err != nil {
		return err
	}
	for _, kc := range t.Key {
		if !names[kc] {
			return cfgErr(key+".key", "key column %q is not among the columns of %s; add it to columns or fix the name", kc, t.Name)
		}
	}
	return t.validateGrowth(key, f, names)
}

// qualifiedName returns a valid table name with its schema: `table` is
// `public.table`, as splitName and pgcopy read a name, so that two
// spellings of one target compare equal. A template's {topic.N} holds a
// dot that separates nothing: its expansions have none.
func qualifiedName(name string) string {
	if strings.Contains(tableTemplate.ReplaceAllString(name, "t"), ".") {
		return name
	}
	return "public." + name
}

// guardTypes are the column types whose order is the order of versions,
// exactly: the merge keeps a stored row whose guard is not lower, and a
// guarded delete compares with <. Text puts "10" below "9", json and
// jsonb have no < (every batch with a delete fails), floats are not exact.
var guardTypes = []codec.Type{codec.TypeInt2, codec.TypeInt4, codec.TypeInt8, codec.TypeNumeric,
	codec.TypeTimestamp, codec.TypeTimestamptz, codec.TypeDate}

// checkGuard checks that guard names a column of a guard type. Without
// guard the first kafka.offset column guards, which the codec makes int8
// or numeric.
func (t *TableConfig) checkGuard(key string) error {
	if t.Guard == "" {
		return nil
	}
	i := slices.IndexFunc(t.Columns, func(c ColumnConfig) bool { return c.Name == t.Guard })
	if i < 0 {
		return cfgErr(key+".guard", "column %s is not among the columns; name a configured column holding a monotonic version (e.g. source: debezium.source.lsn or kafka.offset)", t.Guard)
	}
	if typ, _ := codec.ParseType(t.Columns[i].Type); !slices.Contains(guardTypes, typ) {
		names := make([]string, len(guardTypes))
		for j, g := range guardTypes {
			names[j] = g.String()
		}
		return cfgErr(key+".guard", "column %s is %s, which does not order as a version (a newer row must compare higher); guard by a column of type %s, e.g. source: kafka.offset or debezium.source.lsn",
			t.Guard, t.Columns[i].Type, strings.Join(names, ", "))
	}
	return nil
}

// derivesColumns reports whether the table's columns come from the
// Schema Registry at start (deriveColumns): create: true without columns,
// in a registry format or in format debezium with converter avro.
func (t *TableConfig) derivesColumns() bool {
	f, _ := codec.ParseFormat(t.Format)
	conv, _ := codec.ParseConverter(t.Converter)
	return len(t.Columns) == 0 && t.CreateTarget() && (f.UsesRegistry() || f == codec.FormatDebezium && conv == codec.ConverterAvro)
}

// CreateTarget reports whether Migrate should create the target.
func (t *TableConfig) CreateTarget() bool { return t.Create == nil || *t.Create }

// codecColumns converts the table's columns for the codec.
func (t *TableConfig) codecColumns() ([]codec.Column, error) {
	f, _ := codec.ParseFormat(t.Format)
	if f == codec.FormatRaw {
		return codec.RawColumns(), nil
	}
	cols := make([]codec.Column, len(t.Columns))
	for i, c := range t.Columns {
		col, err := codec.ParseColumn(c.Name, c.Type, c.Source, c.Path, c.Required)
		if err != nil {
			return nil, err
		}
		col.Key = slices.Contains(t.Key, c.Name)
		cols[i] = col
	}
	if t.Unmapped != "" {
		cols = append(cols, codec.Column{Name: t.Unmapped, Type: codec.TypeJSONB, Source: codec.SourceUnmapped})
	}
	return cols, nil
}

// pgTable converts the table config for pgcopy.
func (t *TableConfig) pgTable() (*pgcopy.Table, error) {
	cols, err := t.codecColumns()
	if err != nil {
		return nil, err
	}
	pol, err := pgcopy.ParsePolicy(t.OnConflict)
	if err != nil {
		return nil, err
	}
	f, _ := codec.ParseFormat(t.Format)
	pt := &pgcopy.Table{Name: t.Name, Key: t.Key, OnConflict: pol, Create: t.CreateTarget(), Partition: t.Partition.pg(),
		Changes: t.Deletes || f == codec.FormatDebezium}
	for i, c := range cols {
		pt.Columns = append(pt.Columns, pgcopy.Column{Name: c.Name, SQLType: c.Type.String()})
		if c.Source == codec.SourceOffset && (i == 0 || pt.OffsetColumn == "") {
			pt.OffsetColumn = c.Name
		}
	}
	if t.Guard != "" {
		pt.OffsetColumn = t.Guard
	}
	return pt, nil
}

// redactErr removes a URL's password from an error message.
func redactErr(err error, url string) string {
	msg := err.Error()
	if cfg, perr := pgconn.ParseConfig(url); perr == nil && cfg.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
	}
	return msg
}

var errNoConfig = errors.New("no configuration: pass --config FILE or set SLUICE_CONFIG")

// PartitionConfig is a table's `partition:`: the target is partitioned by
// time (docs/partitions.md).
type PartitionConfig struct {
	Column          string `yaml:"column"`           // a timestamptz, timestamp or date column
	Interval        string `yaml:"interval"`         // hour | day | week | month
	Premake         *int   `yaml:"premake"`          // partitions kept ahead of now and of the newest row; default 3
	Retention       Period `yaml:"retention"`        // e.g. 30d; empty keeps everything
	RetentionAction string `yaml:"retention_action"` // drop (default) | detach
}

// Period is a duration that may also be written in days or weeks: "30d",
// "2w", "12h", "90m".
type Period time.Duration

// UnmarshalYAML parses a period.
func (p *Period) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParsePeriod(n.Value)
	if err != nil {
		return err
	}
	*p = Period(v)
	return nil
}

// MarshalYAML writes the period as a Go duration.
func (p Period) MarshalYAML() (any, error) { return time.Duration(p).String(), nil }

// ParsePeriod parses "30d", "2w" or a Go duration such as "12h".
func ParsePeriod(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		if v, err := strconv.Atoi(s[:n-1]); err == nil && v >= 0 {
			unit := 24 * time.Hour
			if s[n-1] == 'w' {
				unit *= 7
			}
			return time.Duration(v) * unit, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("cannot parse %q as a period; write it like 30d, 2w or 12h", s)
	}
	return v, nil
}

func rawColumnNames() map[string]bool {
	names := map[string]bool{}
	for _, c := range codec.RawColumns() {
		names[c.Name] = true
	}
	return names
}

// validateGrowth checks partition, evolve and unmapped; names holds the
// table's column names, nil while they are not known (a table whose
// columns are derived from the registry at start): the checks that need
// them are then left to that second validation.
func (t *TableConfig) validateGrowth(key string, f codec.Format, names map[string]bool) error {
	switch t.Evolve {
	case "", "none":
	case "add_columns":
		conv, _ := codec.ParseConverter(t.Converter)
		switch {
		case f == codec.FormatDebezium && conv != codec.ConverterAvro:
			return cfgErr(key+".evolve", "add_columns follows writer schemas, and format debezium with converter %s has none; converter: avro (Confluent's AvroConverter with a Schema Registry) supports it, or add the columns yourself (ALTER TABLE … ADD COLUMN) and list them", conv)
		case f != codec.FormatAvro && f != codec.FormatProtobuf && f != codec.FormatJSONSchema && f != codec.FormatDebezium:
			return cfgErr(key+".evolve", "add_columns follows writer schemas, and format %s has none; use format avro, protobuf or json_schema (or debezium with converter: avro), or unmapped: COLUMN for json", f)
		}
	default:
		return cfgErr(key+".evolve", "%q is not valid; use add_columns (a new top-level field becomes a new nullable column) or none", t.Evolve)
	}
	if t.Unmapped != "" {
		if f != codec.FormatJSON && f != codec.FormatJSONSchema {
			return cfgErr(key+".unmapped", "keeps the top-level members of JSON records no column maps, and format %s is neither json nor json_schema; remove it", f)
		}
		if !identRe.MatchString(t.Unmapped) {
			return cfgErr(key+".unmapped", "%q is not a plain identifier; name a jsonb column, e.g. extra", t.Unmapped)
		}
		if names[t.Unmapped] {
			return cfgErr(key+".unmapped", "column %s is also listed in columns; Sluice adds the unmapped column itself (jsonb): remove it from columns or pick another name", t.Unmapped)
		}
	}
	p := t.Partition
	if p == nil {
		return nil
	}
	pk := key + ".partition"
	if p.Column == "" {
		return cfgErr(pk+".column", "empty; name the time column to partition by, e.g. ts")
	}
	if names != nil && !names[p.Column] {
		return cfgErr(pk+".column", "%q is not among the columns of %s; add it to columns or fix the name", p.Column, t.Name)
	}
	if p.Interval == "" {
		p.Interval = "day"
	}
	iv, err := pgcopy.ParseInterval(p.Interval)
	if err != nil {
		return cfgErr(pk+".interval", "%q is not valid; use hour, day, week or month", p.Interval)
	}
	if p.Premake == nil {
		three := 3
		p.Premake = &three
	}
	if *p.Premake < 0 || *p.Premake > 1000 {
		return cfgErr(pk+".premake", "%d is out of range; use 0..1000 (default 3)", *p.Premake)
	}
	if r := time.Duration(p.Retention); r != 0 && r < iv.Max() {
		return cfgErr(pk+".retention", "%v is shorter than one %s; keep at least one partition (e.g. %s), or leave it empty to keep everything", r, iv, map[pgcopy.Interval]string{pgcopy.IntervalHour: "1h", pgcopy.IntervalDay: "1d", pgcopy.IntervalWeek: "1w", pgcopy.IntervalMonth: "31d"}[iv])
	}
	switch p.RetentionAction {
	case "":
		p.RetentionAction = "drop"
	case "drop", "detach":
	default:
		return cfgErr(pk+".retention_action", "%q is not valid; use drop (expired partitions are dropped) or detach (kept as plain tables)", p.RetentionAction)
	}
	if len(t.Key) > 0 && !slices.Contains(t.Key, p.Column) {
		return cfgErr(key+".key", "PostgreSQL requires the partition column in every unique key, and the key (%s) lacks %s; add it: key: [%s, %s]",
			strings.Join(t.Key, ", "), p.Column, strings.Join(t.Key, ", "), p.Column)
	}
	// The longest partition names: years past 9999 have more digits
	// (pgcopy.PartitionSuffixLen). A column whose type is not listed
	// (derived from the registry) is checked again once it is known.
	colType := "timestamptz"
	for _, c := range t.Columns {
		if c.Name == p.Column && c.Type != "" {
			colType = c.Type
		}
	}
	n := t.Name[strings.IndexByte(t.Name, '.')+1:]
	if suffix := pgcopy.PartitionSuffixLen(iv, colType); len(n)+suffix > 63 {
		return cfgErr(key+".name", "%q is too long for a table partitioned by the %s on a %s column: its partitions' names (%s, years up to PostgreSQL's last) can be longer than PostgreSQL's 63 bytes, which would truncate them into one another; use a table name of at most %d bytes",
			t.Name, iv, colType, pgcopy.PartitionNamePattern(n, iv, colType), 63-suffix)
	}
	return nil
}

// pg converts the partition config for pgcopy (nil when not set).
func (p *PartitionConfig) pg() *pgcopy.Partitioning {
	if p == nil {
		return nil
	}
	iv, _ := pgcopy.ParseInterval(p.Interval)
	premake := 3
	if p.Premake != nil {
		premake = *p.Premake
	}
	return &pgcopy.Partitioning{Column: p.Column, Interval: iv, Premake: premake,
		Retention: time.Duration(p.Retention), Detach: p.RetentionAction == "detach"}
}
