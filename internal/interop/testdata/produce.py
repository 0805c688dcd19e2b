"""Produce records with Confluent's own Python serializers, for Sluice's
interoperability test (internal/interop).

Usage: produce.py FORMAT BROKERS REGISTRY_URL TOPIC RECORDS SEED OUTDIR

FORMAT is avro, protobuf or json_schema. The serializer registers its schema
in the registry (auto.register.schemas) under TOPIC-value and frames every
value; confluent_kafka (librdkafka) produces them, keyed by the record's id.
About one record in twelve re-sends an earlier record exactly (same key,
same value). A few bad records, of kinds no serializer prevents, are sent
with a plain producer.

Written to OUTDIR:
  expected.jsonl  one JSON object per expected row, column name -> value as
                  Python computed it (see internal/interop/doc.go for the
                  conventions per column type);
  bad.jsonl       one JSON object per bad record: kind, the dead-letter
                  reason Sluice should give, partition, offset, value (hex,
                  or null for a tombstone).
The last line of stdout is a JSON summary: produced, unique, duplicates,
bad.

Runs with Debian's python3 and its packages python3-confluent-kafka (1.7),
python3-avro, python3-protobuf and python3-jsonschema.
"""

import base64
import datetime
import decimal
import json
import os
import random
import struct
import sys
import uuid

from confluent_kafka import Producer, SerializingProducer
from confluent_kafka.serialization import StringSerializer

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)

NAMES = [
    "plain",
    "",
    "Zoë Ångström",
    "東京タワー",
    "emoji 😀 and 𝄞",
    'quote " backslash \\ slash /',
    "tab\tnewline\ncr\r",
    "x" * 300,
    "\u007f\u0080\u07ff\u0800\uffff",
]
TAGS = ["a", "bb", "ünï", "😀", 'q"uote', "back\\slash", ""]
CITIES = ["Zürich", "Lyon", "São Paulo", "Kyōto", "N/A"]


def f32(x):
    """The float32 nearest x, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def rfc3339_short(dt):
    """rfc3339 without trailing zeros in the fraction, as Sluice writes an
    Avro timestamp inside JSON (Avro defines no JSON text for it)."""
    date, frac = rfc3339(dt)[:-1].split(".")
    frac = frac.rstrip("0")
    return date + ("." + frac if frac else "") + "Z"


def rfc3339(dt):
    """An aware datetime as RFC 3339 in UTC with microseconds."""
    dt = dt.astimezone(UTC)
    return "%04d-%s" % (dt.year, dt.strftime("%m-%dT%H:%M:%S.%fZ"))  # %Y does not pad year 1


class Gen:
    """Random values shared by the three formats."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def pick(self, xs):
        return self.r.choice(xs)

    def int_in(self, lo, hi, extremes=()):
        if extremes and self.r.random() < 0.15:
            return self.pick(list(extremes))
        return self.r.randint(lo, hi)

    def double(self):
        if self.r.random() < 0.3:
            return self.pick([0.0, -0.0, 0.1, -2.5, 1e300, -1e-300, 5e-324,
                              1.7976931348623157e308, 123456789.125, 1e15, 1e16, 2.0 ** 53 + 2])
        return self.r.uniform(-1e6, 1e6)

    def single(self):
        if self.r.random() < 0.3:
            return self.pick([0.0, -0.0, 0.1, 3.4028234663852886e38, 1.17549435e-38, 16777217.0, -1.5])
        return self.r.uniform(-1e4, 1e4)

    def raw(self, n_max):
        return bytes(self.r.getrandbits(8) for _ in range(self.r.randint(0, n_max)))

    def ts_millis(self):
        """An aware datetime with millisecond precision, years 1 to 9999."""
        if self.r.random() < 0.1:
            return self.pick([datetime.datetime(1, 1, 1, tzinfo=UTC),
                              datetime.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
                              datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
                              EPOCH])
        ms = self.r.randint(-2_208_988_800_000, 4_102_444_800_000)  # 1900 to 2100
        return EPOCH + datetime.timedelta(milliseconds=ms)

    def ts_micros(self):
        """An aware datetime with microsecond precision."""
        return self.ts_millis() + datetime.timedelta(microseconds=self.r.randint(0, 999))

    def date(self):
        if self.r.random() < 0.1:
            return self.pick([datetime.date(1, 1, 1), datetime.date(9999, 12, 31), datetime.date(1970, 1, 1)])
        return datetime.date(1970, 1, 1) + datetime.timedelta(days=self.r.randint(-30000, 30000))

    def price(self):
        """A Decimal with two places and at most 12 digits."""
        if self.r.random() < 0.1:
            cents = self.pick([0, -1, 1, 99_999_999_999_9, -99_999_999_999_9, 10 ** 11])
        else:
            cents = self.r.randint(-10 ** 9, 10 ** 9)
        return decimal.Decimal(cents).scaleb(-2)

    def uid(self):
        return uuid.UUID(int=self.r.getrandbits(128), version=4)

    def counts(self):
        keys = self.r.sample(["a", "b", "c", "ключ"], self.r.randint(0, 3))
        return {k: self.int_in(-2 ** 63, 2 ** 63 - 1, (-2 ** 63, 2 ** 63 - 1, 0)) for k in keys}

    def maybe(self, f):
        return None if self.r.random() < 0.3 else f()


