package ingest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
	"github.com/sluice-dev/sluice/internal/progress"
	"github.com/sluice-dev/sluice/registry"
)

// `sluice dead-letters list|show|replay`: the operator's tools for the
// dead-letter table. Replay re-decodes the stored record bytes with the
// current configuration (after the producer or the table's columns were
// fixed) and moves what now decodes into the target, exactly once
// (pgcopy.Writer.Replay).

const deadLettersUsage = `Usage: sluice dead-letters list|show|replay [flags]

  list    one line per dead letter matching the filters
  show    matching dead letters in full: key and value (text when valid
          UTF-8, else hex), headers, error
  replay  decode the matching dead letters again with the current
          configuration; rows that now decode land in their table and
          their dead letters are deleted, in one transaction per batch;
          the rest stay with their error updated

Filters (all optional): --table, --reason, --topic, --partition,
--offset or --from-offset/--to-offset, --since/--until, --group.
Run 'sluice dead-letters SUBCOMMAND -h' for every flag.
`

// dlFlags are the dead-letters command's flags.
type dlFlags struct {
	cf                           commonFlags
	table, reason, topic         string
	partition                    int
	offset, fromOffset, toOffset int64
	since, until                 string
	limit, batch                 int
	asJSON                       bool
	timestampFromReceived        bool
}

// DeadLettersMain is `sluice dead-letters`.
func DeadLettersMain(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stderr, deadLettersUsage)
			return flag.ErrHelp
		}
		fmt.Fprint(stderr, "sluice dead-letters: name a subcommand: list, show or replay\n\n"+deadLettersUsage)
		return ErrUsage
	}
	sub := args[0]
	switch sub {
	case "list", "show", "replay":
	default:
		fmt.Fprintf(stderr, "sluice dead-letters: unknown subcommand %q; use list, show or replay\n", sub)
		return ErrUsage
	}
	fs := flag.NewFlagSet("sluice dead-letters "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, deadLettersUsage+"\nFlags of "+sub+":\n"); fs.PrintDefaults() }
	var f dlFlags
	f.cf.register(fs)
	fs.StringVar(&f.table, "table", "", "target table as configured, e.g. public.items, or as a {topic} template names it, e.g. public.events (replay: default every configured table and every template's table with dead letters)")
	fs.StringVar(&f.reason, "reason", "", reasonFlagHelp)
	fs.StringVar(&f.topic, "topic", "", "topic of the records")
	fs.IntVar(&f.partition, "partition", -1, "partition of the records")
	fs.Int64Var(&f.offset, "offset", -1, "one offset (same as --from-offset N --to-offset N)")
	fs.Int64Var(&f.fromOffset, "from-offset", -1, "lowest offset, inclusive")
	fs.Int64Var(&f.toOffset, "to-offset", -1, "highest offset, inclusive")
	fs.StringVar(&f.since, "since", "", "received at or after: RFC 3339 time (2026-11-27T10:00:00Z) or a duration ago (24h)")
	fs.StringVar(&f.until, "until", "", "received before: RFC 3339 time or a duration ago")
	switch sub {
	case "list":
		fs.IntVar(&f.limit, "limit", 100, "print at most this many (0: all)")
		fs.BoolVar(&f.asJSON, "json", false, "one JSON object per line")
	case "show":
		fs.IntVar(&f.limit, "limit", 1, "print at most this many (0: all)")
		fs.BoolVar(&f.asJSON, "json", false, "one JSON object per line")
	case "replay":
		fs.IntVar(&f.batch, "batch", 1000, "dead letters per transaction")
		fs.BoolVar(&f.timestampFromReceived, "timestamp-from-received-at", false,
			"fill kafka.timestamp columns with the dead letter's received_at (the record's own timestamp is not stored)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := f.cf.load()
	if err != nil {
		return err
	}
	red := newRedactor(cfg)
	defer func() { err = red.error(err) }()
	filter, err := f.filter(cfg, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "sluice dead-letters %s: %v\n", sub, err)
		return ErrUsage
	}
	conn, err := connectPG(ctx, cfg.Postgres.URL, 0, nil)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if sub == "replay" {
		return replayDeadLetters(ctx, cfg, filter, &f, stdout)
	}
	var after *pgcopy.DeadLetterID
	printed := 0
	for {
		page := 500
		if f.limit > 0 {
			page = min(page, f.limit-printed)
		}
		dls, err := pgcopy.ListDeadLetters(ctx, conn, cfg.Postgres.Schema, filter, after, page)
		if err != nil {
			return err
		}
		for i := range dls {
			d := &dls[i]
			switch {
			case f.asJSON:
				writeDeadLetterJSON(stdout, d)
			case sub == "list":
				writeDeadLetterLine(stdout, d)
			default:
				writeDeadLetterFull(stdout, d)
			}
		}
		printed += len(dls)
		if len(dls) < page || (f.limit > 0 && printed >= f.limit) {
			break
		}
		id := dls[len(dls)-1].ID()
		after = &id
	}
	if printed == 0 && !f.asJSON {
		fmt.Fprintf(stdout, "no dead letters of group %s match\n", filter.Group)
	}
	return nil
}

