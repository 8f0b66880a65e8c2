"""Stand-in engine images for the Docker tests: strict about the command line, strict about keys.

No registry is reachable here, so the real TGI / vLLM / llama.cpp images cannot run; these
stand-ins (busybox-static, a few KB) take their place as ``llmops-test/<engine>:<mode>``
(never a real engine's tag: a user's GPU host keeps its real images). Each one:

- checks every option llmops passed against the options the pinned engine accepts, from
  ``tests/fixtures/engines/<engine>.json`` (taken from the engine's own source; see its
  README): an unknown option, a missing value, a non-integer for an integer or a value outside
  the choices exits 2 with the parser's kind of message, so a wrong flag fails the test;
- prints ``args: ...`` (the real command line) to its log;
- in ``serve`` mode answers HTTP like the engine: ``/health`` always, the OpenAI routes only
  with ``Authorization: Bearer <key>`` when a key is configured (the engine's env var or
  ``--api-key``), with the engine's own public routes left open (``http_auth`` in the
  fixture: vLLM guards paths under ``/v1``; TGI leaves ``/health``, ``/info``, ``/metrics`` and
  ``/v1/models`` open; llama.cpp only ``/health`` and ``/v1/health``);
- in ``crash`` mode prints a CUDA OOM line and exits 1; in ``hang`` mode never serves; in
  ``check`` mode exits 0 once the command line is accepted.
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import tarfile
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "engines"
MODES = ("serve", "crash", "hang", "check")
ENGINES = ("tgi", "vllm", "llamacpp", "sglang")
REPO = "llmops-test"

#: The port each engine listens on when the command line does not say.
DEFAULT_PORT = {"tgi": 80, "vllm": 8000, "llamacpp": 8080, "sglang": 30000}


def fixture(engine: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{engine}.json").read_text()))


def auth_rule(engine: str) -> str:
    """``/auth``: ``prefix P...`` (vLLM: only paths under these need the key), ``public-prefix
    P...`` (SGLang: every path but those under these needs it) or ``public P...`` (every path
    but these needs it), from the fixture's ``http_auth`` (the engine's source)."""
    auth = fixture(engine)["http_auth"]
    if auth.get("protected_prefixes") or auth.get("protected_prefix"):
        return "prefix " + " ".join(auth.get("protected_prefixes") or [auth["protected_prefix"]])
    if auth.get("public_prefixes"):
        return "public-prefix " + " ".join(auth["public_prefixes"])
    public = [p for p in auth["public_paths"] if p != "/"]
    return "public " + " ".join(public)


ENTRY = r"""#!/bin/sh
# Stand-in for the engine named in /engine (tests only; see tests/support/engine_standin.py).
engine=$(cat /engine)
echo "args: $*"
port=$(cat /port)
key=""
served="test"
err() { echo "error: $*" >&2; exit 2; }
if [ "$engine" = vllm ]; then
  [ "$1" = serve ] || err "invalid choice: '$1' (choose from 'serve', ...)"
  shift
  case "$1" in ''|-*) err "vllm serve: the model (a positional argument) is missing";; esac
  served="$1"
  shift
fi
if [ "$engine" = sglang ]; then
  [ "$1 $2" = "-m sglang.launch_server" ] || err "python3: expected '-m sglang.launch_server', got '$1 $2'"
  shift 2
fi
while [ $# -gt 0 ]; do
  a="$1"; shift
  case "$a" in
    --*=*) name="${a%%=*}"; val="${a#*=}"; inline=1
           [ "$(cat /inline)" = 1 ] || err "invalid argument: $a (write '$name VALUE')" ;;
    -*) name="$a"; val=""; inline=0 ;;
    *) err "unexpected argument '$a' found" ;;
  esac
  spec=$(grep -m1 -e "^$name " /flags) || err "unexpected argument '$name' found"
  takes=$(echo "$spec" | cut -d' ' -f2)
  typ=$(echo "$spec" | cut -d' ' -f3)
  choices=$(echo "$spec" | cut -d' ' -f4)
  if [ "$takes" = 0 ]; then
    [ "$inline" = 0 ] || err "unexpected value '$val' for '$name' found; no more were expected"
    continue
  fi
  if [ "$inline" = 0 ]; then
    [ $# -gt 0 ] || err "a value is required for '$name' but none was supplied"
    val="$1"; shift
  fi
  case "$typ" in
    int) case ",$choices," in *",$val,"*) ;; *)  # some integers also take words (-ngl all)
           case "$val" in ''|*[!0-9-]*) err "invalid value '$val' for '$name': not an integer";; esac ;;
         esac ;;
    float) case "$val" in ''|*[!0-9.eE+-]*) err "invalid value '$val' for '$name': not a number";; esac ;;
    enum) case ",$choices," in *",$val,"*) ;; *) err "invalid value '$val' for '$name' [possible values: $choices]";; esac ;;
  esac
  if [ "$takes" = + ]; then  # more values until the next option
    while [ $# -gt 0 ]; do case "$1" in -*) break;; *) shift;; esac; done
  fi
  case "$name" in
    --port) port="$val" ;;
    --api-key) key="$val" ;;
    --served-model-name|-a|--alias) served="$val" ;;
    --model-path|--model) [ "$served" = test ] && served="$val" ;;
  esac