# Each format builds, for record number i with key id, the object its
# serializer takes and the expected row. mutate(obj, how) makes the bad
# variants the serializer still accepts.


class Avro:
    schema = {
        "type": "record", "name": "Event", "namespace": "interop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "qty", "type": "long"},
            {"name": "big", "type": "long"},
            {"name": "ratio", "type": "double"},
            {"name": "score", "type": "float"},
            {"name": "active", "type": "boolean"},
            {"name": "payload", "type": "bytes"},
            {"name": "checksum", "type": {"type": "fixed", "name": "Checksum", "size": 4}},
            {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "maybe", "type": ["null", "long"], "default": None},
            {"name": "address", "type": {
                "type": "record", "name": "Address", "fields": [
                    {"name": "street", "type": "string"},
                    {"name": "city", "type": "string"},
                    {"name": "zip", "type": "int"},
                    {"name": "lat", "type": "double"},
                    {"name": "unit", "type": ["null", "int"]},
                    {"name": "since", "type": {"type": "int", "logicalType": "date"}},
                    {"name": "kind", "type": "Color"},
                    {"name": "blob", "type": "bytes"},
                ]}},
            {"name": "items", "type": {"type": "array", "items": {
                "type": "record", "name": "Item", "fields": [
                    {"name": "sku", "type": "string"},
                    {"name": "n", "type": "int"},
                    {"name": "w", "type": ["null", "double"]},
                    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                    {"name": "cost", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 3}},
                ]}}},
            {"name": "mixed", "type": ["null", "long", "string"]},
            {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "tod", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "amount8", "type": {"type": "fixed", "name": "Amount", "size": 8,
                                         "logicalType": "decimal", "precision": 18, "scale": 4}},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
            {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
        ],
    }

    def __init__(self, brokers, registry, topic):
        from confluent_kafka import avro
        self.topic = topic
        self.value_schema = avro.loads(json.dumps(self.schema))
        self.producer = avro.AvroProducer(
            {"bootstrap.servers": brokers, "schema.registry.url": registry,
             "enable.idempotence": True, "linger.ms": 5},
            default_value_schema=self.value_schema,
            default_key_schema=avro.loads('"string"'))

    def build(self, g, i, id_):
        addr = {
            "street": "%d %s" % (g.r.randint(1, 999), g.pick(["Main St", "Rue de la Paix", "Hauptstraße"])),
            "city": g.pick(CITIES),
            "zip": g.int_in(-2 ** 31, 2 ** 31 - 1, (-2 ** 31, 2 ** 31 - 1, 0)),
            "lat": g.pick([0.5, -33.8688, 47.3769, 90.0, 1e-7]),
            "unit": g.maybe(lambda: g.r.randint(0, 500)),
            "since": g.date(),
            "kind": g.pick(["RED", "GREEN", "BLUE"]),
            "blob": g.raw(6),
        }
        items = [{"sku": g.pick(TAGS), "n": g.r.randint(-5, 5), "w": g.maybe(g.double), "at": g.ts_micros(),
                  "cost": decimal.Decimal(g.r.randint(-10 ** 9 + 1, 10 ** 9 - 1)).scaleb(-3)}
                 for _ in range(g.r.randint(0, 3))]
        tod = datetime.time(g.r.randint(0, 23), g.r.randint(0, 59), g.r.randint(0, 59), 1000 * g.pick([0, 1, 500, 999]))
        obj = {
            "id": id_,
            "name": g.pick(NAMES),
            "qty": g.int_in(-2 ** 31, 2 ** 31 - 1, (-2 ** 31, 2 ** 31 - 1)),
            "big": g.int_in(-2 ** 63, 2 ** 63 - 1, (-2 ** 63, 2 ** 63 - 1, 0)),
            "ratio": g.double(),
            "score": g.single(),
            "active": g.r.random() < 0.5,
            "payload": g.raw(24),
            "checksum": bytes(g.r.getrandbits(8) for _ in range(4)),
            "color": g.pick(["RED", "GREEN", "BLUE"]),
            "tags": [g.pick(TAGS) for _ in range(g.r.randint(0, 3))],
            "counts": g.counts(),
            "note": g.maybe(lambda: g.pick(NAMES)),
            "maybe": g.maybe(lambda: g.int_in(-2 ** 63, 2 ** 63 - 1, (-2 ** 63, 0))),
            "address": addr,
            "ts": g.ts_millis(),
            "day": g.date(),
            "price": g.price(),
            "uid": str(g.uid()),
            "items": items,
            "mixed": g.pick([None, g.int_in(-2 ** 63, 2 ** 63 - 1), g.pick(NAMES)]),
            "ts_us": g.ts_micros(),
            "tod": tod,
            "amount8": decimal.Decimal(g.int_in(-10 ** 18 + 1, 10 ** 18 - 1, (-10 ** 18 + 1, 10 ** 18 - 1, -1, 0))).scaleb(-4),
        }
        row = {
            "id": id_, "name": obj["name"], "qty": obj["qty"], "big": obj["big"],
            "ratio": obj["ratio"], "score": f32(obj["score"]), "active": obj["active"],
            "payload": obj["payload"].hex(), "checksum": obj["checksum"].hex(),
            "color": obj["color"], "tags": obj["tags"], "counts": obj["counts"],
            "counts_a": obj["counts"].get("a"), "note": obj["note"], "maybe": obj["maybe"],
            "address": dict(addr, since=addr["since"].isoformat(), blob=base64.b64encode(addr["blob"]).decode()),
            "items": [dict(it, at=rfc3339_short(it["at"]), cost=json.loads(str(it["cost"]))) for it in items],
            "mixed": None if obj["mixed"] is None else str(obj["mixed"]),
            "ts_us": rfc3339(obj["ts_us"]),
            # time-millis as text: HH:MM:SS and the fraction without trailing zeros.
            "tod": tod.strftime("%H:%M:%S") + ((".%03d" % (tod.microsecond // 1000)).rstrip("0") if tod.microsecond else ""),
            "amount8": str(obj["amount8"]),
            "city": addr["city"],
            "ts": rfc3339(obj["ts"]), "day": obj["day"].isoformat(),
            # python3-avro writes a Decimal's digits as the unscaled value
            # whatever its exponent: the value must carry exactly the
            # schema's scale, which Gen.price gives it.
            "price": str(obj["price"]),
            "uid": obj["uid"],
        }
        return obj, row

    def mutate(self, obj, how):
        if how == "out_of_range":
            obj["qty"] = 2 ** 40
        elif how == "nul":
            obj["name"] = "before\x00after"

    def produce(self, obj, key, cb):
        self.producer.produce(topic=self.topic, value=obj, key=key, on_delivery=cb)

    def serialize(self, obj):
        return self.producer._serializer.encode_record_with_schema(self.topic, self.value_schema, obj)


class Protobuf:
    def __init__(self, brokers, registry, topic):
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2, wrappers_pb2  # noqa: F401 (in the default pool)
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

        F = descriptor_pb2.FieldDescriptorProto
        fdp = descriptor_pb2.FileDescriptorProto(
            name="interop/event.proto", package="interop", syntax="proto3",
            dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto",
                        "google/protobuf/duration.proto", "google/protobuf/struct.proto"])

        def field(msg, name, number, typ, type_name=None, repeated=False, oneof=None, optional=False):
            f = msg.field.add(name=name, number=number, type=typ,
                              label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = type_name
            if oneof is not None:
                f.oneof_index = oneof
            if optional:
                f.proto3_optional = True
            return f

        # Event must be the file's first message: the 1.7 serializer writes
        # message indexes as unsigned varints, which readers decode as
        # zigzag; only the single index [0] (the byte 0) reads the same.
        ev = fdp.message_type.add(name="Event")
        field(ev, "id", 1, F.TYPE_INT64)
        field(ev, "name", 2, F.TYPE_STRING)
        field(ev, "qty", 3, F.TYPE_INT64)
        field(ev, "big", 4, F.TYPE_SINT64)
        field(ev, "counter", 5, F.TYPE_UINT64)
        field(ev, "ratio", 6, F.TYPE_DOUBLE)
        field(ev, "score", 7, F.TYPE_FLOAT)
        field(ev, "active", 8, F.TYPE_BOOL)
        field(ev, "payload", 9, F.TYPE_BYTES)
        field(ev, "color", 10, F.TYPE_ENUM, ".interop.Color")
        field(ev, "tags", 11, F.TYPE_STRING, repeated=True)
        field(ev, "nums", 12, F.TYPE_SINT32, repeated=True)
        entry = ev.nested_type.add(name="CountsEntry")
        entry.options.map_entry = True
        field(entry, "key", 1, F.TYPE_STRING)
        field(entry, "value", 2, F.TYPE_INT64)
        field(ev, "counts", 13, F.TYPE_MESSAGE, ".interop.Event.CountsEntry", repeated=True)
        field(ev, "address", 14, F.TYPE_MESSAGE, ".interop.Address")
        field(ev, "ts", 15, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
        ev.oneof_decl.add(name="choice")
        field(ev, "label", 16, F.TYPE_STRING, oneof=0)
        field(ev, "code", 17, F.TYPE_INT64, oneof=0)
        field(ev, "note", 18, F.TYPE_MESSAGE, ".google.protobuf.StringValue")
        field(ev, "maybe", 19, F.TYPE_MESSAGE, ".google.protobuf.Int64Value")
        field(ev, "flag", 20, F.TYPE_MESSAGE, ".google.protobuf.BoolValue")
        ev.oneof_decl.add(name="_opt")
        field(ev, "opt", 21, F.TYPE_INT32, oneof=1, optional=True)
        field(ev, "ratio32", 22, F.TYPE_MESSAGE, ".google.protobuf.FloatValue")
        field(ev, "items", 23, F.TYPE_MESSAGE, ".interop.Item", repeated=True)
        field(ev, "wait", 24, F.TYPE_MESSAGE, ".google.protobuf.Duration")
        field(ev, "meta", 25, F.TYPE_MESSAGE, ".google.protobuf.Struct")

        addr = fdp.message_type.add(name="Address")
        field(addr, "street", 1, F.TYPE_STRING)
        field(addr, "city", 2, F.TYPE_STRING)
        field(addr, "zip", 3, F.TYPE_INT32)
        field(addr, "lat", 4, F.TYPE_DOUBLE)
        field(addr, "since", 5, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
        field(addr, "big", 6, F.TYPE_FIXED64)
        field(addr, "kind", 7, F.TYPE_ENUM, ".interop.Color")
        field(addr, "blob", 8, F.TYPE_BYTES)

        item = fdp.message_type.add(name="Item")
        field(item, "sku", 1, F.TYPE_STRING)
        field(item, "n", 2, F.TYPE_INT32)
        field(item, "tags", 3, F.TYPE_STRING, repeated=True)
        field(item, "at", 4, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
        field(item, "big", 5, F.TYPE_UINT64)

        color = fdp.enum_type.add(name="Color")
        for n, v in [("COLOR_UNSPECIFIED", 0), ("RED", 1), ("GREEN", 2), ("BLUE", 3)]:
            color.value.add(name=n, number=v)

        pool = descriptor_pool.Default()
        pool.AddSerializedFile(fdp.SerializeToString())
        desc = pool.FindMessageTypeByName("interop.Event")
        self.cls = message_factory.MessageFactory(pool).GetPrototype(desc)
        self.color_names = {v.number: v.name for v in color.value}
        sr = SchemaRegistryClient({"url": registry})
        self.serializer = ProtobufSerializer(self.cls, sr)
        # Address is the file's second message: see bad_message_index_uvarint.
        self.addr_cls = message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("interop.Address"))
        self.addr_serializer = ProtobufSerializer(self.addr_cls, sr)
        self.topic = topic
        self.producer = SerializingProducer({
            "bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 5,
            "key.serializer": StringSerializer("utf_8"),
            "value.serializer": self.serializer,
        })

    @staticmethod
    def ts_json(m):
        return m.ToJsonString()  # protojson's form: 0, 3, 6 or 9 fraction digits, Z

    @staticmethod
    def nanos_micros(seconds, nanos):
        """An RFC 3339 UTC string with the instant rounded to the microsecond
        (the tests avoid ties, where PostgreSQL's rounding is of a double)."""
        us, rem = divmod(nanos, 1000)
        assert rem != 500
        if rem > 500:
            us += 1
        return rfc3339(EPOCH + datetime.timedelta(seconds=seconds, microseconds=us))

    def timestamp(self, g, m):
        if g.r.random() < 0.1:
            m.seconds, m.nanos = g.pick([(0, 0), (-62135596800, 0), (253402300799, 999999000), (-1, 999999999)])
        else:
            m.seconds = g.r.randint(-2_208_988_800, 4_102_444_800)
            m.nanos = g.pick([0, 1000 * g.r.randint(0, 999999), 1000 * g.r.randint(0, 999999) + g.pick([1, 123, 499, 501, 877, 999])])
        return self.nanos_micros(m.seconds, m.nanos)

    def build(self, g, i, id_):
        m = self.cls()
        m.id = id_
        m.name = g.pick(NAMES)
        m.qty = g.int_in(-2 ** 31, 2 ** 31 - 1, (-2 ** 31, 2 ** 31 - 1))
        m.big = g.int_in(-2 ** 63, 2 ** 63 - 1, (-2 ** 63, 2 ** 63 - 1, 0))
        m.counter = g.int_in(0, 2 ** 64 - 1, (0, 2 ** 63, 2 ** 64 - 1))
        m.ratio = g.double()
        m.score = g.single()
        m.active = g.r.random() < 0.5
        m.payload = g.raw(24)
        # proto3 enums are open: a number the schema does not name is kept.
        m.color = g.pick([0, 1, 2, 3, 7])
        m.tags.extend(g.pick(TAGS) for _ in range(g.r.randint(0, 3)))
        m.nums.extend(g.int_in(-2 ** 31, 2 ** 31 - 1, (-2 ** 31, 2 ** 31 - 1)) for _ in range(g.r.randint(0, 4)))
        for k, v in g.counts().items():
            m.counts[k] = v
        row = {"id": id_, "name": m.name, "qty": m.qty, "big": m.big, "counter": str(m.counter),
               "ratio": m.ratio, "score": f32(m.score), "active": m.active,
               "payload": m.payload.hex(), "color": self.color_names.get(m.color, str(m.color)),
               "tags": list(m.tags), "nums": list(m.nums), "counts": dict(m.counts)}
        if g.r.random() < 0.9:
            a = m.address
            a.street = g.pick(["", "1 Main St", "Hauptstraße 5"])
            a.city = g.pick(CITIES + [""])
            a.zip = g.pick([0, 8001, -5, 2 ** 31 - 1])
            a.lat = g.pick([0.0, 47.3769, -33.8688, 1e-7])
            a.big = g.pick([0, 1, 2 ** 64 - 1])
            a.kind = g.pick([0, 2, 9])
            a.blob = g.pick([b"", b"\x00\xff", b"hello"])
            addr = {}
            # protojson leaves out fields at their default (implicit presence).
            for k in ("street", "city", "zip", "lat", "big", "blob"):
                v = getattr(a, k)
                if v:
                    addr[k] = base64.b64encode(v).decode() if k == "blob" else v
            if a.kind:
                addr["kind"] = self.color_names.get(a.kind, a.kind)
            if g.r.random() < 0.7:
                self.timestamp(g, a.since)
                addr["since"] = self.ts_json(a.since)
            row["address"], row["city"] = addr, a.city
        else:
            row["address"], row["city"] = None, None
        row["ts"] = self.timestamp(g, m.ts) if g.r.random() < 0.85 else None
        which = g.pick(["label", "code", None])
        row["label"], row["code"] = None, None
        if which == "label":
            m.label = g.pick(["", "lbl", "ラベル"])
            row["label"] = m.label
        elif which == "code":
            m.code = g.pick([0, 42, -2 ** 63])
            row["code"] = m.code
        row["note"] = row["maybe"] = row["flag"] = row["opt"] = row["ratio32"] = None
        if g.r.random() < 0.6:
            m.note.value = g.pick(["", "a note", "ñ"])
            row["note"] = m.note.value
        if g.r.random() < 0.6:
            m.maybe.value = g.pick([0, 7, 2 ** 63 - 1, -2 ** 63])
            row["maybe"] = m.maybe.value
        if g.r.random() < 0.6:
            m.flag.value = g.r.random() < 0.5
            row["flag"] = m.flag.value
        if g.r.random() < 0.6:
            m.opt = g.pick([0, -1, 2 ** 31 - 1])
            row["opt"] = m.opt
        if g.r.random() < 0.6:
            m.ratio32.value = g.single()
            row["ratio32"] = f32(m.ratio32.value)
        row["items"] = []
        for _ in range(g.r.randint(0, 3)):
            it = m.items.add()
            it.sku = g.pick(TAGS)
            it.n = g.pick([0, 1, -7])
            it.tags.extend(g.pick(TAGS) for _ in range(g.r.randint(0, 2)))
            it.big = g.pick([0, 2 ** 64 - 1, 12345])
            j = {k: v for k, v in (("sku", it.sku), ("n", it.n), ("tags", list(it.tags)), ("big", it.big)) if v}
            if g.r.random() < 0.5:
                self.timestamp(g, it.at)
                j["at"] = self.ts_json(it.at)
            row["items"].append(j)
        row["wait"] = row["wait_us"] = None
        if g.r.random() < 0.8:
            sec = g.r.randint(-10 ** 6, 10 ** 6)
            nanos = g.pick([0, 1000 * g.r.randint(0, 999999), g.r.randint(0, 999999999)])
            if nanos % 1000 == 500:
                nanos += 1
            if sec < 0 or (sec == 0 and g.r.random() < 0.5):
                nanos = -nanos
            m.wait.seconds, m.wait.nanos = sec, nanos
            row["wait"] = m.wait.ToJsonString()
            us, rem = divmod(abs(nanos), 1000)
            us += rem > 500
            row["wait_us"] = sec * 10 ** 6 + (us if nanos >= 0 else -us)
        row["meta"] = None
        if g.r.random() < 0.7:
            from google.protobuf import json_format
            m.meta.update({"k": g.pick(NAMES), "n": g.pick([1, -2.5, 1e300, 0]), "ok": g.r.random() < 0.5,
                           "nil": None, "list": [1, "x", None, {"deep": [True]}], "obj": {}})
            row["meta"] = json_format.MessageToDict(m.meta)
        return m, row

    def mutate(self, m, how):
        if how == "out_of_range":
            m.qty = 2 ** 40
        elif how == "nul":
            m.name = "before\x00after"

    def produce(self, m, key, cb):
        self.producer.produce(topic=self.topic, key=key, value=m, on_delivery=cb)

    def serialize(self, m):
        from confluent_kafka.serialization import SerializationContext, MessageField
        return self.serializer(m, SerializationContext(self.topic, MessageField.VALUE))


class JSONSchema:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Event",
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "qty": {"type": "integer"},
            "big": {"type": "integer"},
            "ratio": {"type": "number"},
            "active": {"type": "boolean"},
            "payload": {"type": "string", "contentEncoding": "base64"},
            "color": {"type": "string", "enum": ["RED", "GREEN", "BLUE"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "note": {"type": ["string", "null"]},
            "address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "city": {"type": "string"},
                    "zip": {"type": "integer"},
                    "lat": {"type": "number"},
                    "parts": {"type": "array", "items": {"type": ["integer", "string", "null", "boolean", "object"]}},
                },
                "required": ["city"],
            },
            "ts": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "price": {"type": "number"},
            "uid": {"type": "string", "format": "uuid"},
        },
        "required": ["id", "name"],
    }

    def __init__(self, brokers, registry, topic):
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.json_schema import JSONSerializer
        sr = SchemaRegistryClient({"url": registry})
        self.serializer = JSONSerializer(json.dumps(self.schema), sr)
        self.topic = topic
        self.producer = SerializingProducer({
            "bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 5,
            "key.serializer": StringSerializer("utf_8"),
            "value.serializer": self.serializer,
        })

    def timestamp(self, g):
        """An RFC 3339 string as producers write them, and the instant it
        names rounded to the microsecond."""
        dt = g.ts_millis().replace(microsecond=0)
        nanos = g.pick([0, 1000 * g.r.randint(0, 999999), 1000 * g.r.randint(0, 999999) + g.pick([1, 499, 501, 999])])
        off = g.pick([0, 0, 330, -480, 59, -(15 * 60 + 59)])
        if dt.year in (1, 9999):
            off = 0
        tz = datetime.timezone(datetime.timedelta(minutes=off))
        local = dt.astimezone(tz)
        frac = ""
        if nanos:
            digits = "%09d" % nanos
            frac = "." + (digits.rstrip("0") if g.r.random() < 0.5 else digits)
        zone = "Z" if off == 0 and g.r.random() < 0.5 else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]
        text = "%04d-%s" % (local.year, local.strftime("%m-%dT%H:%M:%S")) + frac + zone
        us, rem = divmod(nanos, 1000)
        if rem > 500:
            us += 1
        if (dt + datetime.timedelta(microseconds=us)).year > 9999:
            return self.timestamp(g)
        return text, rfc3339(dt + datetime.timedelta(microseconds=us))

    def build(self, g, i, id_):
        payload = g.raw(24)
        uid = g.uid()
        obj = {
            "id": id_,
            "name": g.pick(NAMES),
            "qty": g.int_in(-2 ** 31, 2 ** 31 - 1, (-2 ** 31, 2 ** 31 - 1)),
            "big": g.int_in(-2 ** 63, 2 ** 63 - 1, (-2 ** 63, 2 ** 63 - 1, 0)),
            "ratio": g.double(),
            "active": g.r.random() < 0.5,
            "payload": base64.b64encode(payload).decode(),
            "color": g.pick(["RED", "GREEN", "BLUE"]),
            "tags": [g.pick(TAGS) for _ in range(g.r.randint(0, 3))],
            "counts": g.counts(),
            "day": g.date().isoformat(),
            # Prices as producers write them: JSON numbers with up to two
            # decimals, and integers.
            "price": g.pick([round(g.r.uniform(-1e6, 1e6), 2), g.r.randint(-10 ** 12, 10 ** 12), 0.5, 0.0]),
            "uid": g.pick([str(uid), str(uid).upper(), uid.hex, "{%s}" % uid]),
        }
        ts_text, ts = self.timestamp(g)
        obj["ts"] = ts_text
        if g.r.random() < 0.5:
            obj["note"] = g.maybe(lambda: g.pick(NAMES))
        if g.r.random() < 0.9:
            obj["address"] = {"city": g.pick(CITIES), "zip": g.r.randint(1000, 99999)}
            if g.r.random() < 0.5:
                obj["address"]["street"] = "1 Main St"
                obj["address"]["lat"] = g.pick([0.5, -33.8688, 1e-7, 1.0, 12345678901234567890.0])
                obj["address"]["parts"] = [1, "two", None, True, {"k": [1.5, -0.0]}]
        row = {
            "id": id_, "name": obj["name"], "qty": obj["qty"], "big": obj["big"],
            "ratio": obj["ratio"], "active": obj["active"], "payload": payload.hex(),
            "color": obj["color"], "tags": obj["tags"], "counts": obj["counts"],
            "counts_a": obj["counts"].get("a"), "note": obj.get("note"),
            "address": obj.get("address"), "city": obj.get("address", {}).get("city"),
            "ts": ts, "day": obj["day"],
            # numeric keeps the number as written: json.dumps writes repr().
            "price": json.dumps(obj["price"]),
            "uid": str(uid),
        }
        return obj, row

    def mutate(self, obj, how):
        if how == "out_of_range":
            obj["qty"] = 2 ** 40
        elif how == "nul":
            obj["name"] = "before\x00after"

    def produce(self, obj, key, cb):
        self.producer.produce(topic=self.topic, key=key, value=obj, on_delivery=cb)

    def serialize(self, obj):
        from confluent_kafka.serialization import SerializationContext, MessageField
        return self.serializer(obj, SerializationContext(self.topic, MessageField.VALUE))


FORMATS = {"avro": Avro, "protobuf": Protobuf, "json_schema": JSONSchema}


def main():
    fmt, brokers, registry, topic, records, seed, outdir = sys.argv[1:8]
    records, seed = int(records), int(seed)
    f = FORMATS[fmt](brokers, registry, topic)
    g = Gen(seed)
    failures = []

    def checked(cb=None):
        def on_delivery(err, msg):
            if err is not None:
                failures.append(str(err))
            elif cb is not None:
                cb(msg)
        return on_delivery

    expected, sent = {}, []  # sent: (key, obj) of the good records, for re-sends
    dups = 0
    for i in range(records):
        if sent and g.r.random() < 1 / 12:
            key, obj = g.pick(sent)
            f.produce(obj, key, checked())
            dups += 1
        else:
            id_ = g.pick([1000 + i, 2 ** 40 + i, -(1000 + i), 2 ** 62 + i])
            obj, row = f.build(g, i, id_)
            key = str(id_)
            f.produce(obj, key, checked())
            expected[id_] = row
            sent.append((key, obj))
        f.producer.poll(0)
    f.producer.flush(30)

    # Bad records, with the reason Sluice must give each. The first two
    # pass through the real serializer; the rest are bytes a plain producer
    # sends, as a misconfigured or foreign client would.
    bad = []
    good_obj, _ = f.build(g, records, 10 ** 6)
    framed = f.serialize(good_obj)
    schema_id = struct.unpack(">I", framed[1:5])[0]
    header = 6 if fmt == "protobuf" else 5
    for how in ("out_of_range", "nul"):
        obj, _ = f.build(g, records, 10 ** 6)
        f.mutate(obj, how)
        bad.append((how, {"out_of_range": "out_of_range", "nul": "nul_in_text"}[how], f.serialize(obj)))
    truncated = framed[:header + 3] if fmt == "protobuf" else framed[:header + (len(framed) - header) // 2]
    bad += [
        ("not_framed", "bad_framing", json.dumps({"id": 1, "name": "no schema id"}).encode()),
        ("short_prefix", "bad_framing", b"\x00\x00\x00"),
        ("unknown_schema_id", "unknown_schema", b"\x00" + struct.pack(">I", 999_999) + framed[5:]),
        ("truncated", "malformed_json" if fmt == "json_schema" else "schema_mismatch", truncated),
        ("tombstone", "missing_required", None),
    ]
    if fmt == "protobuf":
        # Message indexes [5]: the file has no sixth message.
        bad.append(("bad_message_index", "schema_mismatch", framed[:5] + b"\x02\x0a" + framed[6:]))
        # The 1.7 serializer writes the message indexes of any message but
        # the first as unsigned varints ([1] as count 1, index 1: bytes 01
        # 01), which the wire format reads as zigzag (count -1): a framing
        # error, never a record decoded as the wrong message.
        from confluent_kafka.serialization import SerializationContext, MessageField
        a = f.addr_cls(city="Lyon", zip=69001)
        value = f.addr_serializer(a, SerializationContext(topic, MessageField.VALUE))
        assert value[5:7] == b"\x01\x01", value.hex()
        bad.append(("uvarint_message_index", "bad_framing", value))
    if fmt == "json_schema":
        # What a producer that skips validation sends: the column is int4.
        obj = dict(good_obj, qty="many")
        bad.append(("wrong_type", "wrong_type", framed[:5] + json.dumps(obj).encode()))

    plain = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    out = []
    for kind, reason, value in bad:
        def record(msg, kind=kind, reason=reason, value=value):
            out.append({"kind": kind, "reason": reason, "partition": msg.partition(), "offset": msg.offset(),
                        "value": None if value is None else value.hex()})
        plain.produce(topic, key="bad-" + kind, value=value, on_delivery=checked(record))
    plain.flush(30)
    if failures:
        sys.exit("cannot produce: " + "; ".join(failures[:5]))
    if len(out) != len(bad):
        sys.exit("cannot produce: %d of %d bad records delivered" % (len(out), len(bad)))

    with open(os.path.join(outdir, "expected.jsonl"), "w") as w:
        for row in expected.values():
            w.write(json.dumps(row) + "\n")
    with open(os.path.join(outdir, "bad.jsonl"), "w") as w:
        for b in out:
            w.write(json.dumps(b) + "\n")
    print(json.dumps({"produced": records + len(bad), "unique": len(expected), "duplicates": dups,
                      "bad": len(bad), "schema_id": schema_id}))


if __name__ == "__main__":
    main()
