"""Mutation score of the planning code and the security-critical modules (not part of CI: slow).

Each mutant is one small change to one copy of the source (a flipped comparison, ``and`` for
``or``, a changed constant, a removed ``not``, ``return None``, a deleted call/raise/return, an
``if`` condition dropped); the tests that reach the changed line must then fail. The script
prints, per module group, how many mutants the tests killed, how many hung (killed by the
per-mutant timeout, counted apart), how many survived, the score and the time; then the machine
and every survivor as ``path:line: original -> mutant`` so a test can be written for it.

    python benchmarks/mutation.py [--module plan|kill|tunnel|ssh|secrets|ready|all]
        [--files NAME,...] [--jobs N] [--limit N] [--sample FRACTION --seed S] [--json FILE]

How it stays practical on two cores:

- The repository (``git ls-files`` plus untracked, not-ignored files) is copied to a temporary
  directory per worker; the working tree is never touched. Tests run there with ``PYTHONPATH``
  at the copy, and a baseline run checks that ``llmops`` is imported from the copy.
- Per group, only the test files mapped to it below run (``GROUPS``). A baseline run of those
  tests, traced, records which test reaches which line of the mutated files: each mutant then
  runs only the tests that reach its line (fastest first, ``-x``, ``-p no:cacheprovider``), and a
  mutant on a line no test reaches survives without a run ("not covered"). A mutant at module
  or class level runs the tests that reach where it is read: the lines that read the constant,
  the methods of the class, the body of the function whose default it is (else every test that
  reaches the file). Tests that fail in the baseline run are left out, and named.
- A worker is a long-lived process that has imported pytest and the third-party libraries the
  tests use; each mutant runs in a fork of it, so a run costs the collection of the selected
  test files, not a new interpreter. Bytecode is precompiled with checked hashes, so a mutated
  file is always recompiled and an unchanged one never is.
- A mutant whose tests run longer than ``--timeout-factor`` x their baseline time plus
  ``--timeout-extra`` seconds is stopped, with everything it started, and counts as killed by
  timeout.

Not mutated: docstrings, ``__all__``, type annotations, decorators, ``if TYPE_CHECKING:``
blocks, lines marked ``# pragma: no mutate``, and message text: the arguments of exception
constructors, ``hint=``/``message=``/``msg=``/``help=`` keywords, logging calls, and (unless
``--mutate-prose``) any string of four or more words. The trace sees the test process and its
threads, not a subprocess a test starts: code reached only there (``kill``'s protection of
llmops itself, run in a script named like an engine) is mapped by hand (``Target.extra``: a
function or class, and the tests that reach it in a subprocess), else it counts as not covered.

    python benchmarks/mutation.py --module plan --files names,audit,tunnel --sample 0.2

Why not mutmut 3: it runs (its in-process trampolines were about ten times faster per mutant
here), but it mutates only inside functions (not the engine tables and constants of ``plan/``),
mutates message strings, and its test selection, results and diffs are its own state to parse;
this script keeps the operators, the exclusions and the report under the project's control.

The test harness's sentinels (``tests/support/sentinels.py``: foreign containers and a process planted
around each pytest session) are planted only for the ``kill`` group, where harming them is a
finding; elsewhere they would cost seconds per mutant and detect nothing.

Safety: a ``kill`` mutant runs the real stop sequence, and one that drops a test's scoping
(``process_filter``, ``container_filter``) targets whatever matches on the whole host. So the
workers run in their own PID namespace (``unshare --pid --mount-proc``; ``--no-pid-namespace``
to opt out): such a mutant can signal only what the tests started. Docker has no such boundary,
so the tests that stop containers (``Target.host_unsafe``) run only with ``--host-unsafe``, on a
machine that is yours alone; without it, the container-stopping code counts as not covered.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent

# ------------------------------------------------------------------------------ what to mutate


@dataclass(frozen=True)
class Target:
    """One file to mutate, optionally only inside the named functions/classes (qualnames; a
    class includes its methods), and the test files/node ids that exercise it."""

    path: str
    tests: tuple[str, ...]
    only: tuple[str, ...] = ()
    #: tests that act on the whole host when a mutant breaks their scoping (a ``kill`` mutant
    #: that ignores the test's container filter stops every engine container on the Docker
    #: engine, other users' included): left out unless --host-unsafe
    host_unsafe: tuple[str, ...] = ()
    #: (qualname, tests): code that the named tests reach only in a subprocess they start (the
    #: trace sees the test process alone), so the trace cannot map it. A mutant inside the
    #: function/class ``qualname`` (or one of its methods) also runs these tests, first.
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def extra_tests(self, scope: str) -> tuple[str, ...]:
        out: list[str] = []
        for q, tests in self.extra:
            if scope == q or scope.startswith(q + "."):
                out += [t for t in tests if t not in out]
        return tuple(out)


PLAN_TESTS: tuple[str, ...] = (
    "tests/plan/test_tunnel_parse.py",
    "tests/plan/test_checks.py",
    "tests/plan/test_hardware.py",
    "tests/plan/test_estimator.py",
    "tests/catalog/test_hub_gguf.py",
    "tests/plan/test_measured_smollm2.py",
    "tests/project/test_plan_imports.py",
    "tests/plan/test_launch_plan.py",
    "tests/catalog/test_recipes.py",
    "tests/plan/test_render_compose.py",
    "tests/plan/test_render_k8s.py",
    "tests/plan/test_render_multinode.py",
    "tests/cli/test_fit.py",
    "tests/cli/test_recommend.py",
    "tests/cli/test_render_scale.py",
    "tests/cli/test_doctor.py",
    "tests/cli/test_seed_parity.py",
    "tests/cli/test_launch_cli.py",
    "tests/cli/test_fleet.py",
    "tests/plan/test_planted_bugs.py",
    "tests/plan/test_golden_meaning.py",
    "tests/plan/test_audit_routes.py",
    "tests/plan/test_injection.py",
    "tests/plan/test_decision.py",
    "tests/plan/test_engine_defects.py",
    "tests/run/test_mutants_tunnel.py",
    "tests/plan/test_mutants_plan_names.py",
    "tests/plan/test_mutants_plan_diagnose.py",
    "tests/plan/test_mutants_plan_launch.py",
    "tests/plan/test_mutants_plan_render.py",
    "tests/plan/test_mutants_plan_audit.py",
    "tests/plan/test_mutants_plan_hardware.py",
    "tests/plan/test_mutants_plan_tunnel.py",
    "tests/plan/test_mutants_plan_checks.py",
    "tests/plan/test_mutants_plan_multinode.py",
    "tests/plan/test_engine_sglang.py",
    "tests/plan/test_engine_memory_checks.py",
    "tests/plan/test_engine_conformance.py",
    "tests/plan/test_estimator_arch.py",
    "tests/catalog/test_catalog_2026.py",
    "tests/plan/test_recommend_expert.py",
    "tests/plan/test_agreement.py",
    "tests/plan/test_gpus_flag.py",
    "tests/cli/test_render_monitoring.py",
)
#: and every ``tests/plan/test_mutants_plan_<file>.py`` (one per plan file, written for its survivors)
PLAN_TESTS += tuple(
    t
    for t in sorted(
        p.relative_to(REPO).as_posix() for p in (REPO / "tests/plan").glob("test_mutants_plan_*.py")
    )
    if t not in PLAN_TESTS
)

#: ``plan/``: every file; the tests that reach it are found by the baseline trace.
_PLAN_FILES = (
    "artifacts",
    "audit",
    "audit_routes",
    "checks",
    "checks_base",
    "checks_gpu",
    "checks_host",
    "compose",
    "deploy",
    "deploy_candidates",
    "deploy_request",
    "deploy_types",
    "diagnose",
    "gpus",
    "hardware",
    "k8s",
    "kv",
    "launch",
    "memory",
    "memory_engines",
    "memory_place",
    "memory_types",
    "model",
    "monitoring",
    "multinode",
    "names",
    "quant",
    "recommend",
    "render",
    "tunnel",
    "verify",
    "engines/base",
    "engines/llamacpp",
    "engines/rules",
    "engines/sglang",
    "engines/tgi",
    "engines/torch",
    "engines/vllm",
)

_KILL_SELF = (
    "tests/run/test_planted_bugs_run.py::test_llmops_itself_and_its_parents_are_never_targets"
)
_UP_JSON = "tests/cli/test_planted_bugs_cli.py::test_up_json_never_prints_the_api_key"

_TUNNEL_RUN_TESTS = (
    "tests/run/test_mutants_tunnel.py",
    "tests/run/test_planted_bugs_run.py",
    "tests/run/test_tunnels.py",
    "tests/cli/test_tunnel_cli.py",
    "tests/run/test_kill.py",
)
_SSH_TESTS = (
    "tests/run/test_mutants_ssh.py",
    "tests/run/test_ssh_parse.py",
    "tests/run/test_planted_bugs_run.py",
    "tests/run/test_ssh_real.py",
    "tests/run/test_tunnels.py",
    "tests/cli/test_remote.py",
)

GROUPS: dict[str, tuple[Target, ...]] = {
    "plan": tuple(Target(f"llmops/plan/{m}.py", PLAN_TESTS) for m in _PLAN_FILES),
    # Ownership: what `kill` may stop (matching, protected pids, pid reuse, execution order).
    "kill": (
        Target(
            "llmops/run/kill.py",
            (
                "tests/run/test_kill_rules.py",
                "tests/run/test_mutants_kill.py",
                "tests/run/test_kill.py",
                "tests/run/test_planted_bugs_run.py",
                "tests/cli/test_kill_cli.py",
            ),
            host_unsafe=("tests/run/test_kill.py::test_kill_all_containers_by_image_not_by_name",),
            # llmops and its ancestors are protected in the `vllm`-named script this test
            # starts (os.getpid() there is not the test's)
            extra=(
                ("KillSequence._protected_pids", (_KILL_SELF,)),
                ("KillSequence.foreign_processes", (_KILL_SELF,)),
            ),
        ),
    ),
    # The exposure check: a tunnel is kept only when the endpoint refuses a keyless request.
    "tunnel": (
        Target(
            "llmops/plan/tunnel.py",
            (
                "tests/run/test_mutants_tunnel.py",
                "tests/plan/test_planted_bugs.py",
                "tests/plan/test_tunnel_parse.py",
                "tests/run/test_tunnels.py",
            ),
            only=("judge_exposure", "ExposureCheck", "ngrok_config_text"),
        ),
        # run/tunnels is a package now: the check and the opening, and the target's choice
        Target(
            "llmops/run/tunnels/exposure.py",
            _TUNNEL_RUN_TESTS,
            only=("check_exposure", "open_tunnel"),
        ),
        Target("llmops/run/tunnels/targets.py", _TUNNEL_RUN_TESTS, only=("resolve_target",)),
        # the probe behind the exposure check: a key only when given, an HTTP error a status
        Target(
            "llmops/net.py",
            (
                "tests/project/test_net.py",
                "tests/run/test_mutants_tunnel.py",
                "tests/run/test_tunnels.py",
                "tests/cli/test_tunnel_cli.py",
            ),
            only=("http_status",),
        ),
    ),
    # SSH trust: host key policy, known_hosts files, ProxyJump/ProxyCommand.
    "ssh": (
        # run/ssh is a package now: the same functions, in the modules they moved to
        Target("llmops/run/ssh/target.py", _SSH_TESTS, only=("known_hosts_name",)),
        Target(
            "llmops/run/ssh/config.py", _SSH_TESTS, only=("SshEndpoint.known_hosts_name", "resolve")
        ),
        Target(
            "llmops/run/ssh/trust.py",
            _SSH_TESTS,
            only=("llmops_known_hosts", "files_holding", "_TrustPolicy"),
        ),
        Target(
            "llmops/run/ssh/host.py",
            _SSH_TESTS,
            only=(
                "SshHost.connect",
                "SshHost._read_known_hosts_files",
                "SshHost._proxy_sock",
                "SshHost._mismatch",
            ),
        ),
    ),
    # Secrets: the 0600 secrets file, the API key, and every masked form of a token.
    "secrets": (
        Target(
            "llmops/run/state.py",
            (
                "tests/run/test_mutants_secrets.py",
                "tests/run/test_launch_native.py",
                "tests/run/test_tunnels.py",
                "tests/cli/test_tunnel_cli.py",
                "tests/cli/test_launch_cli.py",
                "tests/cli/test_kill_cli.py",
            ),
            only=(
                "new_api_key",
                "mask",
                "DeploymentStore.dir",
                "DeploymentStore.save",
                "DeploymentStore.write_secrets",
                "DeploymentStore.read_secrets",
                "DeploymentStore.api_key",
            ),
            # a real native `up --json`: the key reaches the engine, never the output
            extra=(
                ("DeploymentStore.save", (_UP_JSON,)),
                ("DeploymentStore.write_secrets", (_UP_JSON,)),
                ("new_api_key", (_UP_JSON,)),
            ),
        ),
        Target(
            "llmops/hw/hf.py",
            (
                "tests/run/test_mutants_secrets.py",
                "tests/hw/test_probes_pure.py",
                "tests/cli/test_doctor.py",
            ),
            only=("mask_secret", "find_token"),
        ),
        Target(
            "llmops/hw/remote_probe.py",
            (
                "tests/run/test_mutants_secrets.py",
                "tests/plan/test_planted_bugs.py",
                "tests/hw/test_probes_pure.py",
                "tests/cli/test_remote.py",
            ),
            only=("_mask", "_hf"),
        ),
    ),
    # Readiness: `up` reports ready only when the engine serves, and stops waiting on death.
    "ready": (
        Target(
            "llmops/run/ready.py",
            (
                "tests/run/test_ready_rules.py",
                "tests/run/test_planted_bugs_run.py",
                "tests/run/test_launch_native.py",
                "tests/run/test_launch_docker.py",
                "tests/cli/test_launch_cli.py",
            ),
        ),
        # the probe readiness polls with (also in "tunnel", mapped to the exposure check's tests)
        Target(
            "llmops/net.py",
            (
                "tests/project/test_net.py",
                "tests/run/test_ready_rules.py",
                "tests/run/test_planted_bugs_run.py",
                "tests/run/test_launch_native.py",
            ),
            only=("http_status",),
        ),
    ),
}


def group_targets(
    group: str, files: str | None = None, tests: str | None = None
) -> tuple[Target, ...]:
    """The group's targets, or only those whose path matches one of ``files`` (comma-separated:
    a stem such as ``tunnel``, or a path tail such as ``engines/vllm`` or ``plan/tunnel.py``).
    ``tests`` (comma-separated) replaces the mapped tests: a quick hunt for survivors, whose
    score is a lower bound of the mapped tests' score."""
    targets = GROUPS[group]
    if files:
        want = [w.strip().removesuffix(".py") for w in files.split(",") if w.strip()]
        targets = tuple(
            tg for tg in targets if any(tg.path.removesuffix(".py").endswith("/" + w) for w in want)
        )
    if tests:
        only = tuple(t.strip() for t in tests.split(",") if t.strip())
        files = {t.split("::")[0] for t in only}
        targets = tuple(
            dataclasses.replace(
                tg,
                tests=only,
                # a subprocess-only mapping stays when its test file is among those run
                extra=tuple(
                    (q, kept)
                    for q, ts in tg.extra
                    if (kept := tuple(t for t in ts if t.split("::")[0] in files))
                ),
            )
            for tg in targets
        )
    return targets


