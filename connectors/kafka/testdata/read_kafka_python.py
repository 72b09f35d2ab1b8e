"""Reads topics from a SASL_SSL broker with kafka-python, the consumer of many
Python users, to check which of driftline's output codecs it reads as
installed, without extra codec packages. Written for kafka-python==3.0.12
(PyPI; scripts/setup.sh installs it).

Usage: read_kafka_python.py BROKER CAFILE USER TOPIC...; the password comes
from the environment variable KAFKA_PASSWORD. Prints one JSON object: per
topic, {"values": [...]} or {"error": "..."}.
"""

import json
import os
import sys

import kafka
from kafka import KafkaConsumer, TopicPartition


def read(broker, cafile, user, topic):
    consumer = KafkaConsumer(
        bootstrap_servers=[broker],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=user,
        sasl_plain_password=os.environ["KAFKA_PASSWORD"],
        ssl_cafile=cafile,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        values = []
        for record in consumer:
            values.append(record.value.decode())
            if record.offset + 1 >= end:
                break
        return {"values": values}
    except Exception as e:  # the codec error is what the test looks for
        return {"error": "%s: %s" % (type(e).__name__, e)}
    finally:
        consumer.close()


def main():
    broker, cafile, user, topics = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    out = {"kafka_python": kafka.__version__}
    for topic in topics:
        out[topic] = read(broker, cafile, user, topic)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
