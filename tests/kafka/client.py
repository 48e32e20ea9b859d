"""The suite's independent Kafka client (kafka-python): administers topics and produces.

Usage: client.py BOOTSTRAP COMMAND [ARGS], one JSON object of options on stdin:
  create   {"topic", "partitions"}
  grow     {"topic", "partitions"}          (total partitions after)
  delete   {"topic"}
  committed {"topic", "group", "partitions"}  (the group's committed offset of each partition)
  commit   {"topic", "group", "offsets": {"0": 5}}  (commits as a consumer outside the group)
  stream   {"topic"} on the first line of stdin, then one message a line: each sent and
           acknowledged at once, its [partition, offset] printed at once (for latency benches)
  produce  {"topic", "messages": [{"partition", "key", "value", "key_b64", "value_b64",
            "headers"}], "compression": null|"gzip"|"snappy"|"lz4"|"zstd", "linger": false,
            "sasl": {"mechanism", "user", "password"}, "flush_each": true}
Prints one JSON line: the (partition, offset) of each produced message, in order.
"""
import base64
import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic
from kafka.structs import OffsetAndMetadata


def security(opts):
    sasl = opts.get("sasl")
    if not sasl:
        return {}
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": sasl["mechanism"],
        "sasl_plain_username": sasl["user"],
        "sasl_plain_password": sasl["password"],
    }


def main():
    bootstrap, command = sys.argv[1], sys.argv[2]
    if command == "stream":
        opts = json.loads(sys.stdin.readline())
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1, **security(opts))
        for line in sys.stdin:
            m = json.loads(line)
            md = producer.send(opts["topic"], value=m["value"].encode(), partition=m.get("partition")).get(timeout=10)
            print(json.dumps([md.partition, md.offset]), flush=True)
        producer.close()
        return
    opts = json.loads(sys.stdin.read() or "{}")
    if command in ("create", "grow", "delete"):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **security(opts))
        if command == "create":
            admin.create_topics([NewTopic(opts["topic"], opts["partitions"], 1)])
        elif command == "grow":
            admin.create_partitions({opts["topic"]: NewPartitions(opts["partitions"])})
        else:
            admin.delete_topics([opts["topic"]])
        admin.close()
        print(json.dumps({"ok": True}))
        return
    if command in ("committed", "commit"):
        # KafkaConsumer's committed() (OffsetFetch v1-5): tansu 0.6's answer to the admin
        # client's list_consumer_group_offsets (OffsetFetch v8) does not decode.
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=opts["group"], enable_auto_commit=False,
                                 **security(opts))
        if command == "commit":
            offsets = {TopicPartition(opts["topic"], int(p)): OffsetAndMetadata(o, "", -1)
                       for p, o in opts["offsets"].items()}
            consumer.assign(list(offsets))
            consumer.commit(offsets)
            out = {"ok": True}
        else:
            out = {str(p): consumer.committed(TopicPartition(opts["topic"], p)) for p in range(opts["partitions"])}
        consumer.close()
        print(json.dumps(out))
        return
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=opts.get("compression"),
        linger_ms=200 if opts.get("linger") else 0,
        batch_size=1 << 20,
        acks=1,
        request_timeout_ms=10000,
        **security(opts)
    )
    futures = []
    for m in opts["messages"]:
        key = base64.b64decode(m["key_b64"]) if "key_b64" in m else (m["key"].encode() if m.get("key") is not None else None)
        if "value_b64" in m:
            value = base64.b64decode(m["value_b64"])
        else:
            value = m["value"].encode() if m.get("value") is not None else None
        headers = [(k, v.encode()) for k, v in m.get("headers", [])]
        futures.append(producer.send(opts["topic"], key=key, value=value, partition=m.get("partition"), headers=headers or None))
        if opts.get("flush_each", True):
            producer.flush()
    producer.flush()
    out = []
    for f in futures:
        md = f.get(timeout=10)
        out.append([md.partition, md.offset])
    producer.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