#: Groups whose tests keep the harness's sentinels (see the module docstring).
SENTINEL_GROUPS = {"kill"}

# ------------------------------------------------------------------------------ mutants


@dataclass(frozen=True)
class Mutant:
    path: str  # repository-relative
    line: int
    start: int  # byte offsets in the file
    end: int
    replacement: str
    op: str
    original_text: str  # for the report, one line
    mutant_text: str
    scope: str  # qualname of the enclosing function, "" at module/class level
    first_line: int
    last_line: int
    #: for a mutant at module/class level: the lines whose tests can see it (the uses of the
    #: constant, the methods of the class, the body of the function a default belongs to)
    use_lines: tuple[tuple[int, int], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.path}:{self.line}:{self.start}:{self.op}:{self.replacement}"

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]

    def describe(self) -> str:
        return f"{self.path}:{self.line}: {self.original_text} -> {self.mutant_text}"


_CMP_FLIP: dict[type[ast.cmpop], tuple[type[ast.cmpop], str, str]] = {
    ast.Eq: (ast.NotEq, r"==", "!="),
    ast.NotEq: (ast.Eq, r"!=", "=="),
    ast.Lt: (ast.LtE, r"<(?![<=])", "<="),
    ast.LtE: (ast.Lt, r"<=", "<"),
    ast.Gt: (ast.GtE, r"(?<![-=])>(?![>=])", ">="),
    ast.GtE: (ast.Gt, r">=", ">"),
    ast.In: (ast.NotIn, r"\bin\b", "not in"),
    ast.NotIn: (ast.In, r"\bnot\s+in\b", "in"),
    ast.Is: (ast.IsNot, r"\bis\b", "is not"),
    ast.IsNot: (ast.Is, r"\bis\s+not\b", "is"),
}
_BIN_FLIP: dict[type[ast.operator], tuple[type[ast.operator], str, str]] = {
    ast.Add: (ast.Sub, r"\+", "-"),
    ast.Sub: (ast.Add, r"-", "+"),
    ast.Mult: (ast.Div, r"(?<!\*)\*(?!\*)", "/"),
    ast.Div: (ast.Mult, r"(?<!/)/(?!/)", "*"),
    ast.FloorDiv: (ast.Mult, r"//", "*"),
}
_LOG_FUNCS = {
    "debug",
    "info",
    "warning",
    "warn",
    "error",
    "exception",
    "critical",
    "log",
    "print",
    "echo",
    "secho",
}
_MESSAGE_KEYWORDS = {"hint", "message", "msg", "help", "description", "epilog"}
_ATOMIC = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Tuple)


