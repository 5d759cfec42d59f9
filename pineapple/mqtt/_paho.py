"""paho-mqtt 1.5.1 to 2.x behind one small interface.

OpenWrt's feeds ship paho-mqtt 1.5.1 (19.07, 21.02), 1.6.1 (22.03 to 24.10)
and 2.x (master). Their callback signatures differ (2.x adds reason codes and
properties, and warns unless asked for its version-2 callbacks), and 1.5.1's
``wait_for_publish`` has no timeout. Everything in this package (and the
tests) builds its client with :func:`make_client` and waits with
:func:`wait_published`, so no other module knows which paho it runs on.

The callbacks, one shape on every paho version (all run on paho's thread):

- ``on_connect(client, failure)``: ``failure`` is None when the broker
  accepted the connection, else its reason as text;
- ``on_disconnect(client, reason)``: ``reason`` as text;
- ``on_publish(client, mid)`` and ``on_subscribe(client, mid)``;
- ``on_message(client, message)``: paho's message (``topic``, ``payload``,
  ``qos``, ``retain``), as paho gives it.

paho is imported on first use: it costs ~12 MB at idle.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

OnConnect = Callable[[Any, Optional[str]], None]
OnDisconnect = Callable[[Any, str], None]
OnMid = Callable[[Any, int], None]
OnMessage = Callable[[Any, Any], None]


def make_client(client_id: str, *, on_connect: OnConnect | None = None, on_disconnect: OnDisconnect | None = None,
                on_publish: OnMid | None = None, on_subscribe: OnMid | None = None,
                on_message: OnMessage | None = None) -> Any:
    """A paho ``Client`` speaking MQTT 3.1.1 with a clean session, its
    callbacks set from the version-independent ones given."""
    import paho.mqtt.client as mqtt

    if hasattr(mqtt, "CallbackAPIVersion"):  # paho 2.x
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        _set_v2_callbacks(client, on_connect, on_disconnect, on_publish, on_subscribe)
    else:  # paho 1.5, 1.6
        client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
        _set_v1_callbacks(client, mqtt, on_connect, on_disconnect, on_publish, on_subscribe)
    if on_message is not None:
        client.on_message = lambda c, userdata, message: on_message(c, message)
    return client


def wait_published(info: Any, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a ``publish()`` result to be sent
    (QoS 0) or acknowledged (QoS 1, 2); True when it was. Raises ValueError
    (queue full) like paho when the message was never queued."""
    if _has_publish_timeout(info):
        info.wait_for_publish(timeout)
        return info.is_published()
    deadline = time.monotonic() + timeout  # paho 1.5: wait_for_publish() would block for ever
    while not info.is_published():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _has_publish_timeout(info: Any) -> bool:
    import inspect

    return "timeout" in inspect.signature(info.wait_for_publish).parameters


def _set_v2_callbacks(client: Any, on_connect: OnConnect | None, on_disconnect: OnDisconnect | None,
                      on_publish: OnMid | None, on_subscribe: OnMid | None) -> None:
    if on_connect is not None:
        client.on_connect = lambda c, userdata, flags, reason, properties: on_connect(
            c, str(reason) if reason.is_failure else None)
    if on_disconnect is not None:
        client.on_disconnect = lambda c, userdata, flags, reason, properties: on_disconnect(c, str(reason))
    if on_publish is not None:
        client.on_publish = lambda c, userdata, mid, reason, properties: on_publish(c, mid)
    if on_subscribe is not None:
        client.on_subscribe = lambda c, userdata, mid, reasons, properties: on_subscribe(c, mid)


def _set_v1_callbacks(client: Any, mqtt: Any, on_connect: OnConnect | None, on_disconnect: OnDisconnect | None,
                      on_publish: OnMid | None, on_subscribe: OnMid | None) -> None:
    if on_connect is not None:
        client.on_connect = lambda c, userdata, flags, rc: on_connect(c, mqtt.connack_string(rc) if rc else None)
    if on_disconnect is not None:
        client.on_disconnect = lambda c, userdata, rc: on_disconnect(c, mqtt.error_string(rc))
    if on_publish is not None:
        client.on_publish = lambda c, userdata, mid: on_publish(c, mid)
    if on_subscribe is not None:
        client.on_subscribe = lambda c, userdata, mid, granted_qos: on_subscribe(c, mid)
