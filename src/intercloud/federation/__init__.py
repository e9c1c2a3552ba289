"""Agent-to-agent calls: HMAC-signed requests with per-peer keys and replay protection."""
