"""mls: Messaging Layer Security (RFC 9420) in Python."""
