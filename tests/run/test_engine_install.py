"""`llmops engine install llamacpp` around the build: tools checked first, progress from cmake's
own percentages, the log kept on failure, the install recorded and found by the native
runtime, `up`'s host capabilities, `engine ls` and `doctor`. The real build is exercised by
.ci/run and tests/e2e/test_llamacpp_real.py; here cmake is a script that behaves like it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.errors import LlmopsError
from llmops.hw.engines import engines_dir, find_program, installed
from llmops.plan.engines.vllm import VERSION as VLLM_VERSION
from llmops.run import engine_install as ei

FAKE_SERVER = (
    "#!/bin/sh\necho 'version: 0.6.0-dev (build 11434, commit 0000000)'\n"
    "echo 'built with cc for x86_64'\n"
)

# cmake: configure prints a line (and, like the real one with OpenSSL, "OpenSSL found");
# --build prints progress, then makes bin/<target> for every target it is asked for (or fails).
FAKE_CMAKE = """#!/bin/sh
if [ "$1" = "--build" ]; then
  echo "[ 10%] Building CXX object ggml.cpp.o"
  echo "[ 55%] Building CXX object llama.cpp.o"
  if [ -n "$FAIL_BUILD" ]; then echo "fatal error: some.h: No such file"; exit 2; fi
  mkdir -p "$2/bin"
  dir="$2"; shift 2
  while [ "$1" != "--target" ]; do shift; done; shift
  while [ -n "$1" ] && [ "$1" != "-j" ]; do
    cat > "$dir/bin/$1" <<'EOS'
{server}EOS
    chmod +x "$dir/bin/$1"
    echo "[100%] Built target $1"
    shift
  done
else
  echo "-- configured with $*"
  echo "-- OpenSSL found: 3.0.19"
  mkdir -p "$4"
  printf 'CMAKE_HOME_DIRECTORY:INTERNAL=%s\nLLAMA_BUILD_NUMBER:STRING=11434\n' "$2" \
    > "$4/CMakeCache.txt"
fi
"""


def _exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def toolbin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with a fake cmake, a C++ compiler and make; an empty engines dir."""
    b = tmp_path / "bin"
    b.mkdir()
    _exe(b / "cmake", FAKE_CMAKE.replace("{server}", FAKE_SERVER))
    _exe(b / "g++", "#!/bin/sh\n")
    _exe(b / "make", "#!/bin/sh\n")
    monkeypatch.setenv("PATH", f"{b}:/usr/bin:/bin")
    monkeypatch.setenv("LLMOPS_ENGINES_DIR", str(tmp_path / "engines"))
    return b


def _source(tmp_path: Path) -> Path:
    tree = tmp_path / "src" / "llama.cpp"
    (tree / "tools" / "server").mkdir(parents=True)
    (tree / "CMakeLists.txt").write_text("")
    return tmp_path / "src"