def exception_names(root: Path) -> set[str]:
    """Builtin exception/warning names and every class in ``llmops/`` that derives from one."""
    import builtins

    names = {
        n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)
    }
    classes: dict[str, list[str]] = {}
    for p in (root / "llmops").rglob("*.py"):
        with contextlib.suppress(SyntaxError, OSError, ValueError):
            for node in ast.walk(ast.parse(p.read_bytes())):
                if isinstance(node, ast.ClassDef):
                    bases = [
                        b.id if isinstance(b, ast.Name) else b.attr
                        for b in node.bases
                        if isinstance(b, (ast.Name, ast.Attribute))
                    ]
                    classes.setdefault(node.name, []).extend(bases)
    changed = True
    while changed:
        changed = False
        for name, bases in classes.items():
            if name not in names and any(b in names for b in bases):
                names.add(name)
                changed = True
    return names


def _is_prose(text: str) -> bool:
    return "\n" not in text and len(text.split()) >= 4


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _callee(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def _is_std_write(node: ast.Call) -> bool:
    f = node.func
    return (
        isinstance(f, ast.Attribute)
        and f.attr == "write"
        and isinstance(f.value, ast.Attribute)
        and f.value.attr in ("stderr", "stdout")
    )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


class MutantFinder:
    """Walks one module and lists its mutants (see the module docstring for the operators)."""

    def __init__(
        self,
        path: str,
        source: bytes,
        *,
        only: Sequence[str] = (),
        exceptions: set[str] = frozenset(),  # type: ignore[assignment]
        mutate_prose: bool = False,
    ) -> None:
        self.path = path
        self.source = source
        self.only = tuple(only)
        self.exceptions = exceptions
        self.mutate_prose = mutate_prose
        self.tree = ast.parse(source)
        self.line_offsets = [0]
        for line in source.splitlines(keepends=True):
            self.line_offsets.append(self.line_offsets[-1] + len(line))
        self.text_lines = source.decode().splitlines()
        self.mutants: list[Mutant] = []
        self._seen: set[tuple[int, int, str]] = set()
        self._uses: tuple[tuple[int, int], ...] = ()
        # where each module-level name is read inside a function of this module
        self._name_uses: dict[str, list[int]] = {}
        for fn in ast.walk(self.tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for n in ast.walk(fn):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                        self._name_uses.setdefault(n.id, []).append(n.lineno)

    # ---- positions and text

    def _off(self, line: int, col: int) -> int:
        return self.line_offsets[line - 1] + col

    def _span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self._off(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self._off(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def _text(self, node: ast.AST) -> str:
        a, b = self._span(node)
        return self.source[a:b].decode()

    def _pragma(self, node: ast.AST) -> bool:
        first = node.lineno  # type: ignore[attr-defined]
        last = node.end_lineno or first  # type: ignore[attr-defined]
        return any("pragma: no mutate" in self.text_lines[i - 1] for i in range(first, last + 1))

    def _in_scope(self, scope: str) -> bool:
        if not self.only:
            return True
        return any(scope == o or scope.startswith(o + ".") for o in self.only)

    def _add(
        self,
        node: ast.AST,
        scope: str,
        op: str,
        replacement: str,
        shown_from: str,
        shown_to: str,
        *,
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        if not self._in_scope(scope) or self._pragma(node):
            return
        a, b = self._span(node)
        a = a if start is None else start
        b = b if end is None else end
        k = (a, b, replacement)
        if k in self._seen or self.source[a:b].decode() == replacement:
            return
        self._seen.add(k)
        self.mutants.append(
            Mutant(
                path=self.path,
                line=node.lineno,  # type: ignore[attr-defined]
                start=a,
                end=b,
                replacement=replacement,
                op=op,
                original_text=_short(shown_from),
                mutant_text=_short(shown_to),
                scope=scope,
                first_line=node.lineno,  # type: ignore[attr-defined]
                last_line=node.end_lineno or node.lineno,  # type: ignore[attr-defined]
                use_lines=self._uses if scope == "" else (),
            )
        )

    def _replace_op(
        self,
        node: ast.AST,
        left: ast.AST,
        right: ast.AST,
        pattern: str,
        new_op: str,
        mutated: ast.AST,
        scope: str,
        op: str,
    ) -> None:
        """Replace the operator token between ``left`` and ``right`` (minimal diff); fall back
        to the whole node, re-generated, in parentheses."""
        ga = self._off(left.end_lineno, left.end_col_offset)  # type: ignore[attr-defined]
        gb = self._off(right.lineno, right.col_offset)  # type: ignore[attr-defined]
        gap = self.source[ga:gb].decode()
        code_gap = re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0)), gap)
        found = list(re.finditer(pattern, code_gap))
        shown_from = ast.unparse(node)
        shown_to = ast.unparse(mutated)
        if len(found) == 1:
            m = found[0]
            new_gap = gap[: m.start()] + new_op + gap[m.end() :]
            na, nb = self._span(node)
            replacement = self.source[na:ga].decode() + new_gap + self.source[gb:nb].decode()
            self._add(node, scope, op, replacement, shown_from, shown_to)
        else:
            self._add(node, scope, op, f"({shown_to})", shown_from, shown_to)

    # ---- the walk

    def find(self) -> list[Mutant]:
        self._body(self.tree.body, "", in_func=False)
        return self.mutants

    def _body(self, body: Sequence[ast.stmt], scope: str, *, in_func: bool) -> None:
        for i, stmt in enumerate(body):
            if i == 0 and _is_docstring(stmt):
                continue
            self._stmt(stmt, scope, in_func=in_func, tail=False)

    def _stmt(self, s: ast.stmt, scope: str, *, in_func: bool, tail: bool) -> None:
        """``tail``: control falls off the end of the function after ``s`` (so deleting a
        ``return`` there is ``return None``, or nothing at all)."""
        fscope = scope if in_func else ""
        if isinstance(s, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Pass)):
            return
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qual = f"{scope}.{s.name}" if scope else s.name
            saved = self._uses
            self._uses = ((s.body[0].lineno, s.end_lineno or s.lineno),)
            for d in [*s.args.defaults, *[d for d in s.args.kw_defaults if d is not None]]:
                # evaluated when the def runs: for coverage, where the def is; for `only`,
                # the function's own (a nested def's defaults: the enclosing function's)
                if in_func:
                    self._expr(d, scope, message=False, as_global=False)
                else:
                    self._expr(d, qual, message=False, as_global=True)
            self._uses = saved
            self._func_body(s.body, qual)
            return
        if isinstance(s, ast.ClassDef):
            qual = f"{scope}.{s.name}" if scope else s.name
            saved = self._uses
            methods = tuple(
                (f.body[0].lineno, f.end_lineno or f.lineno)
                for f in s.body
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            )
            self._uses = methods or saved
            self._body(s.body, qual, in_func=False)
            self._uses = saved
            return
        if isinstance(s, ast.If) and _is_type_checking(s.test):
            return
        if isinstance(s, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return
            str_value = isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)
            if isinstance(s, ast.AugAssign) and type(s.op) in _BIN_FLIP and not str_value:
                new_cls, pat, new_op = _BIN_FLIP[type(s.op)]
                mutated = ast.AugAssign(target=s.target, op=new_cls(), value=s.value)
                self._replace_op(
                    s, s.target, s.value, pat + "=", new_op + "=", mutated, fscope, "augassign"
                )
            if s.value is not None:
                saved = self._uses
                if not in_func and not scope:  # a module-level constant: where it is read
                    names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
                    lines = sorted({ln for nm in names for ln in self._name_uses.get(nm, [])})
                    self._uses = tuple((ln, ln) for ln in lines)
                self._expr(s.value, scope, message=False, as_global=not in_func)
                self._uses = saved
            return
        if isinstance(s, ast.Expr):
            if _is_docstring(s):
                return
            v = s.value
            if isinstance(v, ast.Call) and in_func:
                name = _callee(v)
                if name not in _LOG_FUNCS and not _is_std_write(v):
                    self._add(s, fscope, "delete-call", "pass", ast.unparse(v), "pass")
            self._expr(v, scope, message=False, as_global=not in_func)
            return
        if isinstance(s, ast.Return):
            none = isinstance(s.value, ast.Constant) and s.value.value is None
            if s.value is not None and in_func and not none:
                self._add(s, fscope, "return-none", "return None", ast.unparse(s), "return None")
            if in_func and not tail:
                self._add(s, fscope, "delete-return", "pass", ast.unparse(s), "pass")
            if s.value is not None:
                self._expr(s.value, scope, message=False, as_global=not in_func)
            return
        if isinstance(s, ast.Raise):
            if in_func:
                self._add(s, fscope, "delete-raise", "pass", _short(ast.unparse(s), 50), "pass")
            if s.exc is not None:
                self._expr(s.exc, scope, message=False, as_global=not in_func)
            return
        if isinstance(s, ast.If):
            self._condition(s, scope, in_func=in_func)
            self._expr(s.test, scope, message=False, as_global=not in_func)
            self._plain(s.body, scope, in_func=in_func, tail=tail)
            self._plain(s.orelse, scope, in_func=in_func, tail=tail)
            return
        # every other statement: its expressions, then its nested bodies
        for name, value in ast.iter_fields(s):
            if name in ("body", "orelse", "finalbody", "handlers", "cases"):
                continue
            if isinstance(value, ast.expr):
                if name in ("target", "annotation", "returns", "type", "type_comment"):
                    continue
                self._expr(value, scope, message=False, as_global=not in_func)
            elif isinstance(value, list):
                for v in value:
                    if isinstance(v, ast.expr) and name not in ("targets",):
                        self._expr(v, scope, message=False, as_global=not in_func)
                    elif isinstance(v, ast.withitem):
                        self._expr(v.context_expr, scope, message=False, as_global=not in_func)
        loop = isinstance(s, (ast.For, ast.AsyncFor, ast.While))
        final = bool(getattr(s, "finalbody", None))
        orelse = bool(getattr(s, "orelse", None))
        self._plain(
            getattr(s, "body", None) or [],
            scope,
            in_func=in_func,
            tail=tail and not loop and not final and not (orelse and not loop),
        )
        self._plain(
            getattr(s, "orelse", None) or [], scope, in_func=in_func, tail=tail and not final
        )
        self._plain(getattr(s, "finalbody", None) or [], scope, in_func=in_func, tail=tail)
        for h in getattr(s, "handlers", None) or []:
            self._plain(h.body, scope, in_func=in_func, tail=tail and not final)
        for c in getattr(s, "cases", None) or []:
            self._plain(c.body, scope, in_func=in_func, tail=tail)

    def _plain(
        self, body: Sequence[ast.stmt], scope: str, *, in_func: bool = True, tail: bool = False
    ) -> None:
        for i, st in enumerate(body):
            self._stmt(st, scope, in_func=in_func, tail=tail and i == len(body) - 1)

    def _func_body(self, body: Sequence[ast.stmt], qual: str) -> None:
        for i, stmt in enumerate(body):
            if i == 0 and _is_docstring(stmt):
                continue
            self._stmt(stmt, qual, in_func=True, tail=i == len(body) - 1)

    def _condition(self, s: ast.If, scope: str, *, in_func: bool) -> None:
        fscope = scope if in_func else ""
        t = s.test
        if isinstance(t, ast.BoolOp) and len(t.values) > 1:
            kw = " and " if isinstance(t.op, ast.And) else " or "
            for i in range(len(t.values)):
                rest = [v for j, v in enumerate(t.values) if j != i]
                if len(rest) == 1:
                    text = self._text(rest[0])
                    shown = ast.unparse(rest[0])
                else:
                    text = kw.join(f"({self._text(v)})" for v in rest)
                    shown = ast.unparse(ast.BoolOp(op=t.op, values=rest))
                repl = f"({text})"
                self._add(t, fscope, "drop-condition", repl, f"if {ast.unparse(t)}", f"if {shown}")
        elif not (isinstance(t, ast.Constant)):
            self._add(t, fscope, "if-true", "True", f"if {ast.unparse(t)}", "if True")

    def _expr(self, node: ast.expr, scope: str, *, message: bool, as_global: bool) -> None:
        fscope = "" if as_global else scope
        # `only` is about where the code is; coverage is about when it runs. A default value
        # or a class attribute is in its function/class for `only`, global for coverage.
        only_scope = scope
        if isinstance(node, ast.JoinedStr):
            if not message:
                self._fstring(node, only_scope, fscope)
            return
        if isinstance(node, ast.Constant):
            self._constant(node, only_scope, fscope, message=message)
            return
        if isinstance(node, ast.Lambda):
            for d in node.args.defaults:
                self._expr(d, scope, message=message, as_global=as_global)
            self._expr(node.body, scope, message=message, as_global=as_global)
            return
        if isinstance(node, ast.Compare):
            left = node.left
            for i, (cop, right) in enumerate(zip(node.ops, node.comparators, strict=True)):
                if type(cop) in _CMP_FLIP:
                    new_cls, pat, new_op = _CMP_FLIP[type(cop)]
                    ops = list(node.ops)
                    ops[i] = new_cls()
                    mutated = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                    self._op(node, left, right, pat, new_op, mutated, only_scope, fscope, "compare")
                left = right
        elif isinstance(node, ast.BoolOp):
            new_op = "or" if isinstance(node.op, ast.And) else "and"
            mutated = ast.BoolOp(op=ast.Or() if new_op == "or" else ast.And(), values=node.values)
            self._boolop(node, new_op, mutated, only_scope, fscope)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_FLIP:
            strs = any(
                isinstance(v, ast.JoinedStr)
                or (isinstance(v, ast.Constant) and isinstance(v.value, (str, bytes)))
                for v in (node.left, node.right)
            )
            if not (strs and isinstance(node.op, ast.Add)):
                new_cls, pat, new_op = _BIN_FLIP[type(node.op)]
                mutated = ast.BinOp(left=node.left, op=new_cls(), right=node.right)
                self._op(
                    node, node.left, node.right, pat, new_op, mutated, only_scope, fscope, "binop"
                )
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = node.operand
            text = self._text(inner)
            repl = text if isinstance(inner, _ATOMIC) else f"({text})"
            self._scoped_add(
                node, only_scope, fscope, "drop-not", repl, ast.unparse(node), ast.unparse(inner)
            )
        # children
        if isinstance(node, ast.Call):
            msg_call = (
                _callee(node) in self.exceptions
                or _callee(node) in _LOG_FUNCS
                or _is_std_write(node)
            )
            self._expr(node.func, scope, message=message, as_global=as_global)
            for a in node.args:
                self._expr(a, scope, message=message or msg_call, as_global=as_global)
            for k in node.keywords:
                m = message or msg_call or (k.arg in _MESSAGE_KEYWORDS)
                self._expr(k.value, scope, message=m, as_global=as_global)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expr(child, scope, message=message, as_global=as_global)
            elif isinstance(child, ast.comprehension):
                self._expr(child.iter, scope, message=message, as_global=as_global)
                for c in child.ifs:
                    self._expr(c, scope, message=message, as_global=as_global)
            elif isinstance(child, ast.keyword):
                self._expr(child.value, scope, message=message, as_global=as_global)

    def _scoped_add(
        self,
        node: ast.AST,
        only_scope: str,
        fscope: str,
        op: str,
        replacement: str,
        shown_from: str,
        shown_to: str,
    ) -> None:
        """``_add`` with ``only`` judged on ``only_scope`` and the recorded scope ``fscope``."""
        if not self._in_scope(only_scope):
            return
        saved = self.only
        self.only = ()
        try:
            self._add(node, fscope, op, replacement, shown_from, shown_to)
        finally:
            self.only = saved

    def _op(
        self,
        node: ast.AST,
        left: ast.AST,
        right: ast.AST,
        pattern: str,
        new_op: str,
        mutated: ast.AST,
        only_scope: str,
        fscope: str,
        op: str,
    ) -> None:
        if not self._in_scope(only_scope):
            return
        saved = self.only
        self.only = ()
        try:
            self._replace_op(node, left, right, pattern, new_op, mutated, fscope, op)
        finally:
            self.only = saved

    def _boolop(
        self, node: ast.BoolOp, new_op: str, mutated: ast.AST, only_scope: str, fscope: str
    ) -> None:
        if not self._in_scope(only_scope):
            return
        old = "and" if new_op == "or" else "or"
        na, nb = self._span(node)
        out = []
        pos = na
        ok = True
        for left, right in zip(node.values, node.values[1:], strict=False):
            ga = self._off(left.end_lineno, left.end_col_offset)  # type: ignore[arg-type]
            gb = self._off(right.lineno, right.col_offset)
            gap = self.source[ga:gb].decode()
            code_gap = re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0)), gap)
            found = list(re.finditer(rf"\b{old}\b", code_gap))
            if len(found) != 1:
                ok = False
                break
            m = found[0]
            out.append(self.source[pos:ga].decode())
            out.append(gap[: m.start()] + new_op + gap[m.end() :])
            pos = gb
        saved = self.only
        self.only = ()
        try:
            if ok:
                out.append(self.source[pos:nb].decode())
                repl = "".join(out)
            else:
                repl = f"({ast.unparse(mutated)})"
            self._add(node, fscope, "boolop", repl, ast.unparse(node), ast.unparse(mutated))
        finally:
            self.only = saved

    def _constant(self, node: ast.Constant, only_scope: str, fscope: str, *, message: bool) -> None:
        v = node.value
        orig = self._text(node)
        if isinstance(v, bool):
            new = "False" if v else "True"
        elif isinstance(v, int):
            n = v + 1
            new = (
                oct(n)
                if orig.lower().startswith("0o")
                else hex(n)
                if orig.lower().startswith("0x")
                else str(n)
            )
        elif isinstance(v, float):
            new = repr(v + 1.0)
        elif isinstance(v, str):
            if message or (not self.mutate_prose and _is_prose(v)):
                return
            new = repr("XX" + v + "XX") if v else repr("XX")
        else:
            return
        self._scoped_add(node, only_scope, fscope, "constant", new, orig, new)

    def _fstring(self, node: ast.JoinedStr, only_scope: str, fscope: str) -> None:
        literal = "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
        if not self.mutate_prose and _is_prose(literal):
            return
        mutated = ast.JoinedStr(values=[ast.Constant(value="XX"), *node.values])
        with contextlib.suppress(Exception):
            self._scoped_add(
                node,
                only_scope,
                fscope,
                "constant",
                ast.unparse(mutated),
                ast.unparse(node),
                ast.unparse(mutated),
            )


