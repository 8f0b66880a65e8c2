"""The exposure audit as pure data: which routes each engine serves, how to probe them without
credentials, and what the answers mean.

``llmops audit`` and ``llmops tunnel`` (``llmops.run.audit`` does the HTTP) send one request per
route below, *without* an API key, and judge the answers here:

- a route that **generates** (or runs the model: embeddings, rerank, scoring) is probed with
  ``POST`` and a minimal body (one token at most);
- a route that **administers** (pauses, sleeps, resets caches, loads adapters, lists other
  users' slots) is probed with a request that cannot act: ``GET`` on a POST-only route, where
  ``405 Method Not Allowed`` proves the request got past any auth layer (every engine below
  checks the key before routing: TGI's axum ``layer``, vLLM's ASGI middleware, llama.cpp's
  pre-routing handler), or ``GET`` on a route that only lists (``/slots``, ``/props``);
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

Each row names where the route is declared in the pinned engine's source (TGI 3.3.5, vLLM
0.20.2, llama.cpp b11434, recorded in ``tests/fixtures/engines/*.json`` under ``http_auth``)
or in ``llmops/backend/server.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

GENERATE = "generate"
TOKENIZE = "tokenize"
ADMIN = "admin"
LIST = "list"
KINDS = (GENERATE, ADMIN, TOKENIZE, LIST)
#: An open route of these kinds exposes the deployment.
REFUSING_KINDS = (GENERATE, ADMIN)

OPEN = "open"
PROTECTED = "protected"
ABSENT = "absent"
UNKNOWN = "unknown"

ENGINE_NAMES = ("tgi", "vllm", "llamacpp", "torch")

# Minimal bodies: at most one generated token; no "model" (every engine here defaults it, and
# a wrong model name would answer 404 and hide an open route).
_CHAT = '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}'
_COMPLETION = '{"prompt":"hi","max_tokens":1}'
_EMBED = '{"input":"hi"}'
_TGI = '{"inputs":"hi","parameters":{"max_new_tokens":1}}'
_VERTEX = '{"instances":[{"inputs":"hi","parameters":{"max_new_tokens":1}}]}'
_RESPONSES = '{"input":"hi","max_output_tokens":16}'
_ANTHROPIC = '{"max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
_TOKENS = '{"inputs":"hi","prompt":"hi","content":"hi","tokens":[1]}'
_LLAMA = '{"prompt":"hi","n_predict":1}'
_INFILL = '{"input_prefix":"def f(","input_suffix":")","n_predict":1}'
_RERANK = '{"query":"hi","documents":["hi"]}'
_SCORE = '{"text_1":"hi","text_2":"hi"}'


@dataclass(frozen=True)
class Route:
    """One route an engine serves, how the audit probes it, and where it is declared."""

    method: str  # the method the route serves
    path: str
    kind: str  # generate | admin | tokenize | list
    source: str
    probe_method: str = ""  # "" = the route's own method; GET: the route would act on a POST
    body: str = ""  # JSON text sent with a POST probe
    note: str = ""

    @property
    def probe(self) -> str:
        return self.probe_method or self.method

    @property
    def wrong_method(self) -> bool:
        """Probed with another method on purpose: a 405 then means the request got through."""
        return self.probe != self.method

    @property
    def refusing(self) -> bool:
        return self.kind in REFUSING_KINDS

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def _admin(path: str, source: str, note: str = "") -> Route:
    return Route("POST", path, ADMIN, source, probe_method="GET", note=note)


# The tables: one row per line, so each route can be read against its source line.
# fmt: off
_TGI_SRC = "TGI v3.3.5 router/src/server.rs"
_TGI_BASE = f"{_TGI_SRC} l.2199-2231 (base_routes, behind the API-key layer)"
_TGI_INFO = f"{_TGI_SRC} l.2233-2240 (info_routes: no key by design)"

TGI: tuple[Route, ...] = (
    Route("POST", "/", GENERATE, _TGI_BASE, body=_TGI, note="compat_generate"),
    Route("POST", "/generate", GENERATE, _TGI_BASE, body=_TGI),
    Route("POST", "/generate_stream", GENERATE, _TGI_BASE, body=_TGI),
    Route("POST", "/v1/chat/completions", GENERATE, _TGI_BASE, body=_CHAT),
    Route("POST", "/v1/completions", GENERATE, _TGI_BASE, body=_COMPLETION),
    Route("POST", "/vertex", GENERATE, _TGI_BASE, body=_VERTEX),
    Route("POST", "/invocations", GENERATE, _TGI_BASE, body=_CHAT, note="SageMaker"),
    Route("POST", "/tokenize", TOKENIZE, _TGI_BASE, body=_TOKENS),
    Route("POST", "/chat_tokenize", TOKENIZE, _TGI_INFO, body=_CHAT),
    Route("GET", "/info", LIST, _TGI_INFO),
    Route("GET", "/v1/models", LIST, _TGI_INFO),
    Route("GET", "/metrics", LIST, _TGI_INFO),
)

_V = "vLLM 0.20.2 vllm/entrypoints/"
_V_AUTH = (
    "--api-key guards only paths starting with /v1 "
    "(openai/server_utils.py l.71-86 AuthenticationMiddleware)"
)
_OUTSIDE_V1 = "outside /v1: " + _V_AUTH

VLLM: tuple[Route, ...] = (
    Route("POST", "/v1/chat/completions", GENERATE, _V + "openai/chat_completion/api_router.py l.40", body=_CHAT),
    Route("POST", "/v1/completions", GENERATE, _V + "openai/completion/api_router.py l.34", body=_COMPLETION),
    Route("POST", "/v1/responses", GENERATE, _V + "openai/responses/api_router.py l.48", body=_RESPONSES),
    Route("POST", "/v1/messages", GENERATE, _V + "anthropic/api_router.py l.48", body=_ANTHROPIC),
    Route("POST", "/v1/embeddings", GENERATE, _V + "pooling/embed/api_router.py l.22", body=_EMBED),
    Route("POST", "/invocations", GENERATE, _V + "sagemaker/api_router.py l.55 (always mounted)", body=_CHAT, note=_OUTSIDE_V1),
    Route("POST", "/inference/v1/generate", GENERATE, _V + "serve/disagg/api_router.py l.49", body='{"token_ids":[1],"sampling_params":{"max_tokens":1}}', note=_OUTSIDE_V1),
    Route("POST", "/generative_scoring", GENERATE, _V + "openai/generative_scoring/api_router.py l.35", body=_SCORE, note=_OUTSIDE_V1),
    Route("POST", "/pooling", GENERATE, _V + "pooling/pooling/api_router.py l.21 (pooling models)", body=_EMBED, note=_OUTSIDE_V1),
    Route("POST", "/score", GENERATE, _V + "pooling/scoring/api_router.py l.28 (pooling models)", body=_SCORE, note=_OUTSIDE_V1),
    Route("POST", "/rerank", GENERATE, _V + "pooling/scoring/api_router.py l.65 (pooling models)", body=_RERANK, note=_OUTSIDE_V1),
    Route("POST", "/v2/rerank", GENERATE, _V + "pooling/scoring/api_router.py l.102 (pooling models)", body=_RERANK, note=_OUTSIDE_V1),
    Route("POST", "/v2/embed", GENERATE, _V + "pooling/embed/api_router.py l.43 (pooling models)", body=_EMBED, note=_OUTSIDE_V1),
    Route("POST", "/classify", GENERATE, _V + "pooling/classify/api_router.py l.23 (pooling models)", body=_EMBED, note=_OUTSIDE_V1),
    Route("POST", "/tokenize", TOKENIZE, _V + "serve/tokenize/api_router.py l.38", body=_TOKENS, note=_OUTSIDE_V1),
    Route("POST", "/detokenize", TOKENIZE, _V + "serve/tokenize/api_router.py l.64", body=_TOKENS, note=_OUTSIDE_V1),
    _admin("/pause", _V + "serve/rlhf/api_router.py l.30 (VLLM_SERVER_DEV_MODE)", "a POST aborts every request in flight"),
    _admin("/resume", _V + "serve/rlhf/api_router.py l.75 (VLLM_SERVER_DEV_MODE)"),
    _admin("/update_weights", _V + "serve/rlhf/api_router.py l.131 (VLLM_SERVER_DEV_MODE)"),
    _admin("/sleep", _V + "serve/sleep/api_router.py l.22 (VLLM_SERVER_DEV_MODE)"),
    _admin("/wake_up", _V + "serve/sleep/api_router.py l.33 (VLLM_SERVER_DEV_MODE)"),
    _admin("/collective_rpc", _V + "serve/rpc/api_router.py l.24 (VLLM_SERVER_DEV_MODE)"),
    _admin("/reset_prefix_cache", _V + "serve/cache/api_router.py l.21 (VLLM_SERVER_DEV_MODE)"),
    _admin("/start_profile", _V + "serve/profile/api_router.py l.21 (with a profiler config)"),
    _admin("/abort_requests", _V + "serve/disagg/api_router.py l.82 (--tokens-only)"),
    _admin("/scale_elastic_ep", _V + "serve/elastic_ep/api_router.py l.32"),
    _admin("/v1/load_lora_adapter", _V + "serve/lora/api_router.py l.42 (VLLM_ALLOW_RUNTIME_LORA_UPDATING)"),
    Route("GET", "/v1/models", LIST, _V + "openai/models/api_router.py l.20"),
)

_L = "llama.cpp b11434 tools/server/server.cpp"
_L_KEY = "the key is checked before routing for every path but /health (server-http.cpp l.251-300, 331-360)"

LLAMACPP: tuple[Route, ...] = (
    Route("POST", "/completion", GENERATE, _L + " l.270", body=_LLAMA),
    Route("POST", "/completions", GENERATE, _L + " l.271", body=_LLAMA),
    Route("POST", "/v1/completions", GENERATE, _L + " l.272", body=_COMPLETION),
    Route("POST", "/chat/completions", GENERATE, _L + " l.273", body=_CHAT),
    Route("POST", "/v1/chat/completions", GENERATE, _L + " l.274", body=_CHAT),
    Route("POST", "/v1/responses", GENERATE, _L + " l.276", body=_RESPONSES),
    Route("POST", "/v1/messages", GENERATE, _L + " l.280", body=_ANTHROPIC),
    Route("POST", "/infill", GENERATE, _L + " l.281", body=_INFILL),
    Route("POST", "/embedding", GENERATE, _L + " l.282", body='{"content":"hi"}'),
    Route("POST", "/embeddings", GENERATE, _L + " l.283", body='{"content":"hi"}'),
    Route("POST", "/v1/embeddings", GENERATE, _L + " l.284", body=_EMBED),
    Route("POST", "/rerank", GENERATE, _L + " l.285", body=_RERANK),
    Route("POST", "/tokenize", TOKENIZE, _L + " l.290", body=_TOKENS),
    Route("POST", "/detokenize", TOKENIZE, _L + " l.291", body=_TOKENS),
    Route("POST", "/apply-template", TOKENIZE, _L + " l.292", body=_CHAT),
    Route("GET", "/slots", ADMIN, _L + " l.303", note="lists every slot's prompt; POST /slots/ID saves/erases"),
    Route("GET", "/props", ADMIN, _L + " l.266", note="server settings; POST /props changes them"),
    Route("GET", "/lora-adapters", ADMIN, _L + " l.300", note="POST /lora-adapters changes them"),
    Route("GET", "/v1/models", LIST, _L + " l.269", note=_L_KEY),
    Route("GET", "/metrics", LIST, _L + " l.265"),
)

_B = "llmops/backend/server.py"

TORCH: tuple[Route, ...] = (
    Route("POST", "/v1/chat/completions", GENERATE, _B + " chat_completions (check_auth)", body=_CHAT),
    Route("POST", "/v1/completions", GENERATE, _B + " completions (check_auth)", body=_COMPLETION),
    Route("POST", "/generate", GENERATE, _B + " generate (check_auth)", body=_TGI),
    Route("POST", "/generate_stream", GENERATE, _B + " generate_stream (check_auth)", body=_TGI),
    Route("POST", "/", GENERATE, _B + " compat (check_auth)", body=_TGI),
    Route("GET", "/v1/models", LIST, _B + " models (no key, like TGI)"),
    Route("GET", "/info", LIST, _B + " info (no key, like TGI)"),
    Route("GET", "/metrics", LIST, _B + " metrics"),
)

# fmt: on

ROUTES: dict[str, tuple[Route, ...]] = {
    "tgi": TGI,
    "vllm": VLLM,
    "llamacpp": LLAMACPP,
    "torch": TORCH,
}


def routes_for(engine: str | None) -> tuple[Route, ...]:
    """The routes to probe: the engine's own, or (engine unknown) every engine's, once each.

    For the union a route served by several engines keeps the first row's body and kind with
    the most severe kind of any engine, and names every source.
    """
    if engine is not None and engine in ROUTES:
        return ROUTES[engine]
    order = {GENERATE: 0, ADMIN: 1, TOKENIZE: 2, LIST: 3}
    merged: dict[tuple[str, str], Route] = {}
    for eng in ENGINE_NAMES:
        for r in ROUTES[eng]:
            key = (r.method, r.path)
            old = merged.get(key)
            if old is None:
                merged[key] = r
                continue
            kind = old.kind if order[old.kind] <= order[r.kind] else r.kind
            merged[key] = Route(
                old.method,
                old.path,
                kind,
                f"{old.source}; {r.source}",
                old.probe_method,
                old.body,
                old.note or r.note,
            )
    return tuple(merged.values())


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


#: Said for every TGI deployment (launcher/src/main.rs, v3.3.5, l.1943-1945 and l.1971-1973).
TGI_KEY_IN_ARGV = (
    "TGI's launcher passes the API key to its router on the command line "
    "(`text-generation-router ... --api-key KEY`, launcher/src/main.rs l.1943-1945 at v3.3.5), "
    "so anyone who can run `ps` or read /proc on the host (or see the container's processes) "
    "can read the key, although llmops hands it over only in the environment. Remedy: on a "
    "host others can log in to, publish the engine on 127.0.0.1 only and reach it only through "
    "`llmops tunnel` or an authenticating reverse proxy, rotate the key if others had access, "
    "or prefer llama.cpp or llmops' torch backend, which keep the key out of argv"
)

#: Said for every vLLM deployment audited (the reason its tunnel is refused).
VLLM_OUTSIDE_V1 = (
    "vLLM's --api-key guards only paths under /v1 (vllm/entrypoints/openai/server_utils.py "
    "l.71-86): /invocations (SageMaker) generates without a key, as do /tokenize, "
    "/detokenize and the pooling routes; put an authenticating reverse proxy in front that "
    "forwards only /v1, or prefer llama.cpp or llmops' torch backend"
)

CAVEATS: dict[str, tuple[str, ...]] = {
    "tgi": (TGI_KEY_IN_ARGV,),
    "vllm": (VLLM_OUTSIDE_V1,),
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


def routes_table(engines: Iterable[str] = ENGINE_NAMES) -> list[Mapping[str, str]]:
    """The table as rows (README, ``--json``)."""
    return [
        {
            "engine": e,
            "route": r.label,
            "kind": r.kind,
            "probe": r.probe,
            "source": r.source,
        }
        for e in engines
        for r in ROUTES[e]
    ]


__all__ = [
    "ADMIN",
    "CAVEATS",
    "GENERATE",
    "KINDS",
    "LIST",
    "REFUSING_KINDS",
    "ROUTES",
    "TGI_KEY_IN_ARGV",
    "TOKENIZE",
    "VLLM_OUTSIDE_V1",
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
