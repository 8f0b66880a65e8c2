"""Outside text is printed as text, and a malformed label is skipped (issue 14, item 1).

Containers carrying this install's id (so ``ps``/``kill`` list them) are made on the real
Docker engine with labels an image or another tool could have set: rich markup (a terminal
hyperlink), an escape sequence, and a deployment label that is no deployment name (``a/b``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from llmops.cli import app, output
from llmops.run.state import install_id

LINK = "[link=http://evil.example]x[/link]"
ESC = "e\x1b]8;;http://evil.example\x1b\\y"


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _make(docker_client, busybox_image, malformed: bool) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    own = install_id()
    tag = uuid.uuid4().hex[:8]
    made = []
    try:
        good = f"lit-{tag}"
        made.append(
            docker_client.containers.run(
                busybox_image,
                ["sleep", "300"],
                name=f"llmops-test-lit-{tag}",
                labels={
                    "llmops.deployment": good,
                    "llmops.install": own,
                    "llmops.engine": ESC,
                    "llmops.model": LINK,
                    "llmops.quant": "[bold red]q[/]",
                },
                detach=True,
            )
        )
        if malformed:
            made.append(
                docker_client.containers.run(
                    busybox_image,
                    ["sleep", "300"],
                    name=f"llmops-test-bad-{tag}",
                    labels={"llmops.deployment": "a/b", "llmops.install": own},
                    detach=True,
                )
            )
        yield {"good": good}
    finally:
        for c in made:
            c.remove(force=True)


@pytest.fixture
def marked_up(docker_client, busybox_image) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """One container of this install whose labels hold markup and an escape sequence."""
    yield from _make(docker_client, busybox_image, malformed=False)


@pytest.fixture
def containers(docker_client, busybox_image) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The same, plus one whose deployment label is `a/b`."""
    yield from _make(docker_client, busybox_image, malformed=True)


@pytest.mark.docker
def test_ps_prints_labels_literally(marked_up) -> None:  # type: ignore[no-untyped-def]
    r = _cli("ps")
    assert r.exit_code == 0, r.output
    assert LINK in r.stdout  # the characters, not a hyperlink to evil.example
    assert "[bold red]q[/]" in r.stdout
    assert "\x1b" not in r.stdout and "e\\x1b]8;;http://evil.example" in r.stdout


@pytest.mark.docker
def test_ps_skips_a_malformed_label_with_a_warning(containers) -> None:  # type: ignore[no-untyped-def]
    r = _cli("ps")
    assert r.exit_code == 0, r.output
    assert LINK in r.stdout  # the characters, not a hyperlink to evil.example
    assert "[bold red]q[/]" in r.stdout
    assert "\x1b" not in r.stdout and "e\\x1b]8;;http://evil.example" in r.stdout
    assert containers["good"] in r.stdout
    assert "'a/b'" in r.stderr and "warning:" in r.stderr and "skipped container" in r.stderr
    js = _cli("ps", "--json")
    assert js.exit_code == 0, js.output
    doc = json.loads(js.stdout)
    assert [d["name"] for d in doc["deployments"]] == [containers["good"]]
    assert doc["deployments"][0]["model"] == LINK  # JSON carries the value itself


@pytest.mark.docker
def test_kill_and_tunnel_are_not_stopped_by_a_malformed_label(containers) -> None:  # type: ignore[no-untyped-def]
    r = _cli("kill", "--dry-run")
    assert r.exit_code == 0, r.output
    assert f"would stop deployment {containers['good']}" in r.stderr
    assert "a/b" not in r.stderr.replace("'a/b'", "")  # named only in the warning
    t = _cli("tunnel", "no-such-deployment", "--via", "cloudflared")
    assert "no deployment named 'no-such-deployment'" in t.output, t.output
    assert "invalid deployment name" not in t.output


def test_output_helpers_never_read_markup(capsys: pytest.CaptureFixture[str]) -> None:
    output.warn(f"label {LINK} {ESC}")
    output.print_error(f"bad {LINK}", f"hint {LINK}")
    output.info(f"info {ESC}")
    err = capsys.readouterr().err
    assert err.count(LINK) == 3 and "\x1b" not in err
    t = output.table(title=f"t {LINK}")
    t.add_column("c")
    t.add_row(LINK)
    output.stdout().print(t)
    out = capsys.readouterr().out
    assert out.count(LINK) == 2 and "\x1b" not in out
    assert output.lit(ESC).plain == "e\\x1b]8;;http://evil.example\\x1b\\y"
