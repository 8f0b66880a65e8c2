"""The exposure audit as pure data: which routes each engine serves, how to probe them without
credentials, and what the answers mean.

``llmops audit`` and ``llmops tunnel`` (``llmops.run.audit`` does the HTTP) send one request per
route below, *without* an API key, and judge the answers here:

- a route that **generates** (or runs the model: embeddings, rerank, scoring) is probed with
  ``POST`` and a minimal body (one token at most);
- a route that **administers** (pauses, sleeps, resets caches, loads adapters, lists other
  users' slots) is probed with a request that cannot act: a method the route does not serve
  (``GET`` on a POST-only route, ``PUT`` on SGLang's GET-or-POST ones such as ``/flush_cache``),
  where ``405 Method Not Allowed`` proves the request got past any auth layer (every engine
  below checks the key before routing: TGI's axum ``layer``, vLLM's and SGLang's ASGI
  middleware, llama.cpp's pre-routing handler), or ``GET`` on a route that only lists
  (``/slots``, ``/props``);
- a route that **tokenizes** or **lists** (``/v1/models``, ``/info``, ``/metrics``) is probed
  too and shown, but an open one does not refuse a tunnel: TGI and llmops' own backend serve
  ``/v1/models`` and ``/info`` without a key by design, TGI ``/chat_tokenize`` as well.

An answer is **open** (2xx; 400/413/415/422: the handler judged the body, so nothing judged
the caller; 405 to a probe sent with the wrong method on purpose), **protected** (401/403),
**absent** (404, 501, or 405 to a probe sent with the route's own method) or **unknown**
(no answer, 5xx, a redirect, 429). The audit's verdict: ``exposed`` when any generating or
administrative route is open; ``unprotected`` when no route asked for a key at all;
``inconclusive`` when a generating or administrative route gave no usable answer (an engine
still loading answers 503); ``unreachable`` when nothing answered; else ``protected``.

The route tables (``Route``, ``ROUTES``, ``routes_for``) live in ``llmops.plan.audit_routes``;
this module judges the answers and re-exports them, so callers import only ``llmops.plan.audit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmops.plan.audit_routes import (
    ADMIN,
    ENGINE_NAMES,
    GENERATE,
    KINDS,
    LIST,
    LLAMACPP,
    REFUSING_KINDS,
    ROUTES,
    SGLANG,
    SGLANG_OPEN_PREFIXES,
    TGI,
    TOKENIZE,
    TORCH,
    VLLM,
    VLLM_GUARDED_PREFIXES,
    Route,
    routes_for,
    routes_table,
)

OPEN = "open"
PROTECTED = "protected"
ABSENT = "absent"
UNKNOWN = "unknown"


def classify(route: Route, status: int | None) -> str:
    """One answer, without credentials: open | protected | absent | unknown."""
    if status is None:
        return UNKNOWN
    if status in (401, 403, 407):
        return PROTECTED
    if 200 <= status < 300:
        return OPEN
    if status == 405:
        return OPEN if route.wrong_method else ABSENT
    if status in (404, 501):
        return ABSENT
    if status in (400, 413, 415, 422):
        return OPEN  # the handler judged the body: nothing judged the caller
    return UNKNOWN


@dataclass(frozen=True)
class Probe:
    """One route's answer to a request without credentials."""

    method: str  # the route's method
    path: str
    probed_with: str  # the method sent
    kind: str
    status: int | None
    answer: str  # open | protected | absent | unknown
    source: str
    note: str = ""
    error: str | None = None  # why there was no answer

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def probe_result(route: Route, status: int | None, error: str | None = None) -> Probe:
    return Probe(
        route.method,
        route.path,
        route.probe,
        route.kind,
        status,
        classify(route, status),
        route.source,
        route.note,
        error,
    )


#: Said for every TGI deployment (launcher/src/main.rs, v3.3.7, l.1947-1949 and l.1975-1977).
TGI_KEY_IN_ARGV = (
    "TGI's launcher passes the API key to its router on the command line "
    "(`text-generation-router ... --api-key KEY`, launcher/src/main.rs l.1947-1949 at v3.3.7), "
    "so anyone who can run `ps` or read /proc on the host (or see the container's processes) "
    "can read the key, although llmops hands it over only in the environment. Remedy: on a "
    "host others can log in to, publish the engine on 127.0.0.1 only and reach it only through "
    "`llmops tunnel` or an authenticating reverse proxy, rotate the key if others had access, "
    "or prefer llama.cpp or llmops' torch backend, which keep the key out of argv"
)

#: Said for every SGLang deployment: SGLang has no environment variable for the key.
SGLANG_KEY_IN_ARGV = (
    "SGLang reads its API key only from the command line (--api-key, sglang/srt/arg_groups/"
    "fields/serving.py l.160 at 0.5.23; no environment variable), so llmops starts it as "
    "`sh -c 'exec python3 -m sglang.launch_server ... --api-key \"$SGLANG_API_KEY\"'`: the "
    "rendered command, compose file and manifest never hold the key, but the running server's "
    "argv does, so anyone who can run `ps` or read /proc on the host (or see the container's "
    "processes) can read it. Remedy: on a host others can log in to, publish the engine on "
    "127.0.0.1 only and reach it only through `llmops tunnel` or an authenticating reverse "
    "proxy, rotate the key if others had access, or prefer llama.cpp or llmops' torch backend, "
    "which keep the key out of argv"
)