def find_mutants(
    root: Path, target: Target, exceptions: set[str], *, mutate_prose: bool
) -> list[Mutant]:
    source = (root / target.path).read_bytes()
    finder = MutantFinder(
        target.path, source, only=target.only, exceptions=exceptions, mutate_prose=mutate_prose
    )
    return finder.find()


# ------------------------------------------------------------------------------ the tree copy


def repo_files(repo: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files that exist (the working tree as it is)."""
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (repo / f).is_file()})


def make_copy(repo: Path, dest: Path) -> None:
    for rel in repo_files(repo):
        d = dest / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, d, follow_symlinks=False)


def precompile(root: Path) -> None:
    """Checked-hash bytecode: a file changed after this is recompiled, whatever its mtime."""
    import compileall
    import py_compile

    for sub in ("llmops", "tests", "benchmarks"):
        if (root / sub).is_dir():
            compileall.compile_dir(
                str(root / sub),
                quiet=2,
                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
            )


# ------------------------------------------------------------------------------ the worker


class _TracePlugin:
    """Per test: which lines of the mutated files it ran (in this process and its threads)."""

    def __init__(self, files: Iterable[str], out: str) -> None:
        self.files = set(files)
        self.out = out
        self.current = "<collect>"
        self.hits: dict[str, set[tuple[str, int]]] = {}
        self.outcomes: dict[str, str] = {}
        self.durations: dict[str, float] = {}

    def pytest_configure(self, config: Any) -> None:  # in the forked run, before collection
        sys.settrace(self._global)
        threading.settrace(self._global)

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename in self.files:
            self.hits.setdefault(self.current, set()).add(
                (frame.f_code.co_filename, frame.f_lineno)
            )
            return self._local
        return None

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.hits.setdefault(self.current, set()).add(
                (frame.f_code.co_filename, frame.f_lineno)
            )
        return self._local

    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> None:
        self.current = item.nodeid

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped:
            self.outcomes.setdefault(report.nodeid, "skipped")
        elif report.when == "call":
            self.outcomes.setdefault(report.nodeid, "passed")

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.outcomes[report.nodeid] = "collect-error"

    def pytest_sessionfinish(self, session: Any) -> None:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
        import llmops

        doc = {
            "llmops_file": llmops.__file__,
            "hits": {k: sorted(v) for k, v in self.hits.items()},
            "outcomes": self.outcomes,
            "durations": self.durations,
            "modules": sorted({m.split(".")[0] for m in sys.modules}),
        }
        with open(self.out, "w") as f:
            json.dump(doc, f)


def _kill_tree(pid: int) -> None:
    """SIGKILL a forked test run and everything it started (its group, its descendants)."""
    procs = []
    with contextlib.suppress(Exception):
        import psutil

        procs = psutil.Process(pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(Exception):
            p.kill()


def _reap() -> None:
    """Collect exited orphans (the worker is PID 1 of its namespace: they become its own)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _docker_cleanup(run_id: str) -> None:
    """Remove the Docker objects a stopped test run made (they carry its run id)."""
    docker = shutil.which("docker")
    if not docker:
        return
    ids: set[str] = set()
    for flt in (f"name={run_id}", f"label=llmops-test.sentinel={run_id}"):
        with contextlib.suppress(Exception):
            r = subprocess.run(
                [docker, "ps", "-aq", "--filter", flt], capture_output=True, text=True, timeout=30
            )
            ids |= set(r.stdout.split())
    if ids:
        with contextlib.suppress(Exception):
            subprocess.run(
                [docker, "rm", "-f", *sorted(ids)], capture_output=True, timeout=60, check=False
            )


class Worker:
    """The worker process: owns a copy of the tree; forks one pytest run per request."""

    def __init__(self, root: Path, wid: int) -> None:
        self.root = root
        self.wid = wid
        self.counter = 0
        self.originals: dict[str, bytes] = {}
        self.log = str(root.parent / f"worker-{wid}.log")
        self.child: int | None = None  # the test run in progress
        self.run_id = ""

    def stop(self, _sig: int = 0, _frame: Any = None) -> None:
        """SIGTERM from the parent (an interrupted run): stop the test run, then exit."""
        if self.child is not None:
            _kill_tree(self.child)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.child, 0)
            _docker_cleanup(self.run_id)
        os._exit(143)

    def _fork_pytest(
        self, args: list[str], timeout: float, plugins: list[Any], sentinels: bool
    ) -> tuple[str, int, float]:
        self.counter += 1
        run_id = f"mut{self.wid}x{self.counter}"
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the test run
            rc = 3
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                os.setsid()
                fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                nul = os.open(os.devnull, os.O_RDONLY)
                os.dup2(nul, 0)
                os.environ["LLMOPS_TEST_RUN_ID"] = run_id
                if not sentinels:
                    from tests.support import sentinels as s  # the copy's, before conftest uses it

                    s.plant = lambda: None  # type: ignore[assignment]
                    s.check_and_remove = lambda: []  # type: ignore[assignment]
                import pytest

                rc = int(pytest.main(args, plugins=plugins))
            except BaseException:  # noqa: BLE001 - report it as an internal error
                import traceback

                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(rc)
        self.child, self.run_id = pid, run_id
        deadline = t0 + timeout
        status = None
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                break
            if time.monotonic() > deadline:
                _kill_tree(pid)
                os.waitpid(pid, 0)
                _docker_cleanup(run_id)
                self.child = None
                return "timeout", -9, time.monotonic() - t0
            time.sleep(0.02)
        self.child = None
        elapsed = time.monotonic() - t0
        _reap()
        if os.WIFSIGNALED(status):
            return "killed", -os.WTERMSIG(status), elapsed
        rc = os.WEXITSTATUS(status)
        if rc == 0:
            return "survived", rc, elapsed
        if rc in (1, 2, 3):  # tests failed, interrupted (collection error), internal error
            return "killed", rc, elapsed
        return "error", rc, elapsed  # 4: usage (a test id not found), 5: no tests collected

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        base = ["-q", "-p", "no:cacheprovider", "--tb=line", "-o", "addopts=", "-W", "ignore"]
        base += ["--strict-markers", "--rootdir", str(self.root)]
        if cmd == "trace":
            files = [str(self.root / p) for p in req["files"]]
            plugin = _TracePlugin(files, req["out"])
            st, rc, el = self._fork_pytest(
                [*base, *req["tests"]], req["timeout"], [plugin], req["sentinels"]
            )
            return {"status": st, "rc": rc, "elapsed": el}
        if cmd == "preload":
            loaded = []
            for m in req["modules"]:
                try:
                    __import__(m)
                    loaded.append(m)
                except BaseException:  # noqa: BLE001,S112 - a preload is only an optimisation
                    continue
            return {"loaded": loaded}
        if cmd == "run":
            path = self.root / req["path"]
            orig = self.originals.setdefault(req["path"], path.read_bytes())
            path.write_bytes(req["source"].encode())
            try:
                st, rc, el = self._fork_pytest(
                    [*base, "-x", *req["tests"]], req["timeout"], [], req["sentinels"]
                )
            finally:
                path.write_bytes(orig)
            return {"status": st, "rc": rc, "elapsed": el}
        raise ValueError(cmd)


