"""The user model: each user's routines reconstructed from their history (mined or by an LLM)."""