#: Said for every vLLM deployment audited (the reason its tunnel is refused).
VLLM_UNGUARDED_ROUTES = (
    "vLLM 0.33.0's --api-key guards only paths under /v1, /v2, /inference and /cohere "
    "(vllm/entrypoints/serve/middleware/authenticate.py l.11, l.59): /invocations (SageMaker, "
    "always mounted) and /generative_scoring generate without a key, as do /pooling, "
    "/classify, /score and /rerank on a pooling model; /tokenize and /detokenize answer "
    "too, /scale_elastic_ep is mounted with every generating model, and with "
    "VLLM_SERVER_DEV_MODE so are /pause, /resume, /sleep, /collective_rpc, /update_weights "
    "and the other dev and RL routes; put an authenticating reverse proxy in front that "
    "forwards only /v1, or prefer llama.cpp or llmops' torch backend"
)

CAVEATS: dict[str, tuple[str, ...]] = {
    "tgi": (TGI_KEY_IN_ARGV,),
    "vllm": (VLLM_UNGUARDED_ROUTES,),
    "sglang": (SGLANG_KEY_IN_ARGV,),
}


def caveats_for(engine: str | None) -> tuple[str, ...]:
    return CAVEATS.get(engine or "", ())


@dataclass(frozen=True)
class Audit:
    """What the probes found at ``url``, and the verdict."""

    url: str
    engine: str | None
    verdict: str  # protected | exposed | unprotected | inconclusive | unreachable
    open_routes: tuple[str, ...]  # "POST /v1/chat/completions (200)": generating/admin, open
    detail: str
    probes: tuple[Probe, ...]
    caveats: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict == "protected"


def _cite(p: Probe) -> str:
    got = str(p.status) if p.status is not None else "no answer"
    if p.probed_with != p.method:
        got += f" to {p.probed_with}"
    return f"{p.label} ({got})"


def judge_audit(url: str, engine: str | None, probes: Sequence[Probe]) -> Audit:
    """The verdict from the probes (see the module docstring)."""
    url = url.rstrip("/")
    caveats = caveats_for(engine)
    probes = tuple(probes)
    open_refusing = tuple(_cite(p) for p in probes if p.answer == OPEN and p.kind in REFUSING_KINDS)
    if not probes or all(p.status is None for p in probes):
        first = next((p.error for p in probes if p.error), None)
        detail = f"nothing answered at {url}" + (f" ({first})" if first else "")
        return Audit(url, engine, "unreachable", (), detail, probes, caveats)
    if open_refusing:
        detail = f"open without an API key at {url}: " + ", ".join(open_refusing)
        return Audit(url, engine, "exposed", open_refusing, detail, probes, caveats)
    models = next((p for p in probes if p.path == "/v1/models" and p.method == "GET"), None)
    if not any(p.answer == PROTECTED for p in probes):
        detail = f"no route at {url} asked for an API key"
        if models is not None and models.status is not None:
            detail += f" (GET {url}/v1/models answered {models.status}, not 401)"
        return Audit(url, engine, "unprotected", (), detail, probes, caveats)
    unsure = tuple(_cite(p) for p in probes if p.answer == UNKNOWN and p.kind in REFUSING_KINDS)
    if unsure:
        detail = (
            f"could not tell whether these routes at {url} need a key: "
            + ", ".join(unsure)
            + " (a 503 usually means the engine is still loading)"
        )
        return Audit(url, engine, "inconclusive", (), detail, probes, caveats)
    counts = {a: sum(1 for p in probes if p.answer == a) for a in (PROTECTED, ABSENT, OPEN)}
    allowed = [p.label for p in probes if p.answer == OPEN]
    detail = (
        f"{counts[PROTECTED]} routes refuse a request without the key, {counts[ABSENT]} not served"
    )
    if allowed:
        detail += "; open by design (they list or tokenize): " + ", ".join(allowed)
    return Audit(url, engine, "protected", (), detail, probes, caveats)


def base_url(url: str) -> str:
    """``http://host:8000/v1/`` → ``http://host:8000``: the audit's paths are absolute."""
    u = url.strip().rstrip("/")
    if u.endswith("/v1"):
        u = u[: -len("/v1")]
    return u


__all__ = [
    "ABSENT",
    "ADMIN",
    "CAVEATS",
    "ENGINE_NAMES",
    "GENERATE",
    "KINDS",
    "LIST",
    "LLAMACPP",
    "OPEN",
    "PROTECTED",
    "REFUSING_KINDS",
    "ROUTES",
    "SGLANG",
    "SGLANG_KEY_IN_ARGV",
    "SGLANG_OPEN_PREFIXES",
    "TGI",
    "TGI_KEY_IN_ARGV",
    "TOKENIZE",
    "TORCH",
    "UNKNOWN",
    "VLLM",
    "VLLM_GUARDED_PREFIXES",
    "VLLM_UNGUARDED_ROUTES",
    "Audit",
    "Probe",
    "Route",
    "base_url",
    "caveats_for",
    "classify",
    "judge_audit",
    "probe_result",
    "routes_for",
    "routes_table",
]
