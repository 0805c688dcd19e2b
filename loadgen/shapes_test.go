package loadgen

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// version identifies one version of an event.
type version struct {
	id  [16]byte
	ver int64
}

// TestGeneratorNullKeys: null-keyed records have no key, spread evenly over
// the partitions, and a re-send never lands where its original did.
func TestGeneratorNullKeys(t *testing.T) {
	o := Options{Seed: 11, Records: 20000, Keys: KeysNull, DupRatio: 0.1, UpdateRatio: 0.1, Bad: allBad(0.01), MaxValueBytes: 4096}
	for _, n := range []int{1, 2, 3, 8} {
		g := NewGenerator(o)
		var r Rec
		home := map[version]int{} // partition of each version's first send
		perPart := make([]int, n)
		dups := 0
		for g.Next(&r) {
			if r.Key != nil {
				t.Fatalf("record %d (%s) has key %q, want none", r.Index, r.Kind, r.Key)
			}
			p := r.Partition(n)
			if p < 0 || p >= n {
				t.Fatalf("record %d: partition %d of %d", r.Index, p, n)
			}
			if hp := hintPartition(r.partitionHint(), n); hp != p || r.partitionHint() < 0 {
				t.Fatalf("record %d: the producer's hint %d gives partition %d, want %d", r.Index, r.partitionHint(), hp, p)
			}
			perPart[p]++
			if r.Kind.Bad() {
				continue
			}
			v := version{r.EventID, r.Version}
			orig, seen := home[v]
			switch {
			case r.Kind == KindDup && !seen:
				t.Fatalf("dup record %d re-sends version %d of an event never sent", r.Index, r.Version)
			case r.Kind == KindDup && n > 1 && p == orig:
				t.Fatalf("dup record %d landed on partition %d, like its original", r.Index, p)
			case r.Kind == KindDup:
				dups++
			default:
				home[v] = p
			}
		}
		if dups < 1500 {
			t.Fatalf("%d partitions: only %d dups", n, dups)
		}
		for p, c := range perPart {
			if want := 20000 / n; c < want*9/10 || c > want*11/10 {
				t.Errorf("%d partitions: partition %d got %d records, want about %d", n, p, c, want)
			}
		}
	}
}

// TestGeneratorOtherFieldKeys: the key is the event's tenant_id, so an
// event's re-sends and updates carry its key.
func TestGeneratorOtherFieldKeys(t *testing.T) {
	o := Options{Seed: 12, Records: 5000, Keys: KeysOtherField, DupRatio: 0.1, UpdateRatio: 0.2, Bad: allBad(0.01), MaxValueBytes: 4096}
	g := NewGenerator(o)
	var r Rec
	keyOf := map[[16]byte]string{}
	keys := map[string]int{}
	for g.Next(&r) {
		if _, err := strconv.Atoi(string(r.Key)); err != nil {
			t.Fatalf("record %d (%s): key %q is not a tenant id", r.Index, r.Kind, r.Key)
		}
		keys[string(r.Key)]++
		if r.Kind.Bad() {
			continue
		}
		fs, err := parseObject(r.Value, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tenant := findField(fs, "tenant_id"); !bytes.Equal(tenant, r.Key) {
			t.Fatalf("record %d: key %q, tenant_id %s", r.Index, r.Key, tenant)
		}
		if k, ok := keyOf[r.EventID]; ok && k != string(r.Key) {
			t.Fatalf("record %d (%s): key %q, its event was sent with %q", r.Index, r.Kind, r.Key, k)
		}
		keyOf[r.EventID] = string(r.Key)
	}
	if len(keys) < 1000 || len(keys) > 5000 {
		t.Fatalf("%d distinct keys in 5000 records, want many shared ones", len(keys))
	}
	bad := o
	bad.Schema = SchemaNarrow
	if err := bad.EnsureDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "tenant_id") {
		t.Fatalf("other-field keys for the narrow schema: %v", err)
	}
}

// TestGeneratorUpdates: an update is a newer version of an earlier good
// event: same id and unchanging fields, new ts and amount (narrow: value),
// version 1 + its index; a dup of it re-sends its bytes.
// TestGeneratorUpdateRatio: the stream holds the update fraction asked
// for, up to the 0.9 `sluice bench` accepts, and not fresh events in
// place of updates that found no earlier event to revise.
func TestGeneratorUpdateRatio(t *testing.T) {
	for _, u := range []float64{0.01, 0.3, 0.5, 0.9} {
		const n = 100_000
		g := NewGenerator(Options{Seed: 1, Schema: SchemaReference, DupRatio: 0.01, UpdateRatio: u})
		var r Rec
		updates := 0
		for i := range int64(n) {
			g.At(i, &r)
			if r.Kind == KindUpdate {
				updates++
			}
		}
		if got := float64(updates) / n; got < u-0.01 || got > u+0.01 {
			t.Errorf("update ratio %v: %.3f of the records are updates", u, got)
		}
	}
}