def test_missing_cmake_and_compiler_are_named(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("LLMOPS_ENGINES_DIR", str(tmp_path / "engines"))
    with pytest.raises(LlmopsError) as e:
        ei.install_llamacpp(variant="cpu", source=_source(tmp_path))
    assert "cmake" in e.value.message and "C++ compiler" in e.value.message
    assert "apt install cmake g++" in (e.value.hint or "")
    assert "nvcc" in ", ".join(ei.missing_tools("cuda", {"PATH": str(empty)}))


def test_cuda_only_with_nvcc_and_a_gpu_unless_asked(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _exe(tmp_path / "nvcc", "#!/bin/sh\n")
    env = {"PATH": str(tmp_path)}
    monkeypatch.setattr(ei, "has_nvidia_gpu", lambda env=None: False)
    assert ei.choose_variant(None, env) == "cpu"  # a CUDA toolkit on a CPU machine
    monkeypatch.setattr(ei, "has_nvidia_gpu", lambda env=None: True)
    assert ei.choose_variant(None, env) == "cuda"
    assert ei.choose_variant(None, {"PATH": "/nonexistent"}) == "cpu"
    assert ei.choose_variant(False, env) == "cpu" and ei.choose_variant(True, {}) == "cuda"
    assert "-DGGML_CUDA=ON" in ei.cmake_args("cuda")
    assert "-DGGML_CUDA=ON" not in ei.cmake_args("cpu")


def test_failed_build_keeps_its_log(toolbin: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FAIL_BUILD", "1")
    seen: list[tuple[str, float | None]] = []
    with pytest.raises(LlmopsError) as e:
        ei.install_llamacpp(
            variant="cpu", source=_source(tmp_path), progress=lambda p, f: seen.append((p, f))
        )
    log = engines_dir() / "llamacpp" / "build-b11434-cpu.log"
    assert str(log) in e.value.message and "exit 2" in e.value.message
    assert "some.h: No such file" in e.value.message  # the log's tail is shown
    assert "fatal error: some.h" in log.read_text()
    assert ("building", 0.55) in seen
    assert installed("llamacpp") is None
    assert not [p for p in (engines_dir() / "llamacpp").iterdir() if p.name.startswith(".work")]


def test_install_records_the_build_and_everything_finds_it(toolbin: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app, ["engine", "install", "llamacpp", "--cpu", "--source", str(_source(tmp_path))]
    )
    assert r.exit_code == 0, r.output
    rec = installed("llamacpp")
    assert rec is not None
    assert (rec.version, rec.variant) == ("b11434", "cpu")
    assert rec.program == str(engines_dir() / "llamacpp" / "bin" / "llama-server")
    assert r.stdout.strip() == rec.program
    assert "-DGGML_NATIVE=OFF" in rec.configure and rec.size_bytes
    assert not (engines_dir() / "llamacpp" / "build-b11434-cpu.log").exists()
    assert find_program("llama-server") == rec.program  # before PATH
    fit_tool = str(engines_dir() / "llamacpp" / "bin" / "llama-fit-params")
    assert rec.tools == {"llama-fit-params": fit_tool} and rec.https is True
    assert find_program("llama-fit-params") == fit_tool
    assert "-DLLAMA_OPENSSL=ON" in rec.configure

    again = CliRunner().invoke(app, ["engine", "install", "llamacpp", "--cpu"])
    assert again.exit_code == 0 and "already installed" in again.stderr

    ls = json.loads(CliRunner().invoke(app, ["engine", "ls", "--json"]).stdout)
    assert [(e["engine"], e["version"]) for e in ls["engines"]] == [("llamacpp", "b11434")]

    from llmops.run.launching import host_caps
    from llmops.run.state import DeploymentStore

    home = Path(os.environ["LLMOPS_HOME"])
    caps = host_caps("up", DeploymentStore(home), os.environ, None)
    assert caps.llama_server

    from llmops.hw.tools import probe_tools

    (t,) = [t for t in probe_tools() if t.name == "llama-server"]
    assert t.path == rec.program and t.version and "b11434" in t.version


def test_native_runtime_runs_the_installed_program(toolbin: Path, tmp_path: Path) -> None:
    from llmops.run.native import NativeRuntime
    from llmops.run.state import DeploymentStore

    ei.install_llamacpp(variant="cpu", source=_source(tmp_path))
    store = DeploymentStore(Path(os.environ["LLMOPS_HOME"]))
    from llmops.plan.deploy import Request
    from llmops.run.launching import prepare

    facts = _cpu_facts()
    prep = prepare(
        Request("smollm2", engine="llamacpp", runtime="native", api_key=False, port=18181),
        facts,
        stage="render",
    )
    assert prep.plan.argv[0] == "llama-server"  # the plan (and render) stay portable
    NativeRuntime(store).start(prep.plan, {})
    rec = json.loads(store.pid_path(prep.plan.name).read_text())
    # the installed program ran (a #! script may be recorded behind its interpreter)
    assert installed("llamacpp").program in rec["argv"]  # type: ignore[union-attr]
    assert rec["argv"][-(len(prep.plan.argv) - 1) :] == list(prep.plan.argv[1:])


def test_an_older_install_without_the_fit_tool_is_rebuilt(toolbin: Path, tmp_path: Path) -> None:
    src = _source(tmp_path)
    rec, did = ei.install_llamacpp(variant="cpu", source=src)
    assert did and ei.up_to_date(rec, "cpu")
    _, again = ei.install_llamacpp(variant="cpu", source=src)
    assert not again  # the same build is reused
    # the install record an earlier llmops wrote: no fit tool, OpenSSL off
    root = engines_dir() / "llamacpp"
    doc = json.loads((root / "install.json").read_text())
    doc.pop("tools")
    doc["configure"] = [a.replace("OPENSSL=ON", "OPENSSL=OFF") for a in doc["configure"]]
    (root / "install.json").write_text(json.dumps(doc))
    (root / "bin" / "llama-fit-params").unlink()
    old = installed("llamacpp")
    assert old is not None and not ei.up_to_date(old, "cpu")
    assert find_program("llama-fit-params") is None
    rec2, did2 = ei.install_llamacpp(variant="cpu", source=src)
    assert did2 and rec2.program_for("llama-fit-params")
    assert not ei.up_to_date(rec2, "cuda")  # another variant is another build


def test_a_kept_build_dir_is_reused_from_its_own_source(  # type: ignore[no-untyped-def]
    toolbin: Path, tmp_path: Path, monkeypatch
) -> None:
    build = tmp_path / "kept" / "build-b11434"
    src = _source(tmp_path)
    rec, _ = ei.install_llamacpp(variant="cpu", source=src, build_dir=build)
    assert (build / "CMakeCache.txt").is_file() and (build / "bin" / "llama-fit-params").is_file()

    def no_download(*a, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("the kept build dir's source should be used")

    monkeypatch.setattr(ei, "download_source", no_download)
    rec2, did = ei.install_llamacpp(variant="cpu", force=True, build_dir=build)
    assert did and str(src / "llama.cpp") in rec2.source
    cache = build / "CMakeCache.txt"
    cache.write_text(cache.read_text().replace("11434", "9999"))
    with pytest.raises(LlmopsError, match="build 9999, not the pinned 11434"):
        ei.install_llamacpp(variant="cpu", force=True, build_dir=build)


def test_missing_openssl_headers_are_named(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ei, "INCLUDE_DIRS", (str(tmp_path / "none"),))
    env = {"PATH": os.environ["PATH"]}
    assert "the OpenSSL headers (libssl-dev)" in ei.missing_tools("cpu", env)
    (tmp_path / "ssl" / "include" / "openssl").mkdir(parents=True)
    (tmp_path / "ssl" / "include" / "openssl" / "ssl.h").write_text("")
    env["OPENSSL_ROOT_DIR"] = str(tmp_path / "ssl")
    assert ei.has_openssl_headers(env)


def _cpu_facts():  # type: ignore[no-untyped-def]
    from llmops.hw.facts import host_facts_from_json

    path = Path(__file__).resolve().parents[1] / "fixtures" / "facts" / "no_driver.json"
    return host_facts_from_json(path.read_text())


def test_wrong_source_archive_and_wrong_binary_are_refused(toolbin: Path, tmp_path: Path) -> None:
    bogus = tmp_path / ei.LLAMACPP_SOURCE.filename
    bogus.write_bytes(b"not the sdist")
    with pytest.raises(LlmopsError, match="not the pinned"):
        ei.install_llamacpp(variant="cpu", source=bogus)
    other = _exe(
        tmp_path / "llama-server", "#!/bin/sh\necho 'version: 0.6.0-dev (build 9999, commit abc)'\n"
    )
    with pytest.raises(LlmopsError, match="build 9999, not the pinned b11434"):
        ei.install_llamacpp(variant="cpu", from_binary=other)
    good = _exe(tmp_path / "good-llama-server", FAKE_SERVER)
    rec, did = ei.install_llamacpp(variant="cpu", from_binary=good)
    assert did and rec.version == "b11434" and os.access(rec.program, os.X_OK)


def test_vllm_install_is_rendered_not_run(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LLMOPS_ENGINES_DIR", str(tmp_path / "engines"))
    r = CliRunner().invoke(app, ["engine", "install", "vllm"])
    assert r.exit_code == 0, r.output
    assert (
        "python3 -m venv" in r.stdout
        and f"pip install vllm=={VLLM_VERSION.lstrip('v')}" in r.stdout
    )
    assert not (tmp_path / "engines").exists()
