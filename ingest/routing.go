package ingest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
)

// Routing: which table a topic's records go to.
//
//   - tables[].topics lists topic names and patterns written /regex/ (Go
//     RE2 syntax, matched against the whole topic name). A named topic
//     goes to every table that names it; a topic no table names goes to
//     every table whose pattern matches it. With several tables, or a
//     when: condition, the tables are chosen per record (fanout.go). Patterns are matched against the topics the cluster has
//     now and later: a new matching topic is consumed without a restart
//     (the client refreshes its metadata every topicRefresh).
//   - A table name may hold templates filled from the topic: {topic} (the
//     whole name) and {topic.N} (the N-th dot-separated part, from 0; a
//     negative N counts from the end, so {topic.-1} is the last part). Each
//     distinct name is its own target, prepared (created with create: true,
//     and checked) when its first partition is claimed. Characters other
//     than letters, digits and _ become _ and letters are lower-cased, so
//     Debezium's topic shop.public.orders with name replica.{topic.-1}
//     lands in replica.orders.

// topicRefresh is how often the client refreshes topic metadata when
// patterns are configured, so new matching topics are picked up.
const topicRefresh = 10 * time.Second

// isPattern reports whether a topics entry is a /regex/ pattern.
func isPattern(s string) bool { return len(s) >= 2 && s[0] == '/' && s[len(s)-1] == '/' }

// compilePattern compiles a /regex/ entry, anchored to the whole name.
func compilePattern(s string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + s[1:len(s)-1] + ")$")
}

// tableTemplate matches the templates of a table name.
var tableTemplate = regexp.MustCompile(`\{topic(?:\.(-?[0-9]+))?\}`)

// hasTemplate reports whether a table name is a template.
func hasTemplate(name string) bool { return tableTemplate.MatchString(name) }

// expandTable fills name's templates from topic. ok is false when a
// {topic.N} part does not exist in topic.
func expandTable(name, topic string) (string, bool) {
	parts := strings.Split(topic, ".")
	ok := true
	out := tableTemplate.ReplaceAllStringFunc(name, func(m string) string {
		sub := tableTemplate.FindStringSubmatch(m)
		v := topic
		if sub[1] != "" {
			n, _ := strconv.Atoi(sub[1])
			if n < 0 {
				n += len(parts)
			}
			if n < 0 || n >= len(parts) {
				ok = false
				return ""
			}
			v = parts[n]
		}
		return identPart(v)
	})
	return out, ok
}

// identPart turns s into a plain lower-case identifier part.
func identPart(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || (b[0] >= '0' && b[0] <= '9') {
		b = append([]byte{'t', '_'}, b...)
	}
	return string(b)
}

// route is one table's claim on topics: its plain names and its patterns.
type route struct {
	cfg      TableConfig
	index    int // position in tables[]
	names    map[string]bool
	patterns []*regexp.Regexp
	template bool                // the name holds {topic} templates
	fixed    *tableRT            // the table, when the name is not a template
	byName   map[string]*tableRT // template instances by expanded name
}

// matches reports whether the route claims topic by name or pattern.
func (r *route) matches(topic string) (byName, byPattern bool) {
	if r.names[topic] {
		return true, false
	}
	for _, re := range r.patterns {
		if re.MatchString(topic) {
			return false, true
		}
	}
	return false, false
}

// usesPatterns reports whether any table lists a /regex/ topic.
func (a *App) usesPatterns() bool {
	for _, r := range a.routes {
		if len(r.patterns) > 0 {
			return true
		}
	}
	return false
}

// subscriptions returns what the client consumes: the topic names, or,
// with patterns, every entry as an anchored regex (kgo.ConsumeRegex).
func (a *App) subscriptions() []string {
	if !a.usesPatterns() {
		return a.topics
	}
	var out []string
	for _, r := range a.routes {
		for n := range r.names {
			out = append(out, "^"+regexp.QuoteMeta(n)+"$")
		}
		for _, re := range r.patterns {
			out = append(out, re.String())
		}
	}
	sort.Strings(out)
	return out
}

// readsTopic reports whether a table of cfg reads topic, by name or by
// pattern, as tablesFor routes it. Operator commands check a topic they
// are given against it.
func readsTopic(cfg *Config, topic string) bool {
	for _, t := range cfg.Tables {
		for _, tp := range t.Topics {
			if !isPattern(tp) {
				if tp == topic {
					return true
				}
				continue
			}
			// Validated when the config was loaded.
			if re, err := compilePattern(tp); err == nil && re.MatchString(topic) {
				return true
			}
		}
	}
	return false
}

