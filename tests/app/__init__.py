"""Tests of the application layer (mls/app): client, storage, disappearing messages, calls."""
