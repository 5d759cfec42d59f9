"""The Unix-socket API: protocol, request handlers, server and client.

Import :class:`pineapple.api.client.JobClient` to talk to a running daemon.
"""
