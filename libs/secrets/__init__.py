"""Secrets at rest: AES-GCM sealing (cipher.py), the key of a single-machine installation (keyfile.py)
and the vault over the entry store (vault.py)."""
