"""The process's outbound HTTP for connectors that speak plain HTTP (the API channel's callback,
files fetched from providers): one client per process, so connections are kept alive between sends
and the TLS context is made once. A new httpx client per request loads the CA bundle every time:
measured at 60 % of a worker's delivery time to an API channel's callback."""

from __future__ import annotations

import functools
import os
import ssl
import threading

import httpx

_lock = threading.Lock()
_clients: dict[int, httpx.Client] = {}


@functools.cache
def tls() -> ssl.SSLContext:
    """One TLS context for the process (SSL_CERT_FILE, else certifi's bundle, as httpx makes it)."""
    return httpx.create_ssl_context()


def client() -> httpx.Client:
    """The process's client (a forked child makes its own: connections are not shared across
    processes). Per-request timeouts are given on each call."""
    pid = os.getpid()
    with _lock:
        got = _clients.get(pid)
        if got is None:
            _clients.clear()
            got = _clients[pid] = httpx.Client(verify=tls(), limits=httpx.Limits(max_connections=64,
                                                                                 max_keepalive_connections=16))
        return got