// tablesFor returns the tables topic's records go to, preparing template
// instances on first use: every table that names the topic, or, when none
// does, every table with a pattern matching it. fan is nil for the common
// case of one table without a when: condition; otherwise it lists the
// tables (fanout.go) and the first is the one whose batches carry the
// offsets. The caller holds no lock.
func (a *App) tablesFor(ctx context.Context, topic string) (*tableRT, []*tableRT, error) {
	a.routeMu.Lock()
	defer a.routeMu.Unlock()
	if tables, ok := a.resolved[topic]; ok {
		return tables[0], fanOf(tables), nil
	}
	var chosen []*route
	for _, r := range a.routes {
		if byName, _ := r.matches(topic); byName {
			chosen = append(chosen, r)
		}
	}
	if len(chosen) == 0 {
		for _, r := range a.routes {
			if _, byPattern := r.matches(topic); byPattern {
				chosen = append(chosen, r)
			}
		}
	}
	if len(chosen) == 0 {
		return nil, nil, fmt.Errorf("no table is configured for topic %s; add it (or a /pattern/ matching it) to a table's topics", topic)
	}
	var tables []*tableRT
	for _, r := range chosen {
		t, err := a.instance(ctx, r, topic)
		if err != nil {
			return nil, nil, err
		}
		tables = append(tables, t)
	}
	a.resolved[topic] = tables
	return tables[0], fanOf(tables), nil
}

// fanOf returns a topic's tables when its records are routed one by one
// (several tables, or a when: condition), nil otherwise.
func fanOf(tables []*tableRT) []*tableRT {
	if len(tables) > 1 || tables[0].cfg.When != nil {
		return tables
	}
	return nil
}

// instance returns route r's table for topic: its fixed table, or the
// template instance named for topic, prepared on first use. The caller
// holds routeMu.
func (a *App) instance(ctx context.Context, r *route, topic string) (*tableRT, error) {
	if !r.template {
		return r.fixed, nil
	}
	name, ok := expandTable(r.cfg.Name, topic)
	if !ok {
		return nil, fmt.Errorf("cannot name the table for topic %s: tables[%d].name %s asks for a part the topic does not have; write the template for the topics the pattern matches",
			topic, r.index, r.cfg.Name)
	}
	if t := r.byName[name]; t != nil {
		return t, nil
	}
	t, err := r.newInstance(name, a.filters)
	if err != nil {
		return nil, fmt.Errorf("cannot prepare table %s for topic %s: %w", name, topic, err)
	}
	a.initPartitions(t)
	t.initShape()
	if err := a.prepareTable(ctx, t); err != nil {
		return nil, fmt.Errorf("cannot prepare table %s for topic %s: %w", name, topic, err)
	}
	// Its first partitions before its first batch, as a configured
	// table's before the instance consumes.
	if err := a.maintainTable(ctx, t, a.pm.now()); err != nil {
		return nil, fmt.Errorf("cannot prepare table %s for topic %s: %w", name, topic, err)
	}
	r.byName[name] = t
	a.addTable(t)
	a.log.Info("routing a new topic", "topic", topic, "table", name)
	return t, nil
}

// newInstance builds template route r's table for name, a name its
// template makes, its KeyFilter drawing on filters.
func (r *route) newInstance(name string, filters *pgcopy.FilterBudget) (*tableRT, error) {
	tc := r.cfg
	tc.Name = name
	return newTableRT(tc, filters)
}

// namesTable reports whether tables[].name cfgName can name the table
// name: it is name, or a {topic} template that makes name for some topic
// (each template stands for an identifier part, identPart).
func namesTable(cfgName, name string) bool {
	if !hasTemplate(cfgName) {
		return cfgName == name
	}
	re := "^"
	prev := 0
	for _, m := range tableTemplate.FindAllStringIndex(cfgName, -1) {
		re += regexp.QuoteMeta(cfgName[prev:m[0]]) + "[a-z_][a-z0-9_]*"
		prev = m[1]
	}
	return regexp.MustCompile(re + regexp.QuoteMeta(cfgName[prev:]) + "$").MatchString(name)
}

// deadLetterTable returns the table that dead letters stored for target
// from topic belong to: the configured table named target, or the instance
// of a {topic} template that names target for topic, built as instance
// builds it but not prepared (the caller migrates it). It is nil when no
// table of the configuration is target.
func (a *App) deadLetterTable(target, topic string) (*tableRT, error) {
	for _, r := range a.routes {
		if !r.template {
			if r.cfg.Name == target {
				return r.fixed, nil
			}
			continue
		}
		if name, ok := expandTable(r.cfg.Name, topic); ok && name == target {
			return r.newInstance(target, a.filters)
		}
	}
	return nil, nil
}

