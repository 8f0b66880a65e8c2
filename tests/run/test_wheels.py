"""llmops.run.wheels and bootstrap's choice of dependency wheels, locally: the repacked wheel of
an installed distribution is one pip installs, with a RECORD that matches its files; the
dependency closure follows markers and extras as pip would; and each source of dependencies
(wheelhouse, index, this environment) is chosen or refused with its reason. Bootstrap itself,
over a real sshd into a fresh account, is in tests/cli/test_remote.py."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmops.errors import UsageError
from llmops.run.remote import BootstrapReport, _dependency_wheels
from llmops.run.wheels import (
    dependency_closure,
    local_platform,
    repack_distribution,
    source_checkout,
    wheel_requirements,
)


def test_repacked_wheel_has_a_true_record_and_pip_installs_it(tmp_path: Path) -> None:
    dist = metadata.distribution("mdurl")
    whl = repack_distribution(dist, tmp_path)
    assert whl.name == f"mdurl-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        info = f"mdurl-{dist.version}.dist-info"
        rows = list(csv.reader(io.StringIO(z.read(f"{info}/RECORD").decode())))
        for path, digest, size in rows:
            if path == f"{info}/RECORD":
                assert (digest, size) == ("", "")
                continue
            data = z.read(path)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={want}", len(data))
    assert {r[0] for r in rows} == set(names)
    assert not [n for n in names if n.endswith(".pyc") or n.startswith("../")]
    assert not {f"{info}/INSTALLER", f"{info}/REQUESTED", f"{info}/direct_url.json"} & set(names)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
        + ["--disable-pip-version-check", "--target", str(target), str(whl)],
        check=True,
    )
    here = Path(str(dist.locate_file("mdurl/__init__.py")))
    assert (target / "mdurl" / "__init__.py").read_bytes() == here.read_bytes()


def test_wheel_requirements_read_the_metadata(tmp_path: Path) -> None:
    whl = repack_distribution(metadata.distribution("idna"), tmp_path)
    reqs = wheel_requirements(whl)
    assert reqs == metadata.distribution("idna").requires
    assert all("extra ==" in r for r in reqs)


def test_dependency_closure_follows_requirements_not_extras_or_excluded_markers() -> None:
    names = {d.metadata["Name"].lower() for d in dependency_closure(["typer>=0.9", "idna[all]"])}
    assert {"typer", "rich", "shellingham", "markdown-it-py", "mdurl", "idna"} <= names
    assert "ruff" not in names  # idna's extra "all" is not followed
    assert "colorama" not in names or sys.platform == "win32"  # platform_system == "Windows"


def test_dependency_closure_refuses_a_direct_requirement_missing_here() -> None:
    with pytest.raises(UsageError) as e:
        dependency_closure(["surely-not-installed-pkg>=1"])
    assert "llmops needs surely-not-installed-pkg" in e.value.message
    assert "--from-index" in (e.value.hint or "")
    # with a marker that may exclude it here, it is skipped instead
    assert dependency_closure(['surely-not-installed-pkg; python_version < "3"']) == []


def test_source_checkout_is_this_repository() -> None:
    root = source_checkout()
    assert root is not None and (root / "llmops" / "run" / "wheels.py").is_file()


def _rep(python_version: str, arch: str) -> BootstrapReport:
    return BootstrapReport(host="gpu", python_version=python_version, arch=arch)


HOST: Any = SimpleNamespace(label="gpu (root@10.0.0.9:22)")


def test_dependencies_from_a_wheelhouse_an_index_or_this_environment(tmp_path: Path) -> None:
    llmops_whl = tmp_path / "llmops-0-py3-none-any.whl"
    with zipfile.ZipFile(llmops_whl, "w") as z:
        z.writestr("llmops-0.dist-info/METADATA", "Name: llmops\nRequires-Dist: mdurl\n")
    house = tmp_path / "house"
    house.mkdir()
    (house / "b-1-py3-none-any.whl").write_bytes(b"")
    (house / "a-1-py3-none-any.whl").write_bytes(b"")
    kw: dict[str, Any] = {"tmpd": tmp_path, "log": lambda _: None}
    rep = _rep(*local_platform())
    deps = _dependency_wheels(HOST, rep, llmops_whl, wheelhouse=house, from_index=False, **kw)
    assert [d.name for d in deps] == ["a-1-py3-none-any.whl", "b-1-py3-none-any.whl"]
    assert rep.deps_from == "wheelhouse"
    rep = _rep("3.9", "aarch64")  # another platform: the index is fine
    assert _dependency_wheels(HOST, rep, llmops_whl, wheelhouse=None, from_index=True, **kw) == []
    assert rep.deps_from == "index"
    rep = _rep(*local_platform())
    deps = _dependency_wheels(HOST, rep, llmops_whl, wheelhouse=None, from_index=False, **kw)
    assert [d.name.split("-")[0] for d in deps] == [
        "mdurl"
    ] and rep.deps_from == "local-environment"


def test_an_empty_wheelhouse_or_another_platform_is_refused(tmp_path: Path) -> None:
    whl = tmp_path / "llmops-0-py3-none-any.whl"
    kw: dict[str, Any] = {"tmpd": tmp_path, "log": lambda _: None}
    with pytest.raises(UsageError) as e:
        _dependency_wheels(
            HOST, _rep("3.11", "x86_64"), whl, wheelhouse=tmp_path, from_index=False, **kw
        )
    assert e.value.message == f"no wheels in {tmp_path}"
    lv, la = local_platform()
    with pytest.raises(UsageError) as e:
        _dependency_wheels(
            HOST, _rep("3.9", "ppc64le"), whl, wheelhouse=None, from_index=False, **kw
        )
    assert e.value.message == (
        f"gpu (root@10.0.0.9:22) runs Python 3.9 on ppc64le, this machine {lv} on {la}, so the "
        "dependencies installed here cannot be copied"
    )
    assert "--python-version 3.9 --platform manylinux2014_ppc64le" in (e.value.hint or "")