// reasonFlagHelp is the help of --reason: every reason it accepts.
var reasonFlagHelp = "reason: " + strings.Join(deadLetterReasons, ", ") + " or " + pgcopy.ReasonRejected

// filter builds the dead-letter filter of the flags.
func (f *dlFlags) filter(cfg *Config, now time.Time) (pgcopy.DeadLetterFilter, error) {
	df := pgcopy.AnyDeadLetter(cfg.Kafka.Group)
	df.Target, df.Topic, df.Partition = f.table, f.topic, int32(f.partition)
	if f.reason != "" {
		known := f.reason == pgcopy.ReasonRejected || f.reason == "invalid"
		for _, r := range deadLetterReasons {
			known = known || r == f.reason
		}
		if !known {
			return df, fmt.Errorf("unknown --reason %q; use one of %s, %s", f.reason, strings.Join(deadLetterReasons, ", "), pgcopy.ReasonRejected)
		}
		df.Reason = f.reason
	}
	df.FromOffset, df.ToOffset = f.fromOffset, f.toOffset
	if f.offset >= 0 {
		df.FromOffset, df.ToOffset = f.offset, f.offset
	}
	var err error
	if df.Since, err = parseWhen(f.since, now); err != nil {
		return df, fmt.Errorf("--since: %w", err)
	}
	if df.Until, err = parseWhen(f.until, now); err != nil {
		return df, fmt.Errorf("--until: %w", err)
	}
	if f.table != "" {
		found := false
		for _, t := range cfg.Tables {
			found = found || namesTable(t.Name, f.table)
		}
		if !found {
			return df, fmt.Errorf("--table %s is not a configured table (tables[].name) nor a name a {topic} template makes", f.table)
		}
	}
	return df, nil
}

// parseWhen parses an RFC 3339 time, a date, or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := parseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse %q: use an RFC 3339 time such as 2026-11-27T10:00:00Z, a date, or a duration ago such as 24h or 7d", s)
}

// parseDuration is time.ParseDuration that also takes whole days (7d).
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("cannot parse duration %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func writeDeadLetterLine(w io.Writer, d *pgcopy.StoredDeadLetter) {
	e := strings.ReplaceAll(d.Error, "\n", " ")
	if len(e) > 160 {
		e = e[:157] + "..."
	}
	fmt.Fprintf(w, "%s  %s  %s/%d@%d  %s  %s\n", d.ReceivedAt.UTC().Format(time.RFC3339), d.Target, d.Topic, d.Partition, d.Offset,
		classifyError(d.Error), e)
}

func writeDeadLetterFull(w io.Writer, d *pgcopy.StoredDeadLetter) {
	fmt.Fprintf(w, "dead letter %s/%d@%d for %s (group %s)\n", d.Topic, d.Partition, d.Offset, d.Target, d.Group)
	fmt.Fprintf(w, "  received: %s\n", d.ReceivedAt.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "  reason:   %s\n", classifyError(d.Error))
	fmt.Fprintf(w, "  error:    %s\n", d.Error)
	fmt.Fprintf(w, "  key:      %s\n", showBytes(d.Key))
	fmt.Fprintf(w, "  value:    %s\n", showBytes(d.Value))
	if hs, err := parseHeadersJSON(d.Headers); err != nil {
		fmt.Fprintf(w, "  headers:  %s (%v)\n", d.Headers, err)
	} else if len(hs) == 0 {
		fmt.Fprintf(w, "  headers:  none\n")
	} else {
		fmt.Fprintf(w, "  headers:\n")
		for _, h := range hs {
			fmt.Fprintf(w, "    %s: %s\n", h.Key, showBytes(h.Value))
		}
	}
	fmt.Fprintln(w)
}