func TestGeneratorUpdates(t *testing.T) {
	for _, tc := range []struct {
		schema  string
		changed []string
	}{
		{SchemaReference, []string{"ts", "amount", "version"}},
		{SchemaNarrow, []string{"ts", "value", "version"}},
	} {
		o := Options{Seed: 13, Schema: tc.schema, Records: 10000, DupRatio: 0.05, UpdateRatio: 0.3, KeyCardinality: 0}
		g := NewGenerator(o)
		var r Rec
		first := map[[16]byte][]byte{} // an event's first version
		sent := map[version][]byte{}
		var n KindCounts
		changed := map[string]int64{}
		for g.Next(&r) {
			n[r.Kind]++
			fs, err := parseObject(r.Value, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v := findField(fs, "version"); string(v) != strconv.FormatInt(r.Version, 10) {
				t.Fatalf("%s record %d: version field %s, Rec.Version %d", tc.schema, r.Index, v, r.Version)
			}
			key := version{r.EventID, r.Version}
			switch r.Kind {
			case KindGood:
				if r.Version != r.Index+1 {
					t.Fatalf("good record %d has version %d", r.Index, r.Version)
				}
				first[r.EventID] = bytes.Clone(r.Value)
			case KindUpdate:
				if r.Version != r.Index+1 {
					t.Fatalf("update %d has version %d", r.Index, r.Version)
				}
				orig, ok := first[r.EventID]
				if !ok {
					t.Fatalf("update %d revises an event never sent", r.Index)
				}
				ofs, _ := parseObject(orig, nil)
				for _, f := range fs {
					same := bytes.Equal(f.val, findField(ofs, string(f.key)))
					if !same {
						changed[string(f.key)]++
					}
					if !same && !slices.Contains(tc.changed, string(f.key)) {
						t.Fatalf("%s update %d: field %s changed\n%s\n%s", tc.schema, r.Index, f.key, orig, r.Value)
					}
				}
			case KindDup:
				if !bytes.Equal(sent[key], r.Value) {
					t.Fatalf("dup %d does not re-send version %d of its event", r.Index, r.Version)
				}
			}
			if r.Kind != KindDup {
				sent[key] = bytes.Clone(r.Value)
			}
		}
		if got := float64(n[KindUpdate]) / 10000; got < 0.27 || got > 0.33 {
			t.Fatalf("%s: %.3f of the records are updates, want about 0.3 (%v)", tc.schema, got, n)
		}
		// The changing fields change (but for the odd coincidence).
		for _, f := range tc.changed {
			if changed[f] < n[KindUpdate]*99/100 {
				t.Errorf("%s: %s changed in %d of %d updates", tc.schema, f, changed[f], n[KindUpdate])
			}
		}
	}
	wide := Options{Schema: SchemaWide, UpdateRatio: 0.1}
	if err := wide.EnsureDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "keyless") {
		t.Fatalf("updates for the wide schema: %v", err)
	}
	for _, o := range []Options{{Keys: "uuid"}, {UpdateRatio: 1.5}, {DupRatio: 0.6, UpdateRatio: 0.5}} {
		if err := o.EnsureDefaults().Validate(); err == nil {
			t.Errorf("options %+v were accepted", o)
		}
	}
}

func TestManifestKeepsShape(t *testing.T) {
	o := Options{Seed: 5, Records: 100, Keys: KeysNull, UpdateRatio: 0.25, DupRatio: 0.1}
	path := filepath.Join(t.TempDir(), "m.json")
	if err := WriteManifest(path, NewManifest(o, Stats{Records: 100}, nil)); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Options.Keys != KeysNull || m.Options.UpdateRatio != 0.25 {
		t.Fatalf("manifest options %+v lost the shape", m.Options)
	}
}

