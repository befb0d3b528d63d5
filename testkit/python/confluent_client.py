"""Drive minipipe with Confluent's own Python client, as a user would.

    confluent_client.py consume --bootstrap B --registry URL --topic T --count N
        reads N records with AvroDeserializer (schemas fetched from the registry) and prints one JSON object
        per record: {"key": ..., "value": ..., "partition": p, "offset": o}
    confluent_client.py produce --bootstrap B --registry URL --topic T --schema S --records FILE
        writes the JSON records of FILE (a JSON array of values) with AvroSerializer, which registers S
        under T-value, and prints {"produced": n}

    With --basic-auth USER:PASSWORD and --ca-file PEM the registry client sends HTTP Basic credentials and
    checks the registry's certificate against the CA, as a user's configuration would
    (basic.auth.user.info, ssl.ca.location).
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def registry_client(args):
    conf = {"url": args.registry}
    if args.basic_auth:
        conf["basic.auth.user.info"] = args.basic_auth
    if args.ca_file:
        conf["ssl.ca.location"] = args.ca_file
    return SchemaRegistryClient(conf)


def consume(args):
    registry = registry_client(args)
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "minipipe-python-%d" % time.time_ns(),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([args.topic])
    got = 0
    deadline = time.time() + args.timeout
    while got < args.count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue  # a topic just created by a producer: its metadata is on its way
            raise SystemExit("consume error: %s" % msg.error())
        value = deserializer(msg.value(), SerializationContext(args.topic, MessageField.VALUE))
        key = msg.key().decode() if msg.key() is not None else None
        print(json.dumps({"key": key, "value": value, "partition": msg.partition(), "offset": msg.offset()}, sort_keys=True))
        got += 1
    consumer.close()
    if got < args.count:
        raise SystemExit("consumed %d of %d records" % (got, args.count))


def produce(args):
    registry = registry_client(args)
    serializer = AvroSerializer(registry, args.schema)
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    with open(args.records) as f:
        records = json.load(f)
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(str(err))

    for value in records:
        data = serializer(value, SerializationContext(args.topic, MessageField.VALUE))
        producer.produce(args.topic, value=data, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(30)
    if left:
        raise SystemExit("%d records not delivered within 30 s" % left)
    if errors:
        raise SystemExit("delivery errors: %s" % errors[:5])
    print(json.dumps({"produced": len(records)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["consume", "produce"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--schema")
    p.add_argument("--records")
    p.add_argument("--basic-auth")
    p.add_argument("--ca-file")
    args = p.parse_args()
    {"consume": consume, "produce": produce}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
