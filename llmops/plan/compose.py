"""A LaunchPlan as a docker compose file, and merging it into an existing one (``--add``).

The service carries what ``docker run`` would: the GPUs as a device reservation (driver nvidia,
the plan's device ids), shm or host IPC, ports, volumes (named volumes declared at the top level
with their real names, so ``llmops up`` and compose share them), labels, the restart policy and
a healthcheck on the engine's health path.

Secrets are never in the file and need no file of their own: each is taken from the
environment of ``docker compose`` through interpolation (``${LLMOPS_API_KEY:?...}``), which
stops ``config``/``up`` with that message when a required one is unset, so the rendered file
runs as written (an ``env_file`` pointing at the secrets file only ``llmops up`` creates did
not: "Couldn't find env file").

Every value llmops did not mean as an interpolation (image, command, labels, paths, plain
environment values) has its ``$`` doubled (``names.compose_literal``): compose would otherwise
fill ``${HF_TOKEN}`` in an argument from its own environment. The secrets' ``${VAR:?...}`` and
``${HOME}`` for ``~/`` paths are the only interpolations, added after the escaping.

Pure: the caller reads the existing compose file and passes its text in.
"""

from __future__ import annotations

import re
from typing import Any

from llmops.errors import UsageError
from llmops.plan import names
from llmops.plan.launch import LaunchPlan, Mount, SecretEnv

COMPOSE_HEADER = (
    "# llmops deployment(s) for docker compose. Rendered by `llmops render --format compose`;\n"
    "# start with `docker compose up -d` (or `docker-compose up -d`).\n"
)

# Where each secret comes from: the variable compose reads, and what to put in it.
SECRET_VARS = {
    "api_key": ("LLMOPS_API_KEY", "the API key clients will send"),
    "hf_token": ("HF_TOKEN", "a Hugging Face token that can read the model"),
}
_SET = {
    "api_key": "export LLMOPS_API_KEY=$(openssl rand -hex 24)   # clients send it as the bearer token",
    "hf_token": "export HF_TOKEN=hf_...   # a Hugging Face read token",
}


def secret_value(s: SecretEnv) -> str:
    """The compose interpolation that fills secret ``s`` from the environment.

    Required: ``${VAR:?message}`` (compose refuses to run without it, with the message);
    optional: ``${VAR:-}`` (empty when unset).
    """
    var, what = SECRET_VARS.get(s.secret, (s.env, f"the {s.secret.replace('_', ' ')}"))
    if not s.required:
        return f"${{{var}:-}}"
    return f"${{{var}:?set {var} to {what}}}"


def secrets_help(doc: dict[str, Any]) -> str:
    """Header lines saying how to set the variables the services in ``doc`` read."""
    text = repr(doc.get("services") or {})
    lines = []
    for secret, (var, _what) in SECRET_VARS.items():
        if "${" + var + ":?" in text:
            lines.append(f"#   {_SET[secret]}")
        elif "${" + var + ":-}" in text:
            lines.append(f"#   {_SET[secret]}   (optional here)")
    if not lines:
        return ""
    return (
        "# Secrets are not in this file: compose takes them from its environment (or a .env\n"
        "# file beside this one) and stops with a message when a required one is unset:\n"
        + "\n".join(lines)
        + "\n"
    )


def _host_path(path: str) -> str:
    """``~/x`` → ``${HOME}/x``: compose interpolates variables, not ``~``, in every version.
    The rest of the path is literal (``$`` doubled)."""
    if path == "~":
        return "${HOME}"
    if path.startswith("~/"):
        return "${HOME}/" + names.compose_literal(path[2:])
    return names.compose_literal(path)


def _volume(m: Mount) -> str:
    src = names.compose_literal(m.source) if m.kind == "volume" else _host_path(m.source)
    return f"{src}:{names.compose_literal(m.target)}" + (":ro" if m.read_only else "")


