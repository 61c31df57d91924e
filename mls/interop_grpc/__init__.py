"""The MLS working group's interop service ``mls_client.MLSClient`` over gRPC.

``python -m mls interop --grpc PORT [--host HOST]`` runs it (``pip install 'mls-protocol[interop]'``
brings grpcio and protobuf); ``docs/interop.md`` says how to point the working group's test
runner at it. :mod:`mls.interop_grpc.service` maps every RPC onto the public :mod:`mls.group`
API and keeps the handles; :mod:`mls.interop_grpc.server` is the gRPC glue and the command.
``mls_client.proto`` is this project's service definition; the ``mls_client_pb2*`` modules are
generated from it (the command is in the ``.proto``).

Nothing here is imported by ``import mls``: the protocol package never needs grpcio.
"""

from __future__ import annotations
