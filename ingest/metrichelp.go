package ingest

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// metricHelp is the # HELP text of every metric family Sluice exposes.
// A family missing here is caught by TestMetricsMeanWhatTheySay.
var metricHelp = map[string]string{
	"sluice_records_consumed_total":       "Kafka records fetched and decoded (data records; transaction markers are not counted).",
	"sluice_bytes_consumed_total":         "Bytes of the keys and values of the records consumed (headers not counted).",
	"sluice_rows_written_total":           "Rows that landed in the target table (inserted, or updated under on_conflict update).",
	"sluice_rows_deduplicated_total":      "Tuples dropped because an earlier record in the same batch had the same key.",
	"sluice_rows_ignored_total":           "Tuples kept out of the target because the stored row wins (key exists under on_conflict ignore; stored row newer under update).",
	"sluice_rows_deleted_total":           "Stored rows deleted by tombstones (deletes: true) and Debezium delete events.",
	"sluice_change_events_skipped_total":  "Change events that make no row, by op: Debezium messages and the tombstones after deletes (skip), truncates without truncate: true.",
	"sluice_dead_letters_total":           "Records stored in the dead-letter table instead of the target, by reason.",
	"sluice_batches_committed_total":      "Batch transactions committed (rows, dead letters and offsets together).",
	"sluice_batch_retries_total":          "Batches written again after a failed write (deadlocks and key races retried within one write are not counted).",
	"sluice_fenced_total":                 "Partitions of batches dropped because the partition has a newer owner (another instance claimed it, or sluice reset-offset moved it): one per partition of each such batch.",
	"sluice_rebalances_total":             "Consumer group rebalances this instance took part in.",
	"sluice_fetch_pauses_total":           "Times fetching was paused because the in-flight byte budget was used up.",
	"sluice_fetch_records_read_total":     "Records the client read from the brokers; above sluice_records_consumed_total by what it read twice (batches dropped by a pause or a rebalance and fetched again) and by transaction markers and aborted transactions' records, which are never consumed.",
	"sluice_fetch_wire_bytes_total":       "Bytes of record batches as fetched, compressed where the producer compressed them.",
	"sluice_fetch_decoded_bytes_total":    "Bytes of record batches once decompressed.",
	"sluice_probed_keys_total":            "Keys looked up in a target's unique index by the direct path, in the attempt of each batch that committed.",
	"sluice_chunk_retries_total":          "Chunks of a direct COPY copied again without keys another transaction committed meanwhile, in the attempt of each batch that committed.",
	"sluice_batch_rows":                   "Rows per committed batch.",
	"sluice_copy_duration_seconds":        "Time to COPY a batch into its staging or target table.",
	"sluice_merge_duration_seconds":       "Time to merge a batch from staging into the target and store its dead letters.",
	"sluice_commit_duration_seconds":      "Time of a batch's COMMIT.",
	"sluice_end_to_end_seconds":           "Time from a record's Kafka timestamp to the commit of its row.",
	"sluice_inflight_bytes":               "Bytes of fetched records and encoded rows not yet committed.",
	"sluice_key_filter_bytes":             "Bytes the keyed tables' filters of recently committed keys hold together (at most batch.max_inflight_bytes/16).",
	"sluice_consumer_lag":                 "Records between the committed offset and the high watermark of an owned partition.",
	"sluice_table_lag":                    "Sum of sluice_consumer_lag over the owned partitions feeding a table.",
	"sluice_partition_halted":             "1 while an owned partition is halted (offset out of range or data loss) until an operator resets it.",
	"sluice_missing_topics":               "Configured topics that do not exist on the cluster (nothing is consumed from them).",
	"sluice_partitions_assigned":          "Partitions this instance owns now.",
	"sluice_schema_registry_errors_total": "Failed Schema Registry requests for a writer schema (each is retried; the partition waits).",
	"sluice_partition_names_taken":        "Partitions of a partitioned table the last maintenance round could not make: their names, and the alternatives, are taken by relations that are no partitions of the table (the log names them and the fix).",
	"sluice_partition_default_rows":       "Rows in a partitioned table's default partition at the last maintenance round: rows no partition held and none could be made for (up to 1e6).",
	"sluice_partition_expired_rows_total": "Rows older than the retention deleted from a partitioned table's default partition: committed by a batch in flight while a round dropped their partition.",
	"sluice_build_info":                   "Always 1; the labels give the version, the VCS revision and the Go version of this binary.",
	"go_":                                 "Go runtime metric.",
	"process_":                            "Process metric.",
	"sluice_stuck":                        "1 while a table's writes have failed for stuck.after with an error retrying cannot fix (permission denied, table or column gone, disk full); /readyz says why.",
}

// writeWithHelp copies Prometheus text from src to w, completing the
// empty "# HELP name" lines VictoriaMetrics/metrics writes with the text
// from metricHelp.
func writeWithHelp(w io.Writer, src []byte) {
	bw := bufio.NewWriter(w)
	for len(src) > 0 {
		line := src
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i+1], src[i+1:]
		} else {
			src = nil
		}
		if name, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok {
			name = bytes.TrimRight(name, "\n")
			if bytes.IndexByte(name, ' ') < 0 {
				if h := helpFor(string(name)); h != "" {
					bw.WriteString("# HELP " + string(name) + " " + h + "\n")
					continue
				}
			}
		}
		bw.Write(line)
	}
	bw.Flush()
}

func helpFor(name string) string {
	if h, ok := metricHelp[name]; ok {
		return h
	}
	for _, p := range []string{"go_", "process_"} {
		if strings.HasPrefix(name, p) {
			return metricHelp[p]
		}
	}
	return ""
}

// writeFamily writes the # HELP and # TYPE lines of a family rendered by
// hand.
func writeFamily(w io.Writer, name, typ string) {
	io.WriteString(w, "# HELP "+name+" "+metricHelp[name]+"\n# TYPE "+name+" "+typ+"\n")
}