def _literal(value: Any) -> Any:
    """``value`` with ``$`` doubled in every string in it (dict keys and values, list items)."""
    if isinstance(value, str):
        return names.compose_literal(value)
    if isinstance(value, dict):
        return {_literal(k): _literal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_literal(v) for v in value]
    return value


def _healthcheck(plan: LaunchPlan) -> dict[str, Any]:
    port = plan.ports[0].container_port
    url = f"http://localhost:{port}{plan.health.path}"
    if plan.engine == "llamacpp":
        # the llama.cpp server images ship curl (their own HEALTHCHECK uses it); /health is open
        test = ["CMD", "curl", "-fsS", "-o", "/dev/null", url]
    else:
        # the TGI, vLLM and torch images have python3 but not always curl
        test = [
            "CMD",
            "python3",
            "-c",
            f"import urllib.request; urllib.request.urlopen('{url}', timeout=5)",
        ]
    return {
        "test": test,
        "interval": "30s",
        "timeout": "10s",
        "retries": 3,
        # weights download and load before the first 200 (engines.md §3)
        "start_period": f"{plan.health.start_period_s}s",
    }


def compose_service(plan: LaunchPlan, *, secrets_file: str) -> dict[str, Any]:
    """The compose service for one docker plan (a plain dict, ready for YAML).

    ``secrets_file`` (where ``llmops up`` keeps the deployment's secrets) is not read by
    compose; it is named in the header only.

    Raises:
        UsageError: for a native plan (compose runs containers).
    """
    if plan.runtime != "docker" or plan.image is None:
        raise UsageError(
            "the compose format runs containers; this plan uses the native runtime",
            "use `--runtime docker` (the default for --format compose)",
        )
    svc: dict[str, Any] = {
        "image": plan.image,
        "container_name": f"llmops-{plan.name}",
    }
    if plan.entrypoint:
        svc["entrypoint"] = list(plan.entrypoint)
    svc["command"] = list(plan.argv)
    svc["restart"] = "unless-stopped"
    svc["ports"] = [f"{p.host_ip}:{p.host_port}:{p.container_port}" for p in plan.ports]
    svc = _literal(svc)  # everything so far is meant literally
    if plan.mounts:
        svc["volumes"] = [_volume(m) for m in plan.mounts]
    env = _literal(dict(plan.env))
    env.update({s.env: secret_value(s) for s in plan.secret_env})  # meant as interpolation
    if env:
        svc["environment"] = env
    if plan.ipc_host:
        svc["ipc"] = "host"
    elif plan.shm_size_mib:
        svc["shm_size"] = f"{plan.shm_size_mib}m"
    svc["labels"] = _literal(dict(plan.labels))
    svc["healthcheck"] = _literal(_healthcheck(plan))
    svc["logging"] = {"driver": "json-file", "options": {"max-size": "50m", "max-file": "3"}}
    if plan.gpus:
        svc["deploy"] = {
            "resources": {
                "reservations": {
                    "devices": [
                        {
                            "driver": "nvidia",
                            "device_ids": [str(g) for g in plan.gpus],
                            "capabilities": ["gpu"],
                        }
                    ]
                }
            }
        }
    return svc


def _named_volumes(plan: LaunchPlan) -> dict[str, Any]:
    # `name:` keeps the real volume name (no project prefix): the same volume `llmops up` uses
    return {
        m.source: {"name": names.compose_literal(m.source)}
        for m in plan.mounts
        if m.kind == "volume"
    }


def compose_doc(plan: LaunchPlan, *, secrets_file: str) -> dict[str, Any]:
    """A whole compose document holding this one deployment."""
    doc: dict[str, Any] = {
        "services": {plan.name: compose_service(plan, secrets_file=secrets_file)}
    }
    vols = _named_volumes(plan)
    if vols:
        doc["volumes"] = vols
    return doc


