package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
	"github.com/sluice-dev/sluice/internal/progress"
)

// `sluice status` is kafka-consumer-groups --describe with Sluice's truth:
// the offsets that count are the ones in PostgreSQL (Kafka's committed
// offsets are never used), the log ends come from the broker, the owners
// from the group's description, and the dead letters from their table.

// GroupStatus is the output of `sluice status --json`.
type GroupStatus struct {
	Time        time.Time          `json:"time"`
	Group       string             `json:"group"`
	Schema      string             `json:"schema"`
	State       string             `json:"group_state"` // the broker's group state: Stable, Empty, …
	Members     []MemberStatus     `json:"members"`
	Partitions  []PartitionReport  `json:"partitions"`
	Lag         int64              `json:"lag"`
	DeadLetters []TableDeadLetters `json:"dead_letters"`
	Instances   []InstanceReport   `json:"instances,omitempty"`
	Problems    []string           `json:"problems,omitempty"` // what could not be read
}

// MemberStatus is one member of the consumer group (one Sluice instance).
type MemberStatus struct {
	MemberID   string `json:"member_id"`
	ClientID   string `json:"client_id"`
	Host       string `json:"host"`
	Partitions int    `json:"partitions"`
}

// PartitionReport is one partition of a configured topic.
type PartitionReport struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Table     string `json:"table"`
	// StoredOffset is next_offset in PostgreSQL: -1 when claimed but
	// nothing committed yet, and also when no row exists (Stored false).
	StoredOffset int64 `json:"stored_offset"`
	Stored       bool  `json:"stored"`
	LogStart     int64 `json:"log_start"`
	LogEnd       int64 `json:"log_end"`
	Lag          int64 `json:"lag"`
	Epoch        int64 `json:"owner_epoch"`
	// LastCommit is the offsets row's updated_at: the last commit or
	// claim; LastCommitAge its age in seconds when the status was taken.
	LastCommit    *time.Time `json:"last_commit,omitempty"`
	LastCommitAge float64    `json:"last_commit_age_seconds"`
	Owner         string     `json:"owner,omitempty"` // member ID from the group description
}

// TableDeadLetters are a table's stored dead letters by reason.
type TableDeadLetters struct {
	Table   string           `json:"table"`
	Total   int64            `json:"total"`
	Reasons map[string]int64 `json:"reasons"`
	Newest  *time.Time       `json:"newest,omitempty"`
}

