"""pineapple-jobd: the dependency job daemon for OpenWrt devices.

The in-process engine lives in :mod:`pineapple.jobs`; the opkg jobs in
:mod:`pineapple.opkg`; the daemon, its socket API and client in
:mod:`pineapple.daemon` and :mod:`pineapple.api`.
"""
from __future__ import annotations

__version__ = "0.1.0"