def worker_main(root: str, wid: int) -> int:
    # Bytecode may be written: the copy's own is checked-hash (see precompile), so a pyc of a
    # mutant is never taken for the original or the other way round; pytest keeps its
    # rewritten test modules, which are never mutated.
    os.chdir(root)
    sys.path[:] = [root, *[p for p in sys.path if Path(p or ".").resolve() != HERE]]
    import pytest  # noqa: F401 - loaded once, inherited by every fork

    w = Worker(Path(root), wid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, w.stop)
    out = sys.stdout
    sys.stdout = sys.stderr  # only replies go to the protocol stream
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            rep = w.handle(req)
        except Exception as e:  # noqa: BLE001 - reported to the parent
            rep = {"status": "error", "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(rep) + "\n")
        out.flush()
    return 0


def pid_namespace_prefix() -> list[str]:
    """``unshare`` into a new PID namespace, when this host allows it: the test runs (and the
    ``kill`` mutants among them) then see, and can signal, only the processes they started."""
    unshare = shutil.which("unshare")
    if not unshare or not sys.platform.startswith("linux"):
        return []
    argv = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"]
    try:
        ok = subprocess.run([*argv, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return argv if ok else []


class WorkerClient:
    def __init__(self, root: Path, wid: int, python: str, prefix: Sequence[str] = ()) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(root)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("LLMOPS_FAIL_ON_SKIP", None)
        self.root = root
        self.proc = subprocess.Popen(
            [*prefix, python, str(Path(__file__).resolve()), "--_worker", str(root), str(wid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(root),
            env=env,
            text=True,
        )
        self.lock = threading.Lock()

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the mutation worker died")
        return dict(json.loads(line))

    def close(self, *, force: bool = False) -> None:
        if force:
            self.proc.terminate()
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ------------------------------------------------------------------------------ the run

#: Not preloaded into the workers (heavy, or not safe to fork with).
_NO_PRELOAD = {
    "llmops",
    "tests",
    "conftest",
    "benchmarks",
    "scripts",
    "__main__",
    "torch",
    "transformers",
    "accelerate",
    "safetensors",
    "gguf",
    "triton",
    "uvicorn",
}


@dataclass
class Outcome:
    mutant: Mutant
    group: str
    status: str  # killed | timeout | survived | uncovered | error | invalid
    elapsed: float = 0.0
    tests: int = 0
    rc: int | None = None


@dataclass
class Coverage:
    """The baseline trace of one group: who reaches which line, how long each test takes."""

    by_line: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    by_file: dict[str, set[str]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    rc: int = 0
    passed: set[str] = field(default_factory=set)

    def expand(self, ids: Iterable[str]) -> set[str]:
        """The baseline's passing node ids that a file, a test or a node id prefix names."""
        out: set[str] = set()
        for i in ids:
            out |= {p for p in self.passed if p == i or p.startswith((i + "::", i + "["))}
        return out

    def tests_for(self, m: Mutant, extra: Sequence[str] = ()) -> list[str]:
        if m.scope == "":
            found = set()
            for a, b in m.use_lines:
                for line in range(a, b + 1):
                    found |= self.by_line.get((m.path, line), set())
            if not found:  # read elsewhere (another module), or only where no test reaches
                found = set(self.by_file.get(m.path, set()))
        else:
            found = set()
            for line in range(m.first_line, m.last_line + 1):
                found |= self.by_line.get((m.path, line), set())
        found |= self.expand(extra)  # reached in a subprocess (Target.extra)
        return sorted(found, key=lambda t: (self.durations.get(t, 0.0), t))


def _select(
    mutants: list[Mutant], sample: float | None, limit: int | None, seed: int
) -> list[Mutant]:
    chosen = list(mutants)
    rng = random.Random(seed)
    if sample is not None and sample < 1.0:
        chosen = rng.sample(chosen, k=max(1, math.ceil(sample * len(chosen)))) if chosen else []
    if limit is not None and len(chosen) > limit:
        chosen = rng.sample(chosen, k=limit)
    return sorted(chosen, key=lambda m: (m.path, m.start, m.op, m.replacement))


def _identity(m: Mutant) -> tuple[str, int, str, str, str]:
    """A mutant as a --json report names it (byte offsets are not written there)."""
    return (m.path, m.line, m.op, m.replacement, m.original_text)


def _survivors_of(path: str) -> set[tuple[str, int, str, str, str]]:
    """The survivors (and not-covered mutants) of an earlier ``--json`` report."""
    doc = json.loads(Path(path).read_text())
    return {
        (d["path"], int(d["line"]), d["op"], d["replacement"], d["original_text"])
        for d in doc["mutants"]
        if d["status"] in ("survived", "uncovered")
    }


def _valid(m: Mutant, source: bytes) -> bool:
    try:
        compile(m.apply(source), m.path, "exec", dont_inherit=True)
        return True
    except (SyntaxError, ValueError):
        return False


def trace_group(
    client: WorkerClient,
    name: str,
    targets: Sequence[Target],
    tmp: Path,
    timeout: float,
    host_unsafe: bool = False,
) -> Coverage:
    tests = list(dict.fromkeys(t for tg in targets for t in tg.tests))
    files = {t.split("::")[0] for t in tests}
    for tg in targets:  # the subprocess tests, unless their whole file runs anyway
        for _q, extra in tg.extra:
            tests += [t for t in extra if t.split("::")[0] not in files and t not in tests]
    if not host_unsafe:
        for nodeid in dict.fromkeys(u for tg in targets for u in tg.host_unsafe):
            tests += ["--deselect", nodeid]
    out = tmp / f"trace-{name}.json"
    t0 = time.monotonic()
    rep = client.call(
        {
            "cmd": "trace",
            "tests": tests,
            "files": sorted({tg.path for tg in targets}),
            "out": str(out),
            "timeout": timeout,
            "sentinels": name in SENTINEL_GROUPS,
        }
    )
    cov = Coverage(elapsed=time.monotonic() - t0)
    if rep.get("status") == "timeout" or not out.exists():
        raise SystemExit(
            f"mutation: the baseline run of the {name} tests did not finish ({rep}); "
            f"see {client.root.parent}/worker-0.log"
        )
    doc = json.loads(out.read_text())
    if not str(doc["llmops_file"]).startswith(str(client.root) + os.sep):
        raise SystemExit(
            f"mutation: the tests imported llmops from {doc['llmops_file']}, not from the copy "
            f"{client.root}: mutants would not be tested"
        )
    cov.durations = {k: float(v) for k, v in doc["durations"].items()}
    cov.failing = sorted(k for k, v in doc["outcomes"].items() if v in ("failed", "collect-error"))
    cov.rc = int(rep.get("rc", 0))
    passed = {k for k, v in doc["outcomes"].items() if v == "passed"}
    cov.passed = passed
    cov.modules = list(doc["modules"])
    prefix = str(client.root) + os.sep
    for nodeid, hits in doc["hits"].items():
        if nodeid not in passed:
            continue
        for fname, line in hits:
            rel = fname[len(prefix) :] if fname.startswith(prefix) else fname
            cov.by_line.setdefault((rel, int(line)), set()).add(nodeid)
            cov.by_file.setdefault(rel, set()).add(nodeid)
    return cov


def run(args: argparse.Namespace) -> int:
    groups = list(GROUPS) if args.module == "all" else [args.module]
    groups = [
        g for g in groups if group_targets(g, args.files, args.tests)
    ]  # --files may leave some out
    tmp = Path(tempfile.mkdtemp(prefix="llmops-mutation-"))
    started = time.monotonic()
    clients: list[WorkerClient] = []
    outcomes: list[Outcome] = []
    group_time: dict[str, float] = {}
    coverages: dict[str, Coverage] = {}
    skipped_groups: list[str] = []
    totals: dict[str, int] = {}
    selected: dict[str, list[Mutant]] = {}
    interrupted = False
    try:
        copy0 = tmp / "w0" / "repo"
        make_copy(REPO, copy0)
        precompile(copy0)
        for i in range(1, args.jobs):
            shutil.copytree(copy0, tmp / f"w{i}" / "repo", symlinks=True)
        exceptions = exception_names(copy0)
        survivors = _survivors_of(args.survivors_of) if args.survivors_of else set()
        invalid: dict[str, int] = {}
        for g in groups:
            ms: list[Mutant] = []
            for tg in group_targets(g, args.files, args.tests):
                ms += find_mutants(copy0, tg, exceptions, mutate_prose=args.mutate_prose)
            totals[g] = len(ms)
            chosen = _select(ms, args.sample, args.limit, args.seed)
            if args.survivors_of:
                chosen = [m for m in chosen if _identity(m) in survivors]
            sources = {
                tg.path: (copy0 / tg.path).read_bytes()
                for tg in group_targets(g, args.files, args.tests)
            }
            ok = [m for m in chosen if _valid(m, sources[m.path])]
            invalid[g] = len(chosen) - len(ok)
            selected[g] = ok
            print(
                f"{g}: {len(ms)} mutants, {len(ok)} selected"
                + (f" ({invalid[g]} invalid dropped)" if invalid[g] else ""),
                file=sys.stderr,
            )
        python = args.python or sys.executable
        prefix = [] if args.no_pid_namespace else pid_namespace_prefix()
        if not prefix:
            print(
                "mutation: WARNING: no PID namespace (unshare); a kill mutant that ignores a "
                "test's scoping can signal any matching process on this host",
                file=sys.stderr,
            )
        clients = [
            WorkerClient(tmp / f"w{i}" / "repo", i, python, prefix) for i in range(args.jobs)
        ]
        preloaded = False
        for g in groups:
            gt0 = time.monotonic()
            print(f"{g}: baseline run of its tests, traced ...", file=sys.stderr)
            cov = trace_group(
                clients[0],
                g,
                group_targets(g, args.files, args.tests),
                tmp,
                args.baseline_timeout,
                args.host_unsafe,
            )
            coverages[g] = cov
            print(
                f"{g}: baseline {cov.elapsed:.0f}s, {len(cov.durations)} tests"
                + (
                    f", {len(cov.failing)} failing (left out): {', '.join(cov.failing)}"
                    if cov.failing
                    else ""
                ),
                file=sys.stderr,
            )
            if cov.rc != 0 and not cov.failing:
                # every test passed, yet the session failed (the harness's own check, e.g. a
                # sentinel harmed by something else on this host): each mutant would "fail"
                print(
                    f"{g}: SKIPPED: its baseline session failed (exit {cov.rc}) with no failing "
                    f"test; see the log of the baseline run ({clients[0].root.parent}/worker-0.log"
                    f", kept with --keep)",
                    file=sys.stderr,
                )
                skipped_groups.append(g)
                group_time[g] = time.monotonic() - gt0
                continue
            if not preloaded:
                mods = [m for m in cov.modules if m not in _NO_PRELOAD and not m.startswith("_")]
                for c in clients:
                    c.call({"cmd": "preload", "modules": mods})
                preloaded = True
            try:
                _run_group(g, selected[g], cov, clients, args, outcomes)
            finally:
                group_time[g] = time.monotonic() - gt0
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the report covers the mutants done so far", file=sys.stderr)
    finally:
        for c in clients:
            c.close(force=interrupted)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if interrupted:
        done = len(outcomes)
        print(f"INTERRUPTED: {done} of {sum(len(v) for v in selected.values())} mutants done")
    report(
        groups,
        outcomes,
        group_time,
        coverages,
        totals,
        args,
        time.monotonic() - started,
        skipped_groups,
    )
    if args.json:
        write_json(args.json, groups, outcomes, group_time, totals, args)
    return 0


def _run_group(
    g: str,
    mutants: list[Mutant],
    cov: Coverage,
    clients: list[WorkerClient],
    args: argparse.Namespace,
    results: list[Outcome],
) -> None:
    """Run the group's mutants on the workers; each outcome is appended to ``results`` as it
    comes (so an interrupted run can still report what it did)."""
    sources: dict[str, bytes] = {}
    todo: queue.Queue[tuple[Mutant, list[str], float] | None] = queue.Queue()
    lock = threading.Lock()
    stop = threading.Event()
    extras = {tg.path: tg for tg in group_targets(g, args.files, args.tests)}
    for m in mutants:
        tg = extras.get(m.path)
        tests = cov.tests_for(m, tg.extra_tests(m.scope) if tg is not None else ())
        if not tests:
            results.append(Outcome(m, g, "uncovered"))
            continue
        budget = sum(cov.durations.get(t, 0.0) for t in tests)
        todo.put((m, tests, args.timeout_factor * budget + args.timeout_extra))
    n_run = todo.qsize()
    for _ in clients:
        todo.put(None)
    done = [0]
    t0 = time.monotonic()
    last_print = [0.0]

    def source_of(path: str) -> bytes:
        with lock:
            if path not in sources:
                sources[path] = (clients[0].root / path).read_bytes()
            return sources[path]

    def work(c: WorkerClient) -> None:
        while True:
            item = todo.get()
            if item is None or stop.is_set():
                return
            m, tests, timeout = item
            try:
                rep = c.call(
                    {
                        "cmd": "run",
                        "path": m.path,
                        "source": m.apply(source_of(m.path)).decode(),
                        "tests": tests,
                        "timeout": timeout,
                        "sentinels": g in SENTINEL_GROUPS,
                    }
                )
            except (RuntimeError, OSError, ValueError):
                if stop.is_set():  # the worker was stopped: an interrupted run
                    return
                raise
            o = Outcome(
                m, g, rep.get("status", "error"), rep.get("elapsed", 0.0), len(tests), rep.get("rc")
            )
            with lock:
                results.append(o)
                done[0] += 1
                now = time.monotonic()
                if args.verbose or now - last_print[0] > 20 or done[0] == n_run:
                    last_print[0] = now
                    el = now - t0
                    eta = el / done[0] * (n_run - done[0])
                    print(
                        f"{g}: {done[0]}/{n_run} run, {el:.0f}s, about {eta:.0f}s left"
                        + (f"  [{o.status}] {m.describe()}" if args.verbose else ""),
                        file=sys.stderr,
                    )

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.5)
    except KeyboardInterrupt:
        stop.set()
        raise


def _stats(items: Sequence[Outcome]) -> dict[str, Any]:
    k = sum(1 for o in items if o.status == "killed")
    to = sum(1 for o in items if o.status == "timeout")
    sv = sum(1 for o in items if o.status in ("survived", "uncovered"))
    nc = sum(1 for o in items if o.status == "uncovered")
    er = sum(1 for o in items if o.status == "error")
    judged = k + to + sv
    return {
        "mutants": len(items),
        "killed": k,
        "timeout": to,
        "survived": sv,
        "not_covered": nc,
        "errors": er,
        "score": (100.0 * (k + to) / judged) if judged else None,
        "run_s": sum(o.elapsed for o in items),
    }


def report(
    groups: Sequence[str],
    outcomes: Sequence[Outcome],
    group_time: dict[str, float],
    coverages: dict[str, Coverage],
    totals: dict[str, int],
    args: argparse.Namespace,
    wall: float,
    skipped: Sequence[str] = (),
) -> None:
    sys.path.insert(0, str(HERE))
    from _machine import describe

    hdr = f"{'module':<34} {'mutants':>7} {'killed':>7} {'timeout':>7} {'survived':>8} {'(not cov)':>9} {'score':>7} {'time':>8}"
    print(hdr)
    print("-" * len(hdr))

    def row(label: str, st: dict[str, Any], t: float | None) -> None:
        score = "-" if st["score"] is None else f"{st['score']:.1f}%"
        tt = "" if t is None else f"{t:.0f}s"
        print(
            f"{label:<34} {st['mutants']:>7} {st['killed']:>7} {st['timeout']:>7} {st['survived']:>8} "
            f"{st['not_covered']:>9} {score:>7} {tt:>8}"
        )

    for g in groups:
        if g in skipped:
            print(f"{g:<34} SKIPPED: its baseline test session failed with no failing test")
            continue
        items = [o for o in outcomes if o.group == g]
        files = list(dict.fromkeys(tg.path for tg in GROUPS[g]))
        if len(files) > 1:
            for f in files:
                fi = [o for o in items if o.mutant.path == f]
                if fi:
                    row(f"  {f}", _stats(fi), None)
        st = _stats(items)
        label = g + ("" if len(items) == totals.get(g) else f" (of {totals.get(g)})")
        row(label, st, group_time.get(g))
    allst = _stats(outcomes)
    if len(groups) > 1:
        row("all", allst, wall)
    print()
    print(f"machine: {describe()}")
    print(f"python: {sys.version.split()[0]} · jobs: {args.jobs} · wall: {wall:.0f}s")
    sel = []
    if args.sample is not None:
        sel.append(f"sample {args.sample:g} (seed {args.seed})")
    if args.limit is not None:
        sel.append(f"limit {args.limit} per module")
    if args.tests:
        sel.append(f"tests {args.tests} only (a lower bound)")
    if args.files:
        sel.append(
            "files "
            + ", ".join(tg.path for g in groups for tg in group_targets(g, args.files, args.tests))
        )
    if sel:
        print("selection: " + ", ".join(sel))
    for g in groups:
        items = [o for o in outcomes if o.group == g]
        ran = [o for o in items if o.status in ("killed", "timeout", "survived", "error")]
        cov = coverages.get(g)
        if ran and totals.get(g) and len(items) < totals[g]:
            per = sum(o.elapsed for o in ran) / len(items)
            base = cov.elapsed if cov else 0.0
            est = base + per * totals[g]
            print(
                f"estimate for all {totals[g]} {g} mutants: about {est / 60:.0f} min at 1 job, "
                f"{(base + per * totals[g] / 2) / 60:.0f} min at 2"
            )
    errors = [o for o in outcomes if o.status == "error"]
    if errors:
        print()
        print(f"errors ({len(errors)}; the test run itself failed, not counted):")
        for o in errors:
            print(f"  {o.mutant.describe()}  [rc {o.rc}]")
    surv = [o for o in outcomes if o.status in ("survived", "uncovered")]
    print()
    print(f"survivors ({len(surv)}):")
    for o in sorted(surv, key=lambda o: (o.mutant.path, o.mutant.line, o.mutant.start)):
        tag = "  (no test reaches this line)" if o.status == "uncovered" else ""
        print(f"  {o.mutant.describe()}  [{o.mutant.op}]{tag}")
    timeouts = [o for o in outcomes if o.status == "timeout"]
    if timeouts:
        print()
        print(f"killed by timeout ({len(timeouts)}):")
        for o in timeouts:
            print(f"  {o.mutant.describe()}  [{o.mutant.op}]")


def write_json(
    path: str,
    groups: Sequence[str],
    outcomes: Sequence[Outcome],
    group_time: dict[str, float],
    totals: dict[str, int],
    args: argparse.Namespace,
) -> None:
    sys.path.insert(0, str(HERE))
    from _machine import describe

    doc = {
        "machine": describe(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "modules": {
            g: {
                **_stats([o for o in outcomes if o.group == g]),
                "total_mutants": totals.get(g),
                "time_s": group_time.get(g),
            }
            for g in groups
        },
        "mutants": [
            {
                **{
                    k: v
                    for k, v in dataclasses.asdict(o.mutant).items()
                    if k not in ("start", "end")
                },
                "module": o.group,
                "status": o.status,
                "elapsed_s": round(o.elapsed, 3),
                "tests": o.tests,
            }
            for o in outcomes
        ],
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_worker"]:
        return worker_main(argv[1], int(argv[2]))
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--module", choices=[*GROUPS, "all"], default="all")
    ap.add_argument("--jobs", type=int, default=1, help="parallel workers (default 1)")
    ap.add_argument("--limit", type=int, help="at most N mutants per module (seeded choice)")
    ap.add_argument("--sample", type=float, help="test this fraction of the mutants (0-1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--tests",
        help="run these test files instead of the mapped ones (comma-separated): a quick "
        "survivor hunt; its score is a lower bound",
    )
    ap.add_argument(
        "--files",
        help="only these files of the group: comma-separated names, each matching a path's "
        "stem or its tail (e.g. tunnel,names,engines/vllm)",
    )
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument(
        "--survivors-of",
        metavar="JSON",
        help="run only the mutants that survived in this earlier --json report (same source, "
        "same --files/--sample/--seed): after new tests, its kills plus this run's are the "
        "new score",
    )
    ap.add_argument(
        "--timeout-factor",
        type=float,
        default=3.0,
        help="a mutant's timeout: this times its tests' baseline time ...",
    )
    ap.add_argument("--timeout-extra", type=float, default=15.0, help="... plus these seconds")
    ap.add_argument("--baseline-timeout", type=float, default=1800.0)
    ap.add_argument(
        "--mutate-prose",
        action="store_true",
        help="also mutate strings of four or more words (messages)",
    )
    ap.add_argument("--python", help="interpreter for the test runs (default: this one)")
    ap.add_argument(
        "--no-pid-namespace",
        action="store_true",
        help="run the tests in the host's PID namespace (default: a new one, via unshare)",
    )
    ap.add_argument(
        "--host-unsafe",
        action="store_true",
        help="also run the tests that can stop other users' containers under a mutant "
        "(Target.host_unsafe); only on a machine that is yours alone",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary copies and logs")
    ap.add_argument("--verbose", action="store_true", help="one progress line per mutant")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    if args.sample is not None and not 0 < args.sample <= 1:
        ap.error("--sample is a fraction in (0, 1]")
    if args.files and not any(
        group_targets(g, args.files, args.tests)
        for g in ([*GROUPS] if args.module == "all" else [args.module])
    ):
        ap.error(f"--files {args.files!r} matches no file of --module {args.module}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