// InstanceReport is what a running instance says of itself
// (/status.json), with --instances.
type InstanceReport struct {
	Addr     string   `json:"addr"`
	Ready    bool     `json:"ready"`
	NotReady string   `json:"not_ready,omitempty"`
	Stuck    []string `json:"stuck,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// deadLetterReasons are the reasons recognised in stored errors: every
// codec.Reason and no_route (fanout.go); TestDeadLetterReasonsComplete
// keeps the list whole.
var deadLetterReasons = []string{
	string(codec.ReasonMalformedJSON), string(codec.ReasonWrongType), string(codec.ReasonOutOfRange),
	string(codec.ReasonMissingRequired), string(codec.ReasonInvalidUTF8), string(codec.ReasonNULInText),
	string(codec.ReasonBadCompression), string(codec.ReasonOversized), string(codec.ReasonInvalidValue),
	string(codec.ReasonBadFraming), string(codec.ReasonUnknownSchema), string(codec.ReasonSchemaMismatch),
	string(codec.ReasonBadEnvelope), string(codec.ReasonBadKey), string(codec.ReasonExpired), reasonNoRoute,
}

// watchFlag is --watch with an optional interval: --watch, --watch=5s, or
// --watch 5s (the interval as the next argument).
type watchFlag struct {
	on    bool
	every time.Duration
}

func (w *watchFlag) String() string {
	if !w.on {
		return ""
	}
	return w.every.String()
}

func (w *watchFlag) Set(s string) error {
	w.on = true
	if s == "true" || s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("cannot parse interval %q: use a duration such as 2s or 1m", s)
	}
	w.every = d
	return nil
}

func (w *watchFlag) IsBoolFlag() bool { return true }

// parseWatchFlags parses args into fs, taking an argument after --watch
// that is a duration as its interval and parsing the flags after it too:
// flag stops at the first non-flag, so `--watch 5s --config F` left
// --config unparsed.
func parseWatchFlags(fs *flag.FlagSet, args []string, w *watchFlag) error {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return ErrUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return nil
		}
		d, err := time.ParseDuration(args[0])
		if !w.on || err != nil || d <= 0 {
			fmt.Fprintf(fs.Output(), "unexpected argument %q\n", args[0])
			return ErrUsage
		}
		w.every, args = d, args[1:]
	}
}

// StatusMain is `sluice status`.
func StatusMain(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("sluice status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	watch := watchFlag{every: 2 * time.Second}
	fs.Var(&watch, "watch", "refresh every `interval` (default 2s) until interrupted: --watch, --watch=5s or --watch 5s")
	instances := fs.String("instances", "", "comma-separated host:port of running instances' metrics listeners: adds what each says of itself (readiness, stuck tables)")
	if err := parseWatchFlags(fs, args, &watch); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	red := newRedactor(cfg)
	defer func() { err = red.error(err) }()
	var addrs []string
	for _, a := range strings.Split(*instances, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	s := &statusSource{cfg: cfg, instances: addrs}
	defer s.close()
	term := progress.IsTerminal(stdout)
	for {
		gs, err := s.collect(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			if !watch.on {
				enc.SetIndent("", "  ")
			}
			enc.Encode(gs)
		} else {
			if watch.on && term {
				io.WriteString(stdout, "\x1b[H\x1b[2J") // home, clear screen
			}
			writeGroupStatus(stdout, gs)
			if watch.on && !term {
				fmt.Fprintln(stdout)
			}
		}
		if !watch.on {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watch.every):
		}
	}
}

// statusSource holds the connections `sluice status` reads from; they are
// kept across --watch refreshes.
type statusSource struct {
	cfg       *Config
	instances []string
	pg        *pgconn.PgConn
	cl        *kgo.Client
}

func (s *statusSource) close() {
	if s.pg != nil {
		s.pg.Close(context.Background())
	}
	if s.cl != nil {
		s.cl.Close()
	}
}

func (s *statusSource) collect(ctx context.Context) (*GroupStatus, error) {
	cfg := s.cfg
	if s.pg == nil || s.pg.IsClosed() {
		conn, err := connectPG(ctx, cfg.Postgres.URL, 0, nil)
		if err != nil {
			return nil, err
		}
		s.pg = conn
	}
	if s.cl == nil {
		sec, err := KafkaSecurityOpts(cfg)
		if err != nil {
			return nil, err
		}
		cl, err := kgo.NewClient(append(sec, kgo.SeedBrokers(cfg.Kafka.Brokers...))...)
		if err != nil {
			return nil, fmt.Errorf("cannot create the Kafka client (kafka.*): %w", err)
		}
		s.cl = cl
	}
	now := time.Now()
	gs := &GroupStatus{Time: now.UTC(), Group: cfg.Kafka.Group, Schema: cfg.Postgres.Schema,
		Members: []MemberStatus{}, Partitions: []PartitionReport{}, DeadLetters: []TableDeadLetters{}}

	rows, err := pgcopy.ReadOffsetRows(ctx, s.pg, cfg.Postgres.Schema, cfg.Kafka.Group)
	if err != nil {
		return nil, err
	}
	counts, err := pgcopy.CountDeadLetters(ctx, s.pg, cfg.Postgres.Schema, cfg.Kafka.Group, append(deadLetterReasons, "invalid"))
	if err != nil {
		return nil, err
	}

	tableOf := map[string]string{}
	var topics []string
	for _, t := range cfg.Tables {
		for _, tp := range t.Topics {
			tableOf[tp] = t.Name
			topics = append(topics, tp)
		}
	}
	sort.Strings(topics)
	adm := kadm.NewClient(s.cl)
	kctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(kctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("cannot list the log end offsets of %s: %w%s", strings.Join(topics, ", "), err, hintSuffix(kafkaHint(err, &cfg.Kafka)))
	}
	starts, err := adm.ListStartOffsets(kctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("cannot list the log start offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	owner := map[partKey]string{}
	if groups, err := adm.DescribeGroups(kctx, cfg.Kafka.Group); err != nil {
		gs.Problems = append(gs.Problems, fmt.Sprintf("cannot describe group %s: %v", cfg.Kafka.Group, err))
	} else if g, ok := groups[cfg.Kafka.Group]; ok {
		gs.State = g.State
		if g.Err != nil {
			gs.Problems = append(gs.Problems, fmt.Sprintf("cannot describe group %s: %v", cfg.Kafka.Group, g.Err))
		}
		for _, m := range g.Members {
			ms := MemberStatus{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range c.Topics {
					for _, p := range t.Partitions {
						owner[partKey{t.Topic, p}] = m.MemberID
						ms.Partitions++
					}
				}
			}
			gs.Members = append(gs.Members, ms)
		}
		sort.Slice(gs.Members, func(i, j int) bool { return gs.Members[i].MemberID < gs.Members[j].MemberID })
	}

	stored := map[partKey]pgcopy.OffsetRow{}
	for _, r := range rows {
		stored[partKey{r.Topic, r.Partition}] = r
	}
	seen := map[partKey]bool{}
	ends.Each(func(o kadm.ListedOffset) {
		k := partKey{o.Topic, o.Partition}
		seen[k] = true
		pr := PartitionReport{Topic: o.Topic, Partition: o.Partition, Table: tableOf[o.Topic], StoredOffset: -1, LogEnd: o.Offset, Owner: owner[k]}
		if o.Err != nil {
			gs.Problems = append(gs.Problems, fmt.Sprintf("cannot list the log end of %s/%d: %v", o.Topic, o.Partition, o.Err))
			pr.LogEnd = -1
		}
		if so, ok := starts.Lookup(o.Topic, o.Partition); ok && so.Err == nil {
			pr.LogStart = so.Offset
		}
		if r, ok := stored[k]; ok {
			pr.Stored, pr.StoredOffset, pr.Epoch = true, r.NextOffset, r.Epoch
			at := r.UpdatedAt.UTC()
			pr.LastCommit = &at
			pr.LastCommitAge = now.Sub(r.UpdatedAt).Seconds()
		}
		switch from := pr.StoredOffset; {
		case pr.LogEnd < 0:
		case from >= 0:
			pr.Lag = max(pr.LogEnd-from, 0)
		case cfg.Kafka.StartOffset == "latest":
			pr.Lag = 0 // would start at the log end
		default:
			pr.Lag = max(pr.LogEnd-pr.LogStart, 0)
		}
		gs.Lag += pr.Lag
		gs.Partitions = append(gs.Partitions, pr)
	})
	// Rows of partitions the broker no longer lists (a deleted topic or
	// one dropped from the configuration) are shown too.
	for _, r := range rows {
		if k := (partKey{r.Topic, r.Partition}); !seen[k] {
			at := r.UpdatedAt.UTC()
			gs.Partitions = append(gs.Partitions, PartitionReport{Topic: r.Topic, Partition: r.Partition, Table: tableOf[r.Topic],
				StoredOffset: r.NextOffset, Stored: true, LogEnd: -1, Epoch: r.Epoch, LastCommit: &at, LastCommitAge: now.Sub(r.UpdatedAt).Seconds()})
		}
	}
	sort.Slice(gs.Partitions, func(i, j int) bool {
		a, b := gs.Partitions[i], gs.Partitions[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})

	byTable := map[string]*TableDeadLetters{}
	for _, t := range cfg.Tables {
		byTable[t.Name] = &TableDeadLetters{Table: t.Name, Reasons: map[string]int64{}}
	}
	for _, c := range counts {
		td := byTable[c.Target]
		if td == nil {
			td = &TableDeadLetters{Table: c.Target, Reasons: map[string]int64{}}
			byTable[c.Target] = td
		}
		td.Total += c.Count
		td.Reasons[c.Reason] += c.Count
		if td.Newest == nil || c.Newest.After(*td.Newest) {
			n := c.Newest.UTC()
			td.Newest = &n
		}
	}
	for _, td := range byTable {
		gs.DeadLetters = append(gs.DeadLetters, *td)
	}
	sort.Slice(gs.DeadLetters, func(i, j int) bool { return gs.DeadLetters[i].Table < gs.DeadLetters[j].Table })

	for _, addr := range s.instances {
		gs.Instances = append(gs.Instances, instanceReport(ctx, addr))
	}
	return gs, nil
}

// instanceReport asks a running instance for /status.json.
func instanceReport(ctx context.Context, addr string) InstanceReport {
	ir := InstanceReport{Addr: addr}
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(hctx, http.MethodGet, "http://"+addr+"/status.json", nil)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		ir.Error = err.Error()
		return ir
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		ir.Error = fmt.Sprintf("cannot read %s/status.json: %v", addr, err)
		return ir
	}
	ir.Ready, ir.NotReady = st.Ready, st.NotReady
	for _, t := range st.Tables {
		if t.Stuck != nil {
			ir.Stuck = append(ir.Stuck, t.Name+": "+t.Stuck.Reason)
		}
	}
	return ir
}

// writeGroupStatus prints gs as tables for people.
func writeGroupStatus(w io.Writer, gs *GroupStatus) {
	fmt.Fprintf(w, "group %s (offsets in PostgreSQL schema %s), broker state %s, %d member(s), lag %d, at %s\n",
		gs.Group, gs.Schema, orDash(gs.State), len(gs.Members), gs.Lag, gs.Time.Local().Format("15:04:05"))
	for _, p := range gs.Problems {
		fmt.Fprintf(w, "  ! %s\n", p)
	}
	short := map[string]string{}
	for i, m := range gs.Members {
		short[m.MemberID] = "m" + strconv.Itoa(i+1)
	}
	if len(gs.Members) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tCLIENT\tHOST\tPARTITIONS\tMEMBER ID")
		for _, m := range gs.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", short[m.MemberID], m.ClientID, m.Host, m.Partitions, m.MemberID)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTORED\tLOG END\tLAG\tEPOCH\tLAST COMMIT\tOWNER\tTABLE")
	for _, p := range gs.Partitions {
		stored, end, age := "-", "-", "-"
		if p.Stored && p.StoredOffset >= 0 {
			stored = strconv.FormatInt(p.StoredOffset, 10)
		} else if p.Stored {
			stored = "claimed"
		}
		if p.LogEnd >= 0 {
			end = strconv.FormatInt(p.LogEnd, 10)
		}
		if p.LastCommit != nil {
			age = fmtAge(p.LastCommitAge) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Topic, p.Partition, stored, end, p.Lag, p.Epoch, age, orDash(short[p.Owner]), p.Table)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tDEAD LETTERS\tNEWEST\tBY REASON")
	for _, d := range gs.DeadLetters {
		var rs []string
		for r, n := range d.Reasons {
			rs = append(rs, fmt.Sprintf("%s %d", r, n))
		}
		sort.Strings(rs)
		newest := "-"
		if d.Newest != nil {
			newest = fmtAge(gs.Time.Sub(*d.Newest).Seconds()) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", d.Table, d.Total, newest, orDash(strings.Join(rs, ", ")))
	}
	tw.Flush()
	if len(gs.Instances) > 0 {
		fmt.Fprintln(w)
		for _, in := range gs.Instances {
			switch {
			case in.Error != "":
				fmt.Fprintf(w, "instance %s: unreachable: %s\n", in.Addr, in.Error)
			case in.Ready:
				fmt.Fprintf(w, "instance %s: ready\n", in.Addr)
			default:
				fmt.Fprintf(w, "instance %s: NOT READY: %s\n", in.Addr, in.NotReady)
			}
			for _, s := range in.Stuck {
				fmt.Fprintf(w, "  stuck %s\n", s)
			}
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtAge words a number of seconds for a person: 4s, 3m12s, 5h02m, 3d04h.
func fmtAge(sec float64) string {
	d := time.Duration(max(sec, 0) * float64(time.Second)).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}