// showBytes renders b as text when it is valid UTF-8 without control
// characters other than whitespace, else as hex; nil is (null).
func showBytes(b []byte) string {
	if b == nil {
		return "(null)"
	}
	if utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' && r != '\r' || r == 0x7f }) {
		return string(b)
	}
	return "hex:" + hex.EncodeToString(b)
}

// deadLetterJSON is `list --json` and `show --json`: bytes as text when
// valid UTF-8 (key, value), else base64 (key_base64, value_base64).
type deadLetterJSON struct {
	Group       string          `json:"group"`
	Table       string          `json:"table"`
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	Offset      int64           `json:"offset"`
	ReceivedAt  time.Time       `json:"received_at"`
	Reason      string          `json:"reason"`
	Error       string          `json:"error"`
	Key         *string         `json:"key,omitempty"`
	KeyBase64   []byte          `json:"key_base64,omitempty"`
	Value       *string         `json:"value,omitempty"`
	ValueBase64 []byte          `json:"value_base64,omitempty"`
	Headers     json.RawMessage `json:"headers,omitempty"`
}

func writeDeadLetterJSON(w io.Writer, d *pgcopy.StoredDeadLetter) {
	j := deadLetterJSON{Group: d.Group, Table: d.Target, Topic: d.Topic, Partition: d.Partition, Offset: d.Offset,
		ReceivedAt: d.ReceivedAt.UTC(), Reason: classifyError(d.Error), Error: d.Error}
	put := func(b []byte, s **string, raw *[]byte) {
		switch {
		case b == nil:
		case utf8.Valid(b):
			t := string(b)
			*s = &t
		default:
			*raw = b
		}
	}
	put(d.Key, &j.Key, &j.KeyBase64)
	put(d.Value, &j.Value, &j.ValueBase64)
	if json.Valid(d.Headers) {
		j.Headers = d.Headers
	}
	b, _ := json.Marshal(j)
	w.Write(append(b, '\n'))
}

// classifyError returns the reason a stored dead-letter error names, as
// CountDeadLetters and the --reason filter see it.
func classifyError(e string) string {
	if strings.HasPrefix(e, pgcopy.RejectedPrefix) {
		return pgcopy.ReasonRejected
	}
	best, at := "other", len(e)
	for _, r := range append(deadLetterReasons, "invalid") {
		for _, p := range []string{r + ": ", ": " + r + ": "} {
			if i := strings.Index(e, p); i >= 0 && (i == 0 || p[0] == ':') && i < at {
				best, at = r, i
			}
		}
	}
	return best
}