// prepareTable migrates (creates with create: true) and checks one table
// on the control connection, then gives its columns the target's limits.
func (a *App) prepareTable(ctx context.Context, t *tableRT) error {
	err := a.withCtl(ctx, func(conn *pgconn.PgConn) error {
		return pgcopy.Migrate(ctx, conn, a.cfg.Postgres.Schema, []*pgcopy.Table{t.pg})
	})
	if err != nil {
		return err
	}
	t.applyLimits()
	return nil
}

// applyLimits copies the target's length, precision and scale limits
// (learnt by pgcopy.Migrate) into the codec columns; decoders built from
// t.cols afterwards dead-letter values PostgreSQL would round or trim.
func (t *tableRT) applyLimits() {
	for i := range t.cols {
		l := t.pg.Columns[i].Limit
		t.cols[i].Limit = codec.Limit{Chars: l.Chars, Precision: l.Precision, Scale: l.Scale}
	}
}

// newTableRT builds a table's run-time state from its configuration. A
// keyed table's KeyFilter draws on filters; with nil filters (a table
// never written: a template's sample) it has none.
func newTableRT(tc TableConfig, filters *pgcopy.FilterBudget) (*tableRT, error) {
	cols, err := tc.codecColumns()
	if err != nil {
		return nil, err
	}
	format, _ := codec.ParseFormat(tc.Format)
	pt, err := tc.pgTable()
	if err != nil {
		return nil, err
	}
	conv, _ := codec.ParseConverter(tc.Converter)
	t := &tableRT{cfg: tc, pg: pt, cols: cols, format: format,
		opts: codec.Options{MaxRecordBytes: int(tc.MaxRecordBytes), Deletes: tc.Deletes, Converter: conv}}
	// Build one decoder now so a bad column spec fails at start.
	dec, err := codec.NewDecoder(format, cols, t.opts)
	if err != nil {
		return nil, cfgErr("columns", "%v", err)
	}
	t.nFields = dec.NumFields()
	if w := tc.When; w != nil && w.Field != "" {
		if _, err := codec.NewDecoder(format, []codec.Column{{Name: "when", Type: codec.TypeText, Path: w.Field}}, t.opts); err != nil {
			return nil, cfgErr("when.field", "%v", err)
		}
	}
	t.keys = newKeyCheck(tc, cols)
	if d := tc.derived; d != nil {
		// Warned about at start: logUnstored names them no more.
		for _, f := range d.unstoredAtStart() {
			t.ev.once("unstored\x00" + f)
		}
	}
	if pt.Keyed() {
		t.nFields++
		t.keyFields = pt.KeyFields()
		if filters != nil {
			t.seen = filters.NewKeyFilter()
		}
	}
	return t, nil
}

// tableList returns the tables known now: the configured ones and the
// template instances prepared so far.
func (a *App) tableList() []*tableRT {
	a.routeMu.Lock()
	defer a.routeMu.Unlock()
	return a.tables[:len(a.tables):len(a.tables)]
}

func (a *App) addTable(t *tableRT) {
	a.tables = append(a.tables, t) // the caller holds routeMu
}

// assignedTopics returns the topics of the owned partitions.
func (a *App) assignedTopics() []string {
	seen := map[string]bool{}
	var out []string
	for _, st := range a.snapshotParts() {
		if !seen[st.topic] {
			seen[st.topic] = true
			out = append(out, st.topic)
		}
	}
	return out
}

// missingSubscriptions returns the subscribed topic names that do not
// exist and the patterns that match no topic.
func (a *App) missingSubscriptions(ctx context.Context) ([]string, error) {
	adm := kadm.NewClient(a.cl)
	if !a.usesPatterns() {
		details, err := adm.ListTopics(ctx, a.topics...)
		if err != nil {
			return nil, err
		}
		var missing []string
		for _, tp := range a.topics {
			if d, ok := details[tp]; !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
				missing = append(missing, tp)
			}
		}
		return missing, nil
	}
	details, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, r := range a.routes {
		for n := range r.names {
			if d, ok := details[n]; !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
				missing = append(missing, n)
			}
		}
		for _, re := range r.patterns {
			found := false
			for tp := range details {
				if re.MatchString(tp) {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, "/"+re.String()[4:len(re.String())-2]+"/")
			}
		}
	}
	sort.Strings(missing)
	return missing, nil
}
