"""The gRPC server of ``mls_client.MLSClient`` (``python -m mls interop --grpc PORT``).

Every RPC runs under the service's lock (the library is not thread-safe; the runner calls one RPC
at a time anyway) and never raises: errors become status codes with the library's message.

- unknown handle (a freed ``state_id``): ``NOT_FOUND``;
- a malformed request field (an unknown ``proposal_type``) and
  :class:`~mls.errors.PeerError` (undecodable bytes, a bad signature): ``INVALID_ARGUMENT``;
- :class:`~mls.errors.UsageError` (misuse, e.g. a second commit while one is pending):
  ``FAILED_PRECONDITION``;
- :class:`~mls.errors.UnsupportedError` (an unknown cipher suite): ``UNIMPLEMENTED``;
- :class:`~mls.errors.InternalError` and any other exception: ``INTERNAL`` (for the latter, the
  exception type only).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

from mls.errors import MLSError
from mls.interop import error_kind
from mls.interop_grpc import mls_client_pb2_grpc as pb_grpc
from mls.interop_grpc.service import RPC_NAMES, MLSClientService, RpcFailure

__all__ = ["build_server", "serve", "status_of"]

# Large groups (the deep random scenario grows to ~200 members) send trees and Welcomes of a few
# hundred kilobytes; gRPC's default receive limit is 4 MiB.
_MAX_MESSAGE = 64 * 1024 * 1024

_CODES = {
    "peer": grpc.StatusCode.INVALID_ARGUMENT,
    "usage": grpc.StatusCode.FAILED_PRECONDITION,
    "unsupported": grpc.StatusCode.UNIMPLEMENTED,
    "internal": grpc.StatusCode.INTERNAL,
    "bug": grpc.StatusCode.INTERNAL,
}


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and message for an exception raised by an RPC."""
    if isinstance(exc, RpcFailure):
        return exc.code, exc.message
    if isinstance(exc, MLSError):
        # The library's messages hold no secret (its rule); the class names the check.
        return _CODES[error_kind(exc)], f"{type(exc).__name__}: {exc}"
    # Anything else is a bug: report its type only, its message could hold anything.
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})"


def _handler(service: MLSClientService, name: str) -> Callable[[Any, Any], Any]:
    method = getattr(service, name)

    def call(request: Any, context: Any) -> Any:
        try:
            with service.lock:
                return method(request)
        except Exception as exc:  # never an unhandled exception: every error is a status
            code, message = status_of(exc)
        context.abort(code, message)  # raises: the RPC ends with this status
        return None

    call.__name__ = name
    return call


class _Servicer:
    """What ``add_MLSClientServicer_to_server`` expects: one attribute per RPC."""

    def __init__(self, service: MLSClientService) -> None:
        for name in RPC_NAMES:
            setattr(self, name, _handler(service, name))


def build_server(
    service: MLSClientService, host: str = "127.0.0.1", port: int = 0
) -> tuple[grpc.Server, int]:
    """A server for ``service``, bound but not started, and the port it bound."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            # A port already in use is an error, not a second server silently sharing it.
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_MLSClientServicer_to_server(_Servicer(service), server)  # type: ignore[no-untyped-call]
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio's way of saying the bind failed
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (in use, or not an address of this host)")
    return server, bound


def serve(host: str, port: int) -> int:
    """``python -m mls interop --grpc PORT [--host HOST]``: serve until SIGINT or SIGTERM."""
    server, bound = build_server(MLSClientService(), host, port)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    # Installed before the server announces itself, so a prompt SIGTERM still stops it cleanly.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    print(f"mls_client.MLSClient listening on {host}:{bound}", file=sys.stderr, flush=True)
    stop.wait()
    server.stop(grace=1).wait()
    return 0
