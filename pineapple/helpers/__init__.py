"""Helpers for module backends, compatible with Hak5's ``pineapple.helpers``.

The package itself gives :func:`json_to_bytes` and :func:`get_version`;
its submodules (imported on their own, so a module pays only for what it
uses):

- :mod:`.opkg_helpers`: ``OpkgJob(package, install)``, ``check_if_installed``,
  ``install_dependency``, ``uninstall_dependency``, ``update_repository`` —
  through pineapple-jobd when it runs, opkg in this process otherwise;
- :mod:`.notification_helpers`: levels and ``send_notification``;
- :mod:`.network_helpers`: ``check_for_internet``, ``get_interfaces``;
- :mod:`.command_helpers`: ``grep_output``, ``check_for_process``;
- :mod:`.uci_helpers`: ``uci_get``, ``uci_set``.
"""
from __future__ import annotations

from .helpers import VERSION_FILE, get_version, json_to_bytes

__all__ = ["VERSION_FILE", "get_version", "json_to_bytes"]
