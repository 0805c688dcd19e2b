"""Produce Debezium change events as Confluent's AvroConverter frames them,
with Confluent's own Python serializer, for Sluice's interoperability test
(internal/interop, TestDebeziumAvroPython).

Usage: debezium_avro.py BROKERS REGISTRY_URL TOPIC OUTDIR

The legacy AvroProducer (confluent_kafka.avro, python3-avro) registers the
Envelope under TOPIC-value and the Key under TOPIC-key and frames every key
and value. The events, all on one partition in commit order: creates
(snapshot reads first), updates (some sending the TOAST placeholder for
name), deletes (with before, or with before null so that the record key
names the row) each followed by its tombstone, and a message.

Written to OUTDIR/expected.jsonl: the source table's final state, one JSON
object per row with the columns as PostgreSQL prints them. The last line of
stdout is a JSON summary: produced.
"""

import datetime
import decimal
import json
import os
import sys

from confluent_kafka import avro
from confluent_kafka.avro import AvroProducer

ROW = {
    "type": "record", "name": "Value", "connect.name": "shop.public.orders.Value",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": ["null", "string"], "default": None},
        {"name": "qty", "type": {"type": "int", "connect.type": "int16"}},
        {"name": "price", "type": ["null", {
            "type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
            "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
            "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}], "default": None},
        {"name": "updated_at", "type": ["null", {
            "type": "long", "connect.version": 1, "connect.name": "io.debezium.time.MicroTimestamp"}], "default": None},
        {"name": "ship_date", "type": ["null", {
            "type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}], "default": None},
        {"name": "created_tz", "type": ["null", {
            "type": "string", "connect.version": 1, "connect.name": "io.debezium.time.ZonedTimestamp"}], "default": None},
    ],
}

ENVELOPE = {
    "type": "record", "name": "Envelope", "namespace": "shop.public.orders",
    "connect.version": 1, "connect.name": "shop.public.orders.Envelope",
    "fields": [
        {"name": "before", "type": ["null", ROW], "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None},
        {"name": "source", "type": {
            "type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql",
            "connect.name": "io.debezium.connector.postgresql.Source",
            "fields": [
                {"name": "version", "type": "string"},
                {"name": "connector", "type": "string"},
                {"name": "name", "type": "string"},
                {"name": "ts_ms", "type": "long"},
                {"name": "snapshot", "type": [{
                    "type": "string", "connect.version": 1,
                    "connect.parameters": {"allowed": "true,last,false,incremental"},
                    "connect.default": "false", "connect.name": "io.debezium.data.Enum"}, "null"], "default": "false"},
                {"name": "db", "type": "string"},
                {"name": "schema", "type": "string"},
                {"name": "table", "type": "string"},
                {"name": "txId", "type": ["null", "long"], "default": None},
                {"name": "lsn", "type": ["null", "long"], "default": None},
            ]}},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": None},
        {"name": "transaction", "type": ["null", {
            "type": "record", "name": "block", "namespace": "event", "connect.version": 1,
            "connect.name": "event.block",
            "fields": [
                {"name": "id", "type": "string"},
                {"name": "total_order", "type": "long"},
                {"name": "data_collection_order", "type": "long"},
            ]}], "default": None},
    ],
}

KEY = {
    "type": "record", "name": "Key", "namespace": "shop.public.orders",
    "connect.name": "shop.public.orders.Key",
    "fields": [{"name": "id", "type": "long"}],
}

PLACEHOLDER = "__debezium_unavailable_value"


def main():
    brokers, registry, topic, outdir = sys.argv[1:5]
    producer = AvroProducer(
        {"bootstrap.servers": brokers, "schema.registry.url": registry, "linger.ms": 5},
        default_key_schema=avro.loads(json.dumps(KEY)),
        default_value_schema=avro.loads(json.dumps(ENVELOPE)))
    state = {}
    produced = 0
    lsn = 1000

    def row(i, name, qty):
        return {
            "id": i, "name": name, "qty": qty,
            # Negative for the first few. Exactly two decimals: python3-avro
            # writes a Decimal's digits as the unscaled value whatever its
            # exponent (Decimal("22") would be 0.22 at scale 2).
            "price": (decimal.Decimal(qty * 125 - 300) / 100).quantize(decimal.Decimal("0.01")),
            "updated_at": 1_795_773_600_000_000 + i * 1_000_001,
            "ship_date": 20_000 + i,
            "created_tz": "2026-11-27T10:%02d:00.5Z" % (i % 60),
        }

    def send(op, before, after, key_id):
        nonlocal produced, lsn
        lsn += 10
        value = {
            "before": before, "after": after, "op": op, "ts_ms": 1_795_773_600_100 + lsn,
            "source": {"version": "2.7.0.Final", "connector": "postgresql", "name": "shop",
                       "ts_ms": 1_795_773_600_000 + lsn, "snapshot": "true" if op == "r" else "false",
                       "db": "shop", "schema": "public", "table": "orders", "txId": lsn // 10, "lsn": lsn},
            "transaction": None if op == "r" else {"id": "%d:%d" % (lsn // 10, lsn), "total_order": 1,
                                                   "data_collection_order": 1},
        }
        producer.produce(topic=topic, key={"id": key_id}, value=value, partition=0)
        produced += 1

    def tombstone(key_id):
        nonlocal produced
        producer.produce(topic=topic, key={"id": key_id}, value=None, partition=0)
        produced += 1

    for i in range(1, 41):
        r = row(i, "name-%d %s" % (i, "Zoë \"q\"\n" if i % 7 == 0 else ""), i)
        send("r" if i <= 10 else "c", None, r, i)
        state[i] = r
    for i in range(2, 41, 2):
        old = state[i]
        new = row(i, old["name"], old["qty"] * 10)
        sent = dict(new)
        if i % 4 == 0:
            sent["name"] = PLACEHOLDER  # TOASTed and untouched: the stored name stays
        send("u", None, sent, i)
        state[i] = new
    for i in range(3, 41, 3):
        if i % 2:
            send("d", state[i], None, i)
        else:
            send("d", None, None, i)  # REPLICA IDENTITY DEFAULT without the key: the record key names it
        tombstone(i)
        del state[i]
    send("m", None, None, 0)
    producer.flush(30)

    with open(os.path.join(outdir, "expected.jsonl"), "w") as f:
        for i, r in sorted(state.items()):
            f.write(json.dumps({
                "id": str(r["id"]), "name": r["name"], "qty": str(r["qty"]),
                "price": str(r["price"].quantize(decimal.Decimal("0.01"))),
                "updated_at": str(r["updated_at"]),
                "ship_date": str(r["ship_date"]),
                "created_tz": str(int((datetime.datetime.fromisoformat(r["created_tz"][:-1]).replace(
                    tzinfo=datetime.timezone.utc).timestamp()) * 1_000_000)),
            }) + "\n")
    print(json.dumps({"produced": produced}))


if __name__ == "__main__":
    main()