// landSpread lands records partition by partition, the last partition
// first: an order in which offsets say nothing about versions.
func landSpread(a *appliance, recs []*kgo.Record) {
	byPart := map[int32][]*kgo.Record{}
	var parts []int32
	for _, r := range recs {
		if byPart[r.Partition] == nil {
			parts = append(parts, r.Partition)
		}
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	slices.Sort(parts)
	slices.Reverse(parts)
	for _, p := range parts {
		a.land(byPart[p])
	}
}

// TestVerifyShapes lands each workload shape the way the appliance must
// for the table's policy and verifies it, and checks that verify tells the
// policies apart.
func TestVerifyShapes(t *testing.T) {
	addrs := testBroker(t)
	ctx := context.Background()
	for n, tc := range []struct {
		name  string
		o     Options
		guard string // the landing's guard under update
	}{
		{"event-id", Options{Keys: KeysEventID}, "src_offset"},
		{"other-field", Options{Keys: KeysOtherField}, "src_offset"},
		{"null", Options{Keys: KeysNull}, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Seed, o.Records, o.Topic, o.Partitions = int64(50+n), 3000, "shapes_"+strings.ReplaceAll(tc.name, "-", "_"), 3
			o.DupRatio, o.UpdateRatio, o.Bad, o.MaxValueBytes = 0.05, 0.3, allBad(0.01), 8192
			stats, err := Produce(ctx, addrs, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			recs := consume(t, addrs, o.Topic, true, int(stats.Committed.Total()))
			if tc.o.Keys == KeysNull {
				// Every record on the partition its Rec chose.
				g := NewGenerator(o)
				var r Rec
				parts := map[string][]int{} // by value: a dup shares its original's
				for g.Next(&r) {
					parts[string(r.Value)] = append(parts[string(r.Value)], r.Partition(3))
				}
				for _, kr := range recs {
					if kr.Key != nil || !slices.Contains(parts[string(kr.Value)], int(kr.Partition)) {
						t.Fatalf("record at partition %d offset %d (key %q): the generator put it on %v", kr.Partition, kr.Offset, kr.Key, parts[string(kr.Value)])
					}
				}
			}
			urlIgnore := testDB(t, "shapes_"+strings.ReplaceAll(tc.name, "-", "_")+"_ignore")
			ai := newAppliance(t, urlIgnore, o, "public.events")
			urlUpdate := testDB(t, "shapes_"+strings.ReplaceAll(tc.name, "-", "_")+"_update")
			au := newAppliance(t, urlUpdate, o, "public.events")
			au.guard = tc.guard
			if tc.o.Keys == KeysNull {
				landSpread(ai, recs)
				landSpread(au, recs)
			} else {
				ai.land(recs) // per partition in offset order, as consumed
				au.land(recs)
			}
			guard := "offset"
			if tc.guard == "version" {
				guard = "version"
			}
			rep := mustVerify(t, urlIgnore, VerifyOptions{Gen: o, Stats: &stats})
			if !rep.OK() || rep.Rows == 0 || rep.DeadLettersByKind.Total() != rep.Committed.Bad() || rep.Committed[KindUpdate] == 0 {
				t.Fatalf("ignore:\n%s", summary(rep))
			}
			rep = mustVerify(t, urlUpdate, VerifyOptions{Gen: o, Stats: &stats, OnConflict: "update", Guard: guard})
			if !rep.OK() || rep.Rows == 0 {
				t.Fatalf("update, guard %s:\n%s", guard, summary(rep))
			}
			// The other policy's rows are caught (for null keys under
			// ignore any version is accepted: nothing to catch there).
			rep = mustVerify(t, urlIgnore, VerifyOptions{Gen: o, Stats: &stats, OnConflict: "update", Guard: guard})
			if rep.OK() || rep.WrongValue == 0 {
				t.Fatalf("first-write rows verified as update:\n%s", summary(rep))
			}
			if tc.o.Keys != KeysNull {
				rep = mustVerify(t, urlUpdate, VerifyOptions{Gen: o, Stats: &stats})
				if rep.OK() || rep.WrongValue == 0 {
					t.Fatalf("last-write rows verified as ignore:\n%s", summary(rep))
				}
				return
			}
			if _, err := Verify(ctx, urlUpdate, VerifyOptions{Gen: o, Stats: &stats, OnConflict: "update"}); err == nil || !strings.Contains(err.Error(), "guard: version") {
				t.Fatalf("update of null-keyed records by offset: %v", err)
			}
			// A dead letter with a changed key is caught by value matching.
			au.exec(`UPDATE sluice.dead_letters SET key = '\x31' WHERE "offset" = (SELECT min("offset") FROM sluice.dead_letters)`)
			rep = mustVerify(t, urlUpdate, VerifyOptions{Gen: o, Stats: &stats, OnConflict: "update", Guard: guard})
			if rep.OK() || rep.DeadLetterWrongValue == 0 {
				t.Fatalf("a dead letter with another key:\n%s", summary(rep))
			}
		})
	}
}
