"""``check_for_internet`` and ``get_interfaces``, as Hak5's ``network_helpers``."""
from __future__ import annotations

import logging
import os
import ssl
import urllib.request
from typing import List, Optional

INTERNET_CHECK_URL = "https://downloads.hak5.org/internet"
SYS_CLASS_NET = "/sys/class/net"


def check_for_internet(url: str = INTERNET_CHECK_URL, timout: float = 10, logger: Optional[logging.Logger] = None,
                       *, timeout: Optional[float] = None) -> bool:
    """True when ``url`` answers within ``timout`` seconds (the keyword is
    spelled as in Hak5's library; ``timeout=`` works too). The TLS
    certificate is not verified: this asks "is there a network?", and
    devices often have no CA bundle."""
    seconds = timout if timeout is None else timeout
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=seconds, context=context) as response:
            response.read(1024)
        return True
    except Exception as exc:  # any failure means "no": DNS, refused, TLS, timeout, HTTP error
        if logger is not None:
            logger.debug("no internet connection (%s): %s", url, exc)
        return False


def get_interfaces(sys_class_net: str = SYS_CLASS_NET) -> List[str]:
    """The network interface names (``/sys/class/net``), sorted; ``lo`` included."""
    try:
        return sorted(os.listdir(sys_class_net))
    except OSError:
        return []
