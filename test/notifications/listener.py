"""A notification consumer built with oslo.messaging itself, as Ceilometer builds
its own: it listens on an exchange and topic and prints each event it receives
as one JSON line on stdout. Used by test/notifications/ (see helpers.ts).

usage: listener.py <transport_url> <exchange> <topic>
Prints {"ready": true} once consuming; stops when stdin closes.
"""
import json
import sys
import threading

from oslo_config import cfg
import oslo_messaging

url, exchange, topic = sys.argv[1:4]
lock = threading.Lock()


def out(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Endpoint(object):
    def _event(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        out({"priority": priority, "publisher_id": publisher_id, "event_type": event_type,
             "payload": payload, "message_id": metadata.get("message_id"),
             "timestamp": metadata.get("timestamp")})

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._event("INFO", ctxt, publisher_id, event_type, payload, metadata)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        self._event("WARN", ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._event("ERROR", ctxt, publisher_id, event_type, payload, metadata)


conf = cfg.ConfigOpts()
conf([], project="imago-test")
transport = oslo_messaging.get_notification_transport(conf, url=url)
targets = [oslo_messaging.Target(topic=topic, exchange=exchange)]
listener = oslo_messaging.get_notification_listener(transport, targets, [Endpoint()], executor="threading")
# One worker: events are handed to the endpoint in the order the queue holds them.
conf.set_override("executor_thread_pool_size", 1)
listener.start()
out({"ready": True})
try:
    sys.stdin.read()
finally:
    listener.stop()
    listener.wait()
    transport.cleanup()
