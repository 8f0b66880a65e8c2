"""Names and quoting: the one path a user's value takes into a rendered file or a terminal.

Every value llmops did not write itself (a deployment name, a model or repo id, arguments after
``--``, an image, a path, a ``hosts.yaml`` entry, a label read back from Docker) reaches a
rendered file only through one of these functions, one per destination:

- ``shell``: a shell word (``shlex.quote``); ``shell_path`` keeps a leading ``~/`` working;
- ``comment``: one line of a ``#`` comment (shell, YAML, Dockerfile): control characters,
  newlines included, are written as visible escapes, so a value can never end the comment;
- ``compose_literal``: a docker compose value, ``$`` doubled so compose interpolates nothing
  llmops did not mean (its own ``${LLMOPS_API_KEY:?...}`` and ``${HOME}`` are added after);
- ``printable``: text shown in a terminal (the CLI wraps it in rich ``Text``, never markup).

YAML (compose, Kubernetes) is written by ``yaml.safe_dump``, which quotes what it must; a
Dockerfile line cannot be quoted, so what goes there is checked (``check_image_ref``) or
JSON-encoded.

And the name rules: a deployment name is a Docker container name (``llmops-NAME``) and a
directory under ``deployments/``: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, at most 128 characters.
Kubernetes object names are DNS-1123 labels (``dns_label``).

Pure: no I/O.
"""

from __future__ import annotations

import re
import shlex

from llmops.errors import UsageError

NAME_MAX = 128
DNS_LABEL_MAX = 63
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?\Z")
# Docker's reference grammar, loosely: [registry[:port]/]path[:tag][@digest], no spaces.
_IMAGE_REF = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[a-z0-9]+:[a-fA-F0-9]{32,})?\Z"
)


# ------------------------------------------------------------------------------- quoting


def printable(value: object, *, lines: bool = False) -> str:
    """``value`` as one line of plain text: every character that is not printable (newline,
    ESC, other control and format characters such as bidi overrides) as a visible escape.
    ``lines=True`` keeps newlines (a multi-line message) and escapes the rest."""
    text = str(value)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or (lines and ch == "\n"):
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return "".join(out)


def comment(value: object) -> str:
    """Text for a ``#`` comment line: always one line (see ``printable``)."""
    return printable(value)


def shell(value: object) -> str:
    """One shell word holding exactly ``value``."""
    return shlex.quote(str(value))


def shell_path(value: str) -> str:
    """A shell word for a path, keeping a leading ``~/`` working (as ``"$HOME"/...``)."""
    if value.startswith("~/"):
        return '"$HOME"/' + shlex.quote(value[2:])
    return shlex.quote(value)


def compose_literal(value: str) -> str:
    """A compose value that compose reads back as exactly ``value`` (``$`` → ``$$``)."""
    return value.replace("$", "$$")


# --------------------------------------------------------------------------------- names


def _name_hint(name: str) -> str:
    fixed = re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("_.-")[:NAME_MAX] or "my-model"
    return f"use letters, digits, '-', '_' and '.', starting with a letter or digit, e.g. `--name {fixed}`"


def is_name(name: str) -> bool:
    """True when ``name`` is a valid deployment name (see ``check_name``)."""
    return len(name) <= NAME_MAX and bool(_NAME.match(name))


def check_name(name: str) -> str:
    """``name`` when it is a valid deployment name (Docker's container-name rule).

    Raises:
        UsageError: naming the value (escaped) and the rule.
    """
    if not _NAME.match(name) or len(name) > NAME_MAX:
        why = (
            f"longer than {NAME_MAX} characters"
            if _NAME.match(name)
            else "not a Docker container name"
        )
        raise UsageError(
            f"invalid deployment name {printable(repr(name))}: {why}", _name_hint(name)
        )
    return name


def is_dns_label(text: str) -> bool:
    return len(text) <= DNS_LABEL_MAX and bool(_DNS_LABEL.match(text))


def dns_label(text: str, what: str = "name") -> str:
    """``text`` when it is a Kubernetes DNS-1123 label (lower-case alphanumerics and ``-``,
    at most 63, alphanumeric at both ends).

    Raises:
        UsageError: naming the value and the rule.
    """
    if not is_dns_label(text):
        raise UsageError(
            f"invalid Kubernetes {what} {printable(repr(text))}: not a DNS-1123 label",
            "use lower-case letters, digits and '-', at most 63, starting and ending with a "
            "letter or digit",
        )
    return text


def dns_subdomain(text: str, what: str) -> str:
    """``text`` when it is a DNS-1123 subdomain (a StorageClass name, for one).

    Raises:
        UsageError: naming the value and the rule.
    """
    if len(text) > 253 or not _DNS_SUBDOMAIN.match(text):
        raise UsageError(
            f"invalid Kubernetes {what} {printable(repr(text))}: not a DNS-1123 subdomain",
            "use lower-case letters, digits, '-' and '.'",
        )
    return text


def check_image_ref(ref: str, what: str = "image") -> str:
    """``ref`` when it reads as a Docker image reference (no spaces, newlines or quotes).

    Raises:
        UsageError: naming the value.
    """
    if not _IMAGE_REF.match(ref) or len(ref) > 512:
        raise UsageError(
            f"invalid {what} {printable(repr(ref))}: not a Docker image reference",
            "e.g. `python:3.11-slim-bookworm` or `registry.example.com:5000/team/base:1.2`",
        )
    return ref