done
keyenv=$(cat /key-env)
[ -n "$key" ] || eval "key=\${$keyenv:-}"
export STANDIN_KEY="$key" STANDIN_MODEL="$served"
case "$(cat /mode)" in
  serve) echo "Downloading weights"; sleep 1; echo "Starting Webserver on $port"
         exec nc -ll -p "$port" -e /handler.sh ;;
  crash) echo "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" >&2
         exit 1 ;;
  hang)  echo "Loading model"; exec sleep 100000 ;;
  check) echo "command line accepted"; exit 0 ;;
esac
"""

HANDLER = r"""#!/bin/sh
# One HTTP/1.1 exchange on stdin/stdout (nc -ll -e): the engine's routes, its key rule.
read -r method path proto
auth=""; len=0
cr=$(printf '\r')
while IFS= read -r line; do
  line="${line%$cr}"
  [ -z "$line" ] && break
  case "$line" in
    [Aa]uthorization:*) auth="${line#*: }" ;;
    [Cc]ontent-[Ll]ength:*) len="${line#*: }" ;;
  esac
done
[ "$len" -gt 0 ] 2>/dev/null && head -c "$len" >/dev/null
route="${path%%\?*}"
reply() {
  printf 'HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "$1" "${#2}" "$2"
  exit 0
}
public=0
set -- $(cat /auth)
rule="$1"; shift
if [ "$rule" = prefix ]; then
  public=1
  for p in "$@"; do case "$route" in "$p"*) public=0 ;; esac; done
elif [ "$rule" = public-prefix ]; then
  for p in "$@"; do case "$route" in "$p"*) public=1 ;; esac; done
else
  for p in "$@"; do [ "$route" = "$p" ] && public=1; done
fi
if [ -n "$STANDIN_KEY" ] && [ "$public" = 0 ] && [ "$auth" != "Bearer $STANDIN_KEY" ]; then
  reply "401 Unauthorized" '{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}'
fi
case "$method $route" in
  "GET /health"|"GET /v1/health"|"GET /health_generate") reply "200 OK" '{"status":"ok"}' ;;
  "GET /v1/models"|"GET /models")
    reply "200 OK" "{\"object\":\"list\",\"data\":[{\"id\":\"$STANDIN_MODEL\",\"object\":\"model\"}]}" ;;
  "POST /v1/chat/completions")
    reply "200 OK" "{\"id\":\"chatcmpl-standin\",\"object\":\"chat.completion\",\"model\":\"$STANDIN_MODEL\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"stand-in\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}" ;;
  *) reply "404 Not Found" '{"error":"not found"}' ;;
