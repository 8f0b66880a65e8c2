"""Fixtures for tests/run: real sshd servers and client identities (see tests/sshd.py)."""

from tests.sshd import ssh_client, ssh_user_key, sshd_server

__all__ = ["ssh_client", "ssh_user_key", "sshd_server"]
