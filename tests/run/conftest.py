"""Fixtures for tests/run: real sshd servers and client identities (see tests/support/sshd.py)."""

from tests.support.sshd import ssh_client_fixture, ssh_user_key_fixture, sshd_server_fixture

__all__ = ["ssh_client_fixture", "ssh_user_key_fixture", "sshd_server_fixture"]
