"""``check_for_internet`` and ``get_interfaces``, as Hak5's ``network_helpers``."""
from __future__ import annotations

import logging
import os
import socket
import urllib.parse
import urllib.request

INTERNET_CHECK_URL = "https://downloads.hak5.org/internet"
SYS_CLASS_NET = "/sys/class/net"


def check_for_internet(url: str = INTERNET_CHECK_URL, timout: float = 10, logger: logging.Logger | None = None,
                       *, timeout: float | None = None) -> bool:
    """True when ``url`` is reachable within ``timout`` seconds (the keyword
    is spelled as in Hak5's library; ``timeout=`` works too).

    An ``http://`` URL must answer a GET. For ``https://`` a TCP connection
    to the host's port is enough: this asks "is there a network?", and
    skipping the TLS handshake needs no ``python3-openssl`` on the device
    (nor a CA bundle: Hak5's did not verify the certificate either) and
    spares a slow router CPU."""
    seconds = timout if timeout is None else timeout
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "https":
            socket.create_connection((parts.hostname, parts.port or 443), timeout=seconds).close()
        elif parts.scheme == "http":
            with urllib.request.urlopen(url, timeout=seconds) as response:
                response.read(1024)
        else:
            raise ValueError(f"not an http(s) URL: {url!r}")
        return True
    except Exception as exc:  # any failure means "no": DNS, refused, timeout, HTTP error, bad URL
        if logger is not None:
            logger.debug("no internet connection (%s): %s", url, exc)
        return False


def get_interfaces(sys_class_net: str = SYS_CLASS_NET) -> list[str]:
    """The network interface names (``/sys/class/net``), sorted; ``lo`` included."""
    try:
        return sorted(os.listdir(sys_class_net))
    except OSError:
        return []
