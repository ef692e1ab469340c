"""The fleet's SSH layer: connections, channels and kept sessions."""
