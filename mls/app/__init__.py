"""Application layer: chat content (MIMI), clients, storage, calls. All real I/O lives here."""
