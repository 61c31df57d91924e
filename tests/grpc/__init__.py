"""Tests of the gRPC interop service (mls.interop_grpc): every RPC, the scenario configs, errors."""
