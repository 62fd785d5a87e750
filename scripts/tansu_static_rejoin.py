"""Minimal reproduction, outside ioc, of what the fault harness met on tansu 0.6 with SQLite
storage: two consumers of one group with static membership (group.instance.id) hold its two
partitions; the broker is killed and started again on the same database after an outage longer
than the session timeout; afterwards neither consumer gets a partition back. The same with
dynamic membership, or with an outage shorter than the session timeout, recovers.

    python3 -m pip install confluent-kafka
    python3 scripts/tansu_static_rejoin.py static 30    # prints ... False [0, 0] (tansu 0.6)
    python3 scripts/tansu_static_rejoin.py dynamic 30   # prints ... True [1, 1]
    python3 scripts/tansu_static_rejoin.py static 5     # prints ... True [1, 1]

Why (read from librdkafka's group log, which this script follows): after the restart each static
member joins again and tansu gives it a new member id, but its JoinGroup answers keep naming the
leader chosen before the restart, a member id that no longer exists. No live member is the
leader, so nobody sends the assignment; every SyncGroup is answered "rebalance in progress" and
the members join again, forever. The script prints the leader tansu names against the members'
own ids.

It starts tansu (on PATH, built with the libsql feature) on a free port, in a temporary folder
holding its database and log, and stops it at the end. A Kafka cluster keeps the group in
__consumer_offsets and gives both members their partitions back after either outage.
"""

import logging
import re
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

SESSION_TIMEOUT_MS = 10_000


class JoinAnswers(logging.Handler):
    """Keeps, from librdkafka's group log, the last JoinGroup answer each consumer had: the
    leader the coordinator named and the consumer's own member id."""

    PATTERN = re.compile(r"JoinGroup response: GenerationId (-?\d+), .*LeaderId (\S+?)(?: \(me\))?, my MemberId (\S+?),")

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.last = {}

    def emit(self, record):
        found = self.PATTERN.search(record.getMessage())
        if found:
            self.last[record.name] = found.groups()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(port, folder):
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen(
        ["tansu", "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "sqlite://repro.db"],
        cwd=folder, stdout=open(f"{folder}/tansu.log", "a"), stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return broker
        except OSError:
            time.sleep(0.1)
    sys.exit(f"tansu did not start; see {folder}/tansu.log")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("static", "dynamic"):
        sys.exit("usage: tansu_static_rejoin.py static|dynamic OUTAGE_SECONDS")
    static, outage = sys.argv[1] == "static", float(sys.argv[2])
    folder, port = tempfile.mkdtemp(prefix="tansu-rejoin-"), free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = start_broker(port, folder)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("t", 2, 1)])["t"].result()
    producer = Producer({"bootstrap.servers": bootstrap})
    for key in (b"a", b"b", b"c", b"d"):
        producer.produce("t", b"x", key=key)
    producer.flush(10)

    consumers = []
    answers = JoinAnswers()
    for n in (1, 2):
        log = logging.getLogger(f"consumer-{n}")
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.addHandler(answers)
        conf = {"bootstrap.servers": bootstrap, "group.id": "g", "auto.offset.reset": "earliest",
                "session.timeout.ms": SESSION_TIMEOUT_MS, "debug": "cgrp", "logger": log}
        if static:
            conf["group.instance.id"] = f"member-{n}"
        consumers.append(Consumer(conf))
        consumers[-1].subscribe(["t"])

    def held_within(seconds):
        """Polls both consumers (committing what they read) until they hold both partitions."""
        end = time.time() + seconds
        while time.time() < end:
            for c in consumers:
                m = c.poll(0.1)
                if m is not None and not m.error():
                    c.commit(message=m, asynchronous=False)
            if sum(len(c.assignment()) for c in consumers) == 2:
                return True
        return False

    try:
        print(f"{sys.argv[1]} members, before the restart: hold both partitions:", held_within(30))
        broker.kill()
        broker.wait()
        time.sleep(outage)
        broker = start_broker(port, folder)
        held = held_within(60)
        print(f"after a {outage:.0f} s outage: hold both partitions within 60 s:", held,
              [len(c.assignment()) for c in consumers])
        members = {me for (_, _, me) in answers.last.values()}
        for name, (generation, leader, me) in sorted(answers.last.items()):
            print(f"  {name}'s last JoinGroup answer: generation {generation}, leader {leader}"
                  f"{' (a live member)' if leader in members else ' (no live member has this id)'}, its own id {me}")
    finally:
        for c in consumers:
            c.close()
        broker.kill()
    print(f"tansu's database and log: {folder}")


if __name__ == "__main__":
    main()