esac
"""

VLLM_SHIM = '#!/bin/sh\nexec /bin/sh /entry.sh "$@"\n'
# SGLang runs as `python3 -m sglang.launch_server ...` (inside llmops' `sh -c`)
PYTHON_SHIM = VLLM_SHIM
APPLETS = ("sh", "nc", "sleep", "cat", "echo", "grep", "cut", "head", "printf")


def flag_lines(engine: str) -> str:
    """``/flags``: one line per accepted option: ``NAME TAKES TYPE CHOICES``."""
    doc = fixture(engine)
    lines = []
    for name, spec in sorted(doc["options"].items()):
        takes = "0"
        if spec.get("takes_value"):
            takes = "+" if spec.get("multiple") else "1"
        typ = spec.get("type") or "string"
        words = spec.get("choices") or spec.get("keywords") or []
        choices = ",".join(str(c) for c in words) or "-"
        for n in [name, *(spec.get("aliases") or [])]:
            lines.append(f"{n} {takes} {typ} {choices}")
    return "\n".join(lines) + "\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def build(client: Any, busybox: str) -> None:
    """Import ``llmops-test/<engine>:<mode>`` for every engine and mode."""
    for engine in ENGINES:
        doc = fixture(engine)
        flags = flag_lines(engine).encode()
        inline = b"0" if "no --opt=VALUE" in doc["value_syntax"] else b"1"
        for mode in MODES:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                tar.add(busybox, arcname="bin/busybox")
                for applet in APPLETS:
                    info = tarfile.TarInfo(f"bin/{applet}")
                    info.type = tarfile.SYMTYPE
                    info.linkname = "busybox"
                    tar.addfile(info)
                _add(tar, "entry.sh", ENTRY.encode(), 0o755)
                _add(tar, "handler.sh", HANDLER.encode(), 0o755)
                _add(tar, "usr/local/bin/vllm", VLLM_SHIM.encode(), 0o755)
                _add(tar, "usr/local/bin/python3", PYTHON_SHIM.encode(), 0o755)
                _add(tar, "engine", engine.encode())
                _add(tar, "mode", mode.encode())
                _add(tar, "port", str(DEFAULT_PORT[engine]).encode())
                _add(tar, "key-env", (doc["http_auth"]["env"] or "NO_KEY_ENV").encode())
                _add(tar, "auth", auth_rule(engine).encode())
                _add(tar, "inline", inline)
                _add(tar, "flags", flags)
            client.api.import_image_from_data(
                buf.getvalue(),
                repository=f"{REPO}/{engine}",
                tag=mode,
                changes=[
                    'ENTRYPOINT ["/bin/sh", "/entry.sh"]',
                    "ENV PATH=/usr/local/bin:/bin",
                ],
            )


def image(engine: str, mode: str = "serve") -> str:
    return f"{REPO}/{engine}:{mode}"


def busybox_path() -> str | None:
    path = shutil.which("busybox") or "/bin/busybox"
    return path if Path(path).exists() else None


def sh_words(argv: list[str] | tuple[str, ...]) -> list[str]:
    """The command a ``-c 'exec python3 ... "$@"' sglang EXTRA...`` plan (``/bin/sh`` entrypoint) runs, as words
    (the key reference stands for the key the shell expands it to)."""
    argv = list(argv)
    if argv[:1] == ["-c"]:
        argv = argv[1:]
    if not argv or not argv[0].startswith("exec "):
        return argv
    words = shlex.split(argv[0])[1:]
    if words and words[-1] == "$@":
        words = words[:-1]
    if words[:1] == ["python3"]:
        words = words[1:]
    return [("KEY" if w.startswith("$") else w) for w in words] + list(argv[2:])


def check_argv(engine: str, argv: list[str] | tuple[str, ...]) -> list[str]:
    """The same rules as the image's entry script, in Python (for a grid without Docker):
    the problems the engine's parser would report, empty when it would accept ``argv``."""
    doc = fixture(engine)
    opts: dict[str, dict[str, Any]] = {}
    for name, spec in doc["options"].items():
        for n in [name, *(spec.get("aliases") or [])]:
            opts.setdefault(n, spec)
    inline_ok = "no --opt=VALUE" not in doc["value_syntax"]
    args = sh_words(argv) if engine == "sglang" else list(argv)
    problems: list[str] = []
    if engine == "sglang":
        if args[:2] != ["-m", "sglang.launch_server"]:
            return [f"expected '-m sglang.launch_server' first, got {args[:2]}"]
        args = args[2:]
    if engine == "vllm":
        if args[:1] != ["serve"]:
            return [f"expected 'serve' first, got {args[:1]}"]
        if len(args) < 2 or args[1].startswith("-"):
            return ["the model must follow 'serve'"]
        args = args[2:]
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if not a.startswith("-"):
            problems.append(f"unexpected argument {a!r}")
            continue
        name, eq, val = a.partition("=")
        if eq and not inline_ok:
            problems.append(f"{a!r}: this engine takes '{name} VALUE', not '{name}=VALUE'")
            continue
        spec = opts.get(name)
        if spec is None:
            problems.append(f"unknown option {name!r}")
            continue
        if not spec.get("takes_value"):
            if eq:
                problems.append(f"{name} takes no value")
            continue
        if not eq:
            if i >= len(args):
                problems.append(f"{name} needs a value")
                continue
            val = args[i]
            i += 1
        words = [str(c) for c in (spec.get("choices") or spec.get("keywords") or [])]
        typ = spec.get("type")
        if typ == "enum" and val not in words:
            problems.append(f"{name} {val!r} is not one of {words}")
        elif typ == "int" and val not in words:
            try:
                int(val)
            except ValueError:
                problems.append(f"{name} {val!r} is not an integer")
        elif typ == "float":
            try:
                float(val)
            except ValueError:
                problems.append(f"{name} {val!r} is not a number")
        elif typ == "json":
            try:
                json.loads(val)
            except ValueError:
                problems.append(f"{name} {val!r} is not JSON")
        if spec.get("multiple"):
            while i < len(args) and not args[i].startswith("-"):
                i += 1
    return problems
