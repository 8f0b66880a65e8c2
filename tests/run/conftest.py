"""Fixtures for tests/run: real sshd servers and client identities (see tests/sshd.py)."""

from tests.sshd import ssh_client_fixture, ssh_user_key_fixture, sshd_server_fixture

__all__ = ["ssh_client_fixture", "ssh_user_key_fixture", "sshd_server_fixture"]
