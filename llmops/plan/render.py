"""Renderers: a LaunchPlan as a copy-pasteable shell script, a native command, JSON, a docker
compose file or Kubernetes manifests (``plan/compose.py``, ``plan/k8s.py``); a multi-node plan
(``plan/multinode.py``) as one shell script per cluster or Kubernetes StatefulSets.

Pure: the template directory is passed in (``llmops.resources.templates_dir()`` at the edge).
Secrets never appear: they are referenced through the deployment's env file.

Every value reaches a template through one filter of ``llmops.plan.names``: ``q`` (a shell
word), ``qpath`` (a path, ``~/`` kept), ``comment`` (one line of a ``#`` comment), ``envname``
(an environment variable name, checked); ``continued`` quotes each argument.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import UsageError
from llmops.hw.facts import to_jsonable
from llmops.plan import names
from llmops.plan.launch import LaunchPlan

if TYPE_CHECKING:
    from llmops.plan.k8s import K8sOptions
    from llmops.plan.multinode import MultiNodePlan

FORMATS = ("shell", "native", "json", "compose", "k8s")
MULTINODE_FORMATS = ("shell", "json", "k8s")


def container_name(plan: LaunchPlan) -> str:
    return f"llmops-{plan.name}"


def secrets_file(plan: LaunchPlan, data_dir: str) -> str:
    return f"{data_dir}/deployments/{plan.name}/secrets.env"


def plan_json(plan: LaunchPlan) -> dict[str, Any]:
    doc: dict[str, Any] = to_jsonable(plan)
    doc["endpoint"] = plan.endpoint
    doc["container_name"] = container_name(plan) if plan.runtime == "docker" else None
    return doc


def _env(templates: Path) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["q"] = names.shell
    env.filters["qpath"] = names.shell_path
    env.filters["comment"] = names.comment
    env.filters["envname"] = env_name
    env.filters["continued"] = continued
    return env


quote_path = names.shell_path

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def env_name(value: str) -> str:
    """``value`` when it is an environment variable name (written unquoted in ``export``).

    Raises:
        UsageError: for anything else.
    """
    if not _ENV_NAME.match(value):
        raise UsageError(
            f"invalid environment variable name {names.printable(repr(value))}",
            "use letters, digits and '_', not starting with a digit",
        )
    return value


def argv_groups(argv: tuple[str, ...] | list[str]) -> list[str]:
    """Arguments grouped for display: ``--flag value`` pairs, runs of positionals; quoted."""
    groups: list[list[str]] = []
    for a in argv:
        last = groups[-1] if groups else None
        if a.startswith("-") or last is None:
            groups.append([a])
        elif last[0].startswith("-") and len(last) == 1:
            last.append(a)  # the flag's value
        elif not last[0].startswith("-"):
            last.append(a)  # another positional
        else:
            groups.append([a])
    return [" ".join(names.shell(x) for x in g) for g in groups]


def continued(argv: tuple[str, ...] | list[str], indent: int = 4) -> str:
    """The argument groups joined with shell line continuations."""
    return (" \\\n" + " " * indent).join(argv_groups(argv))


def check_format(fmt: str) -> str:
    """Return ``fmt`` when a renderer knows it.

    Raises:
        UsageError: for an unknown format.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", "choose one of: " + ", ".join(FORMATS))
    return fmt


def render(
    plan: LaunchPlan,
    fmt: str,
    *,
    templates: Path,
    data_dir: str,
    k8s: K8sOptions | None = None,
) -> str:
    """Render a plan in one of ``FORMATS``.

    Raises:
        UsageError: for an unknown format, or shell format of a native plan.
    """
    if fmt == "json":
        return json.dumps({"schema": 1, "plan": plan_json(plan)}, indent=2) + "\n"
    if fmt == "compose":
        from llmops.plan.compose import render_compose

        return render_compose(plan, secrets_file=secrets_file(plan, data_dir))
    if fmt == "k8s":
        from llmops.plan.k8s import render_k8s

        return render_k8s(plan, k8s)
    if fmt == "shell":
        if plan.runtime != "docker":
            raise UsageError(
                "the shell format is a `docker run` line; this plan uses the native runtime",
                "use `--format native`, or `--runtime docker`",
            )
        tpl = "docker-run.sh.j2"
    elif fmt == "native":
        if plan.runtime != "native":
            raise UsageError(
                "the native format needs a native plan",
                "add `--runtime native` (render picks it for you when you ask for --format native)",
            )
        tpl = "native.sh.j2"
    else:
        raise UsageError(f"unknown format {fmt!r}", "choose one of: " + ", ".join(FORMATS))
    text: str = (
        _env(templates)
        .get_template(tpl)
        .render(
            plan=plan,
            container_name=container_name(plan),
            secrets_file=secrets_file(plan, data_dir),
        )
    )
    return text


def render_multinode(
    mp: MultiNodePlan,
    fmt: str,
    *,
    templates: Path,
    data_dir: str,
    k8s: K8sOptions | None = None,
) -> str:
    """Render a multi-node plan: ``shell`` (one script, a section per role), ``k8s``, ``json``.

    Raises:
        UsageError: for compose/native (one host each) or an unknown format.
    """
    from llmops.plan import multinode

    if fmt == "json":
        return json.dumps({"schema": 1, "multinode": multinode.multinode_json(mp)}, indent=2) + "\n"
    if fmt == "k8s":
        from llmops.plan.k8s import render_k8s_multinode

        return render_k8s_multinode(mp, k8s)
    if fmt != "shell":
        raise UsageError(
            f"a multi-node plan renders as {', '.join(MULTINODE_FORMATS)}, not {fmt!r}",
            "compose and native describe one host: use `--format shell` (a script per node "
            "role) or `--format k8s`",
        )
    plan = mp.serve
    text: str = (
        _env(templates)
        .get_template("multinode-ray.sh.j2")
        .render(
            mp=mp,
            plan=plan,
            script=f"{plan.name}.sh",
            container=container_name(plan),
            secrets_file=secrets_file(plan, data_dir),
            head_ip=mp.head_address or "",
            shm=multinode.SHM_SIZE,
            head_script=multinode.head_script(mp),
            worker_script=multinode.worker_script(mp),
        )
    )
    return text
