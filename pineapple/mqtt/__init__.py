"""MQTT: job events pushed to a broker, commands taken from it, fleet installs.

Only imported when ``mqtt.enabled`` is set: paho-mqtt costs ~12 MB at idle.
Topics are documented in docs/mqtt.md.
"""
