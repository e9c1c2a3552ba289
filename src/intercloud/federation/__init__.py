"""Agent-to-agent calls: HMAC-signed requests with per-peer keys and replay protection
(signing.py), sent through one typed client per peer (peers.py over transport.py), their
answers checked at the boundary (answers.py)."""
