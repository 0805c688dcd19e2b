package demo

import (
	"context"
	"strings"
	"testing"
)

// TestDemo runs the README's first command end to end on a small workload:
// embedded broker, private PostgreSQL, traffic with duplicates and bad
// records, the appliance, and the exactly-once verdict.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the appliance")
	}
	var out strings.Builder
	err := Run(context.Background(), Options{
		Records:    20000,
		Partitions: 3,
		Topic:      "demo_test",
		Seed:       7,
		DupRatio:   0.05,
		BadRatio:   0.01,
		MaxConns:   2,
	}, &out)
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verdict             PASS", "target rows", "dead letters", "MB/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}

// TestDemoRegistryFormats runs the demo in each Schema Registry format:
// loadgen registers the reference schema in the embedded registry and
// produces Confluent-framed records (with bad records of the registry
// kinds), the appliance fetches the schema and decodes them, and verify
// checks every value exactly once.
func TestDemoRegistryFormats(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the appliance")
	}
	for _, format := range []string{"avro", "protobuf", "json_schema"} {
		t.Run(format, func(t *testing.T) {
			var out strings.Builder
			err := Run(context.Background(), Options{
				Records:    5000,
				Partitions: 2,
				Topic:      "demo_" + format,
				Seed:       11,
				DupRatio:   0.05,
				BadRatio:   0.02,
				MaxConns:   2,
				Format:     format,
			}, &out)
			t.Log(out.String())
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"verdict             PASS", "schema id"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("summary lacks %q", want)
				}
			}
		})
	}
}

// TestDemoCDC runs `sluice demo --workload cdc` on a small stream: Debezium
// change events of an orders table land in a format: debezium table that
// must end equal to the source's final state.
func TestDemoCDC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the appliance")
	}
	// json: Debezium's JsonConverter; avro: Confluent's AvroConverter with
	// the embedded Schema Registry (converter: avro).
	for _, format := range []string{"json", "avro"} {
		t.Run(format, func(t *testing.T) {
			var out strings.Builder
			err := Run(context.Background(), Options{Workload: "cdc", Format: format, Records: 5000, Partitions: 3, Seed: 3, DupRatio: 0.02, MaxConns: 2}, &out)
			t.Log(out.String())
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"PASS: the target equals the source", "tombstones", "replay", "shop.public.orders"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("summary lacks %q", want)
				}
			}
		})
	}
	var out strings.Builder
	if err := Run(context.Background(), Options{Workload: "cdc", Format: "protobuf", Records: 10}, &out); err == nil || !strings.Contains(err.Error(), "use --format json or avro") {
		t.Errorf("the cdc workload in protobuf: %v, want a refusal naming json and avro", err)
	}
}
