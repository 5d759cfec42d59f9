"""Project tools (not shipped): mkipk builds the OpenWrt package."""