// parseHeadersJSON parses the headers column (codec.AppendHeadersJSON's
// shape) back into headers, byte for byte.
func parseHeadersJSON(b []byte) ([]codec.Header, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var raw []struct {
		Key         string  `json:"key"`
		Value       *string `json:"value"`
		ValueBase64 *string `json:"value_base64"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("cannot parse the stored headers %.80q: %w", b, err)
	}
	hs := make([]codec.Header, len(raw))
	for i, h := range raw {
		hs[i].Key = h.Key
		switch {
		case h.ValueBase64 != nil:
			v, err := base64.StdEncoding.DecodeString(*h.ValueBase64)
			if err != nil {
				return nil, fmt.Errorf("cannot decode the base64 value of stored header %q: %w", h.Key, err)
			}
			hs[i].Value = v
		case h.Value != nil:
			hs[i].Value = []byte(*h.Value)
		}
	}
	return hs, nil
}

// replayDeadLetters replays filter's dead letters into every table it
// selects: the configured ones, and the instances of {topic} templates
// that the dead letters name.
func replayDeadLetters(ctx context.Context, cfg *Config, filter pgcopy.DeadLetterFilter, f *dlFlags, stdout io.Writer) error {
	if f.batch < 1 {
		return fmt.Errorf("cannot replay in batches of %d: use --batch 1 or more", f.batch)
	}
	a, err := New(cfg, nil)
	if err != nil {
		return err
	}
	conn, err := connectPG(ctx, cfg.Postgres.URL, 30*time.Second, a.log)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var tables []*tableRT
	named := map[string]bool{}
	for _, t := range a.tableList() {
		if filter.Target == "" || filter.Target == t.cfg.Name {
			tables = append(tables, t)
			named[t.cfg.Name] = true
		}
	}
	// A {topic} template's tables are made per topic, as the appliance
	// made them: the dead letters' targets and topics name them.
	sources, err := pgcopy.DeadLetterSources(ctx, conn, cfg.Postgres.Schema, filter)
	if err != nil {
		return err
	}
	var unknown []string
	for _, s := range sources {
		if named[s.Target] {
			continue
		}
		t, err := a.deadLetterTable(s.Target, s.Topic)
		if err != nil {
			return fmt.Errorf("cannot replay into %s: %w", s.Target, err)
		}
		if t == nil {
			unknown = append(unknown, s.Target+" (topic "+s.Topic+")")
			continue
		}
		tables = append(tables, t)
		named[s.Target] = true
	}
	var pts []*pgcopy.Table
	for _, t := range tables {
		pts = append(pts, t.pg)
	}
	// As at start: checks the targets and learns their length, precision
	// and scale, which the decoders must enforce as the appliance does.
	if err := pgcopy.Migrate(ctx, conn, cfg.Postgres.Schema, pts); err != nil {
		return fmt.Errorf("cannot prepare tables: %w", err)
	}
	w := pgcopy.NewWriter(cfg.Postgres.URL, cfg.Postgres.Schema, filter.Group)
	defer w.Close(context.Background())
	total := pgcopy.ReplayResult{}
	for _, t := range tables {
		t.applyLimits()
		usesTimestamp := false
		for _, c := range t.cols {
			usesTimestamp = usesTimestamp || c.Source == codec.SourceTimestamp
		}
		if usesTimestamp && !f.timestampFromReceived {
			return fmt.Errorf("cannot replay into %s: its columns use kafka.timestamp, which dead letters do not store; "+
				"pass --timestamp-from-received-at to use the time each record was dead-lettered instead", t.cfg.Name)
		}
		dec, err := codec.NewDecoder(t.format, t.cols, t.opts)
		if err != nil {
			return fmt.Errorf("cannot build the decoder of %s: %w", t.cfg.Name, err)
		}
		var rec codec.Record
		decode := func(dst []byte, d *pgcopy.StoredDeadLetter) ([]byte, pgcopy.RowChange, error) {
			hs, err := parseHeadersJSON(d.Headers)
			if err != nil {
				return dst, pgcopy.RowChange{}, err
			}
			rec = codec.Record{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, Timestamp: d.ReceivedAt,
				Key: d.Key, Value: d.Value, Headers: hs}
			if err := a.replayKeyCheck(ctx, t, &rec); err != nil {
				return dst, pgcopy.RowChange{}, err
			}
			start := len(dst)
			for {
				dst, err = dec.AppendFields(dst, &rec)
				need, ok := err.(*codec.SchemaNeededError)
				if !ok {
					break
				}
				// A writer schema this decoder has not seen: fetched
				// as the appliance fetches it, then the record again.
				dst = dst[:start]
				if err := a.replaySchema(ctx, dec, need); err != nil {
					return dst, pgcopy.RowChange{}, err
				}
			}
			if err != nil {
				return dst, pgcopy.RowChange{}, err
			}
			c, ok := rowChange(dec)
			switch {
			case ok:
				return dst, c, nil
			case dec.Op() == codec.OpTruncate && t.cfg.Truncate:
				// Applied now, it would empty the table of every row
				// landed since the record.
				return dst, c, errors.New("a truncate event: replay does not truncate the table; truncate it by hand if it still must be, then delete this dead letter")
			}
			// Passed over, as the appliance passes such a record over.
			return dst, c, pgcopy.ErrNoRow
		}
		tf := filter
		tf.Target = t.cfg.Name
		line := progress.New(stdout, "replay "+t.cfg.Name, -1).Unit("dead letters")
		res, err := w.Replay(ctx, t.pg, tf, f.batch, decode, func(r pgcopy.ReplayResult) {
			s := fmt.Sprintf("landed %d, still failing %d", r.Landed, r.Failed)
			if r.Skipped > 0 {
				s += fmt.Sprintf(", skipped %d", r.Skipped)
			}
			line.Set(int64(r.Landed+r.Skipped+r.Failed), s)
		})
		line.Done()
		total.Batches += res.Batches
		total.Landed += res.Landed
		total.Skipped += res.Skipped
		total.Failed += res.Failed
		if err != nil {
			return fmt.Errorf("%w (landed so far: %d; rerun to continue)", err, total.Landed)
		}
		skipped := ""
		if res.Skipped > 0 {
			skipped = fmt.Sprintf(", %d skipped (no row to write, as the appliance skips them)", res.Skipped)
		}
		fmt.Fprintf(stdout, "%s: %d dead letter(s) landed%s, %d still fail (error updated), %d transaction(s)\n",
			t.cfg.Name, res.Landed, skipped, res.Failed, res.Batches)
	}
	if len(tables)+len(unknown) == 0 {
		fmt.Fprintf(stdout, "no dead letters of group %s match\n", filter.Group)
	}
	for _, u := range unknown {
		fmt.Fprintf(stdout, "%s: not replayed: no table of the configuration has this name, nor makes it from the topic with a {topic} template\n", u)
	}
	if total.Failed > 0 {
		fmt.Fprintf(stdout, "%d dead letter(s) still fail: sluice dead-letters list --group %s shows why\n", total.Failed, filter.Group)
	}
	return nil
}

// replayRegistryPatience is how long replay waits for a schema registry
// that does not answer before it stops (nothing of the batch at hand is
// written, no stored error is changed; a rerun goes on).
const replayRegistryPatience = time.Minute

// replayRegistry runs fetch, which asks the schema registry and returns
// an error only when the registry did not answer, until it succeeds,
// retrying with backoff for up to replayRegistryPatience; then it returns
// an error wrapping pgcopy.ErrStopReplay.
func replayRegistry(ctx context.Context, what string, fetch func() error) error {
	deadline := time.Now().Add(replayRegistryPatience)
	backoff := 200 * time.Millisecond
	for {
		err := fetch()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: cannot fetch %s from the schema registry: %v; rerun the replay when the registry answers", pgcopy.ErrStopReplay, what, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// replaySchema gives dec the writer schema need names, as the appliance
// does (fetchSchema): by id or GUID, a value schema by AddSchema, a key
// schema by AddKeySchema; one the registry does not have as nil (the
// record stays a dead letter, unknown_schema).
func (a *App) replaySchema(ctx context.Context, dec *codec.Decoder, need *codec.SchemaNeededError) error {
	add, what := dec.AddSchema, "the writer schema with "+need.Ref.String()
	if need.Key {
		add, what = dec.AddKeySchema, "the key writer schema with "+need.Ref.String()
	}
	if a.reg == nil {
		// Unreachable: validation requires schema_registry for these formats.
		return add(need.Ref, nil)
	}
	return replayRegistry(ctx, what, func() error {
		s, err := a.schemaByRef(ctx, need.Ref)
		switch {
		case err == nil:
			if cerr := add(need.Ref, codecSchema(s)); cerr != nil {
				a.log.Warn(what+" cannot fill the table; its records stay dead letters", "err", cerr)
			}
		case registry.IsPermanent(err):
			add(need.Ref, nil)
		default:
			return err
		}
		return nil
	})
}

// replayKeyCheck is the appliance's key-schema check (keychange.go) for a
// record sluice dead-letters replay is about to write into t: a record
// keyed by a Key record of other fields than t's key is not merged by the
// old key. Its dead letter stays, the error naming both keys and the fix,
// as every record replay cannot write now stays with its error updated;
// the other dead letters of the batch land. (The appliance stops the
// partition instead, as its records are still in Kafka; a dead letter
// kept loses nothing and is replayed once the target's key is changed.)
func (a *App) replayKeyCheck(ctx context.Context, t *tableRT, rec *codec.Record) error {
	if t.keys == nil || a.reg == nil {
		return nil
	}
	ref, ok := codec.KeySchemaRef(rec)
	if !ok {
		return nil
	}
	var fields []string
	err := replayRegistry(ctx, "the key writer schema with "+ref.String(), func() error {
		var err error
		fields, err = a.keySchemaVerdict(ctx, t, rec.Topic, ref)
		return err
	})
	if err != nil || fields == nil {
		return err
	}
	return &codec.RowError{Path: "kafka.key", Reason: codec.ReasonBadKey, Detail: fmt.Sprintf(
		"the source's primary key changed: the record is keyed by (%s) (key schema %s), but table %s merges rows by (%s), which would overwrite rows that differ in the new key; "+
			"alter the target's primary key to (%s), set key: [%s] for table %s, and replay again",
		strings.Join(fields, ", "), ref, t.cfg.Name, strings.Join(t.cfg.Key, ", "), strings.Join(fields, ", "), strings.Join(fields, ", "), t.cfg.Name)}
}
