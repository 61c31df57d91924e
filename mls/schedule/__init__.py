"""The key schedule (RFC 9420 §8, §9): GroupContext, epoch secrets, PSKs, transcripts, secrets."""
