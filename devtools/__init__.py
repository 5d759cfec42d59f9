"""Development and test tools for pineapple-jobd (never installed on a device).

- :mod:`devtools.ipk` builds OpenWrt ``.ipk`` files and feed indexes.
- ``devtools/opkg`` is an executable stand-in for OpenWrt's opkg-lede,
  implemented in :mod:`devtools.opkgsim`.
- :mod:`devtools.sandbox` builds offline roots, feeds and configs around it.

Everything here uses the standard library only.
"""
