"""Our service definition has the interface facts of the working group's: the same package,
service, methods (with their request and response types) and messages with the same field
names, numbers, types and cardinality. The reference ``mls_client.proto`` is read from the
harness files at test time (never copied), with a small parser for the proto3 subset it uses."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor

from mls.interop_grpc import mls_client_pb2 as pb
from mls.interop_grpc.service import RPC_NAMES, MLSClientService
from tests.grpc.conftest import harness_dir

_RPC = re.compile(r"rpc\s+(\w+)\s*\(\s*(\w+)\s*\)\s*returns\s*\(\s*(\w+)\s*\)")
_MESSAGE = re.compile(r"message\s+(\w+)\s*\{([^}]*)\}")
_FIELD = re.compile(r"^\s*(repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", re.MULTILINE)
_SCALARS = {
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
}

Fields = dict[str, tuple[int, str, bool]]


def _reference() -> tuple[str, dict[str, tuple[str, str]], dict[str, Fields]]:
    text = Path(harness_dir() / "mls_client.proto").read_text()
    text = re.sub(r"//[^\n]*", "", text)
    package = re.search(r"^\s*package\s+(\w+)\s*;", text, re.MULTILINE)
    assert package is not None
    rpcs = {name: (req, resp) for name, req, resp in _RPC.findall(text)}
    messages = {
        name: {f: (int(n), t, bool(rep)) for rep, t, f, n in _FIELD.findall(body)}
        for name, body in _MESSAGE.findall(text)
    }
    return package.group(1), rpcs, messages


def _ours() -> tuple[str, dict[str, tuple[str, str]], dict[str, Fields]]:
    service = pb.DESCRIPTOR.services_by_name["MLSClient"]
    rpcs = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    messages: dict[str, Fields] = {}
    for name, desc in pb.DESCRIPTOR.message_types_by_name.items():
        messages[name] = {
            f.name: (
                f.number,
                f.message_type.name if f.message_type is not None else _SCALARS[f.type],
                f.is_repeated,
            )
            for f in desc.fields
        }
    return pb.DESCRIPTOR.package, rpcs, messages


def test_same_interface_as_the_working_group() -> None:
    ref_package, ref_rpcs, ref_messages = _reference()
    package, rpcs, messages = _ours()
    assert len(ref_rpcs) == 34
    assert package == ref_package == "mls_client"
    assert rpcs == ref_rpcs
    assert messages == ref_messages
    assert pb.DESCRIPTOR.services_by_name["MLSClient"].full_name == "mls_client.MLSClient"


def test_every_rpc_has_a_method() -> None:
    assert len(RPC_NAMES) == 34
    service = MLSClientService()
    for name in RPC_NAMES:
        assert callable(getattr(service, name)), name