def _notes(plan: LaunchPlan, secrets_file: str) -> str:
    c = names.comment
    lines = [f"# {c(plan.name)}: {c(plan.model)} ({c(plan.quant)}) on {c(plan.engine)}"]
    if plan.secret_env:
        held = ", ".join(
            f"{s.env} from ${SECRET_VARS.get(s.secret, (s.env, ''))[0]}"
            + ("" if s.required else " (optional)")
            for s in plan.secret_env
        )
        lines.append(f"#   secrets: {held} (`llmops up` keeps its own in {c(secrets_file)})")
    lines += [f"#   note: {c(n)}" for n in plan.notes]
    return "\n".join(lines) + "\n"


def dump(doc: dict[str, Any]) -> str:
    import yaml

    text: str = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)
    return text


def render_compose(plan: LaunchPlan, *, secrets_file: str) -> str:
    """The compose file text for one deployment (header comments, then YAML)."""
    doc = compose_doc(plan, secrets_file=secrets_file)
    return COMPOSE_HEADER + secrets_help(doc) + _notes(plan, secrets_file) + dump(doc)


# ------------------------------------------------------------------------------------ --add

_PORT = re.compile(r"^(?:(?P<ip>\[[^\]]*\]|[^:]+):)?(?P<host>\d+(?:-\d+)?):(?P<ctr>\d+(?:-\d+)?)")


def _host_ports(spec: Any) -> set[int]:
    """Host ports a compose ``ports`` entry publishes (short or long syntax; ranges expanded)."""
    out: set[int] = set()
    if isinstance(spec, dict):
        pub = spec.get("published")
        if pub is not None:
            out |= _range(str(pub))
        return out
    text = str(spec).split("/")[0]
    m = _PORT.match(text)
    if m:
        out |= _range(m.group("host"))
    return out  # a bare "8000" publishes a random host port: nothing to clash with


def _range(text: str) -> set[int]:
    if "-" in text:
        a, b = text.split("-", 1)
        if a.isdigit() and b.isdigit():
            return set(range(int(a), int(b) + 1))
        return set()
    return {int(text)} if text.isdigit() else set()


def merge_compose(existing_text: str, plan: LaunchPlan, *, secrets_file: str, where: str) -> str:
    """Add this deployment as another service to an existing compose file's text.

    Comments of the existing file are not kept (it is parsed and written again).

    Raises:
        UsageError: the file is not a compose mapping, or the service name or a host port is
            already taken there.
    """
    import yaml

    try:
        doc = yaml.safe_load(existing_text)
    except yaml.YAMLError as e:
        raise UsageError(f"{where} is not valid YAML: {e}", "pass a docker compose file") from e
    if doc is None:
        doc = {}
    if not isinstance(doc, dict) or not isinstance(doc.get("services", {}), dict):
        raise UsageError(
            f"{where} is not a docker compose file (no `services:` mapping)",
            "pass a file written by `llmops render --format compose`, or any compose file",
        )
    services: dict[str, Any] = doc.setdefault("services", {}) or {}
    doc["services"] = services
    if plan.name in services:
        raise UsageError(
            f"service {plan.name} is already in {where}",
            "choose another deployment name with `--name`",
        )
    mine = {p.host_port for p in plan.ports}
    for name, svc in services.items():
        for spec in (svc or {}).get("ports") or []:
            clash = mine & _host_ports(spec)
            if clash:
                port = min(clash)
                raise UsageError(
                    f"host port {port} is already published by service {name} in {where}",
                    f"choose another host port with `--port {_free_port(services, port)}`",
                )
    services[plan.name] = compose_service(plan, secrets_file=secrets_file)
    vols = _named_volumes(plan)
    if vols:
        declared = doc.get("volumes") or {}
        if not isinstance(declared, dict):
            raise UsageError(f"{where}: top-level `volumes` is not a mapping", None)
        for k, v in vols.items():
            declared.setdefault(k, v)
        doc["volumes"] = declared
    return COMPOSE_HEADER + secrets_help(doc) + _notes(plan, secrets_file) + dump(doc)


def _free_port(services: dict[str, Any], start: int) -> int:
    used: set[int] = set()
    for svc in services.values():
        for spec in (svc or {}).get("ports") or []:
            used |= _host_ports(spec)
    port = start + 1
    while port in used:
        port += 1
    return port
