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

Each row names where the route is declared in the pinned engine's source (TGI 3.3.7, vLLM
0.33.0, SGLang 0.5.23, llama.cpp b11434; their key rules are recorded in
``tests/fixtures/engines/*.json`` under ``http_auth``) or in ``llmops/backend/routes_*.py``.
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

ENGINE_NAMES = ("tgi", "vllm", "sglang", "llamacpp", "torch")

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
_SGL = '{"text":"hi","sampling_params":{"max_new_tokens":1}}'
_OLLAMA = '{"model":"x","prompt":"hi","messages":[{"role":"user","content":"hi"}],"stream":false}'


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


def _admin(path: str, source: str, note: str = "", probe: str = "GET") -> Route:
    """A POST route that acts: probed with ``probe``, a method it does not serve."""
    return Route("POST", path, ADMIN, source, probe_method=probe, note=note)


def _admin_get_post(path: str, source: str, note: str = "") -> Route:
    """A route that acts on ``GET`` as well as ``POST`` (SGLang): probed with ``PUT``."""
    return _admin(
        path, source, "acts on GET and POST: probed with PUT" + (f"; {note}" if note else ""), "PUT"
    )


# The tables: one row per line, so each route can be read against its source line.
# fmt: off
_TGI_SRC = "TGI v3.3.7 router/src/server.rs"
_TGI_BASE = f"{_TGI_SRC} l.2203-2235 (base_routes, behind the API-key layer)"
_TGI_INFO = f"{_TGI_SRC} l.2237-2244 (info_routes: no key by design)"

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

#: The path prefixes vLLM 0.33.0's --api-key guards (vllm/entrypoints/serve/middleware/
#: authenticate.py l.11 GUARDED_PREFIX, checked at l.59 after root_path; OPTIONS never checked).
#: Every other path answers without the key.
VLLM_GUARDED_PREFIXES = ("/v1", "/v2", "/inference", "/cohere")

_V = "vLLM 0.33.0 vllm/entrypoints/"
_V_AUTH = "serve/middleware/authenticate.py l.11, l.59"
_V_OPEN = "not under /v1, /v2, /inference or /cohere: answers without the key (" + _V_AUTH + ")"
_V_DEV = " (VLLM_SERVER_DEV_MODE)"
_V_RL = _V + "rl/online/api_router.py"  # mounted with VLLM_SERVER_DEV_MODE (launchers/api_server/routers.py l.46-53)
_V_SCALE = "--enable-scale-out or --tokens-only; else a 403 stub, scale_out/factories.py l.100-127"

VLLM: tuple[Route, ...] = (
    Route("POST", "/v1/chat/completions", GENERATE, _V + "openai/chat_completion/api_router.py l.43", body=_CHAT),
    Route("POST", "/v1/chat/completions/batch", GENERATE, _V + "openai/chat_completion/api_router.py l.88", body=_CHAT),
    Route("POST", "/v1/completions", GENERATE, _V + "openai/completion/api_router.py l.37", body=_COMPLETION),
    Route("POST", "/v1/responses", GENERATE, _V + "openai/responses/api_router.py l.48", body=_RESPONSES),
    Route("POST", "/v1/messages", GENERATE, _V + "anthropic/api_router.py l.52", body=_ANTHROPIC),
    Route("POST", "/v1/decisions", GENERATE, _V + "openai/decisions/api_router.py l.24 (always mounted)", body=_CHAT),
    Route("POST", "/v1/systemone", GENERATE, _V + "generate/structured_decisions/api_router.py l.33 (always mounted)", body=_CHAT),
    Route("POST", "/v1/embeddings", GENERATE, _V + "pooling/embed/api_router.py l.28, pooling/token_embed/api_router.py l.25 (pooling models)", body=_EMBED),
    Route("POST", "/v1/score", GENERATE, _V + "pooling/scoring/api_router.py l.52 (pooling models)", body=_SCORE),
    Route("POST", "/v1/rerank", GENERATE, _V + "pooling/scoring/api_router.py l.84 (pooling models)", body=_RERANK),
    Route("POST", "/v2/rerank", GENERATE, _V + "pooling/scoring/api_router.py l.102 (pooling models)", body=_RERANK),
    Route("POST", "/v2/embed", GENERATE, _V + "pooling/embed/api_router.py l.46 (pooling models)", body=_EMBED),
    Route("POST", "/v1/audio/transcriptions", GENERATE, _V + "speech_to_text/transcription/api_router.py l.31 (transcription models)", body="{}"),
    Route("POST", "/v1/audio/translations", GENERATE, _V + "speech_to_text/translation/api_router.py l.31 (transcription models)", body="{}"),
    Route("POST", "/cohere/v2/chat", GENERATE, _V + "cohere/api_router.py l.119 (VLLM_ENABLE_COHERE_API=1)", body=_CHAT),
    Route("POST", "/inference/v1/generate", GENERATE, _V + f"scale_out/token_in_token_out/api_router.py l.46 ({_V_SCALE})", body='{"token_ids":[1],"sampling_params":{"max_tokens":1}}'),
    Route("POST", "/invocations", GENERATE, _V + "serve/sagemaker/api_router.py l.98 (always mounted)", body=_CHAT, note=_V_OPEN),
    Route("POST", "/generative_scoring", GENERATE, _V + "generate/generative_scoring/api_router.py l.30", body=_SCORE, note=_V_OPEN),
    Route("POST", "/pooling", GENERATE, _V + "pooling/pooling/api_router.py l.27 (pooling models)", body=_EMBED, note=_V_OPEN),
    Route("POST", "/classify", GENERATE, _V + "pooling/classify/api_router.py l.26 (pooling models)", body=_EMBED, note=_V_OPEN),
    Route("POST", "/score", GENERATE, _V + "pooling/scoring/api_router.py l.37 (pooling models)", body=_SCORE, note=_V_OPEN),
    Route("POST", "/rerank", GENERATE, _V + "pooling/scoring/api_router.py l.69 (pooling models)", body=_RERANK, note=_V_OPEN),
    Route("POST", "/tokenize", TOKENIZE, _V + "serve/tokenize/api_router.py l.35", body=_TOKENS, note=_V_OPEN),
    Route("POST", "/detokenize", TOKENIZE, _V + "serve/tokenize/api_router.py l.61", body=_TOKENS, note=_V_OPEN),
    Route("POST", "/v1/messages/count_tokens", TOKENIZE, _V + "anthropic/api_router.py l.90", body=_ANTHROPIC),
    Route("POST", "/v1/chat/completions/render", TOKENIZE, _V + f"scale_out/render/api_router.py l.30 ({_V_SCALE})", body=_CHAT),
    Route("POST", "/v1/messages/render", TOKENIZE, _V + f"scale_out/render/api_router.py l.53 ({_V_SCALE})", body=_ANTHROPIC),
    Route("POST", "/v1/completions/render", TOKENIZE, _V + f"scale_out/render/api_router.py l.74 ({_V_SCALE})", body=_COMPLETION),
    Route("POST", "/v1/responses/render", TOKENIZE, _V + f"scale_out/render/api_router.py l.94 ({_V_SCALE})", body=_RESPONSES),
    Route("POST", "/v1/chat/completions/derender", TOKENIZE, _V + f"scale_out/derender/api_router.py l.31 ({_V_SCALE})", body=_TOKENS),
    Route("POST", "/v1/completions/derender", TOKENIZE, _V + f"scale_out/derender/api_router.py l.81 ({_V_SCALE})", body=_TOKENS),
    _admin("/pause", _V_RL + " l.31" + _V_DEV, "a POST aborts every request in flight; " + _V_OPEN),
    _admin("/resume", _V_RL + " l.78" + _V_DEV, _V_OPEN),
    _admin("/abort_requests", _V_RL + " l.97" + _V_DEV + "; scale_out/token_in_token_out/api_router.py l.104 (--tokens-only, 'unauthenticated legacy path')", _V_OPEN),
    _admin("/init_weight_transfer_engine", _V_RL + " l.162" + _V_DEV, _V_OPEN),
    _admin("/start_weight_update", _V_RL + " l.181" + _V_DEV, _V_OPEN),
    _admin("/update_weights", _V_RL + " l.195" + _V_DEV, _V_OPEN),
    _admin("/finish_weight_update", _V_RL + " l.207" + _V_DEV, _V_OPEN),
    _admin("/sleep", _V + "serve/dev/sleep/api_router.py l.26" + _V_DEV, _V_OPEN),
    _admin("/release_kv_cache_memory", _V + "serve/dev/sleep/api_router.py l.37" + _V_DEV, _V_OPEN),
    _admin("/wake_up", _V + "serve/dev/sleep/api_router.py l.44" + _V_DEV, _V_OPEN),
    _admin("/collective_rpc", _V + "serve/dev/rpc/api_router.py l.23" + _V_DEV, _V_OPEN),
    _admin("/reset_prefix_cache", _V + "serve/dev/cache/api_router.py l.20" + _V_DEV, _V_OPEN),
    _admin("/reset_mm_cache", _V + "serve/dev/cache/api_router.py l.47" + _V_DEV, _V_OPEN),
    _admin("/reset_encoder_cache", _V + "serve/dev/cache/api_router.py l.57" + _V_DEV, _V_OPEN),
    _admin("/start_profile", _V + "serve/profile/api_router.py l.38 (with a profiler config)", _V_OPEN),
    _admin("/stop_profile", _V + "serve/profile/api_router.py l.51 (with a profiler config)", _V_OPEN),
    _admin("/scale_elastic_ep", _V + "serve/elastic_ep/api_router.py l.28 (mounted with every generating model)", _V_OPEN),
    _admin("/fault_tolerance/apply", _V + "serve/fault_tolerance/api_router.py l.37 (--enable-fault-tolerance)", _V_OPEN),
    _admin("/inference/v1/abort_requests", _V + f"scale_out/token_in_token_out/api_router.py l.102 ({_V_SCALE})"),
    _admin("/v1/load_lora_adapter", _V + "serve/lora/api_router.py l.63 (VLLM_ALLOW_RUNTIME_LORA_UPDATING)"),
    _admin("/v1/unload_lora_adapter", _V + "serve/lora/api_router.py l.81 (VLLM_ALLOW_RUNTIME_LORA_UPDATING)"),
    Route("GET", "/v1/models", LIST, _V + "openai/models/api_router.py l.20"),
    Route("GET", "/server_info", LIST, _V + "serve/dev/server_info/api_router.py l.43" + _V_DEV, note=_V_OPEN),
    Route("GET", "/metrics", LIST, _V + "serve/instrumentator/metrics.py l.77", note=_V_OPEN),
)

#: The path prefixes SGLang 0.5.23 serves without the key once --api-key is set
#: (sglang/srt/utils/auth.py l.101-106 decide_request_auth, matched as prefixes: /health_generate
#: too); every other path needs it (l.145-149), the admin routes too (ADMIN_OPTIONAL, l.133-143:
#: the api key when no --admin-api-key is set).
SGLANG_OPEN_PREFIXES = ("/health", "/ready", "/metrics")

_S = "SGLang 0.5.23 sglang/srt/entrypoints/http_server.py"
_S_ADMIN = " (ADMIN_OPTIONAL)"

SGLANG: tuple[Route, ...] = (
    Route("POST", "/generate", GENERATE, _S + " l.928", body=_SGL, note="also PUT"),
    Route("POST", "/v1/completions", GENERATE, _S + " l.1860", body=_COMPLETION),
    Route("POST", "/v1/chat/completions", GENERATE, _S + " l.1870", body=_CHAT),
    Route("POST", "/v1/responses", GENERATE, _S + " l.2066", body=_RESPONSES),
    Route("POST", "/v1/messages", GENERATE, _S + " l.2160", body=_ANTHROPIC),
    Route("POST", "/v1/decisions", GENERATE, _S + " l.2058", body=_CHAT),
    Route("POST", "/v1/systemone", GENERATE, _S + " l.2181", body=_CHAT),
    Route("POST", "/v1/embeddings", GENERATE, _S + " l.1882", body=_EMBED),
    Route("POST", "/v1/classify", GENERATE, _S + " l.1894", body=_EMBED),
    Route("POST", "/v1/score", GENERATE, _S + " l.2050", body=_SCORE),
    Route("POST", "/v1/rerank", GENERATE, _S + " l.2101", body=_RERANK),
    Route("POST", "/v1/audio/transcriptions", GENERATE, _S + " l.1942", body="{}"),
    Route("POST", "/encode", GENERATE, _S + " l.993", body='{"text":"hi"}'),
    Route("POST", "/classify", GENERATE, _S + " l.1006", body='{"text":"hi"}'),
    Route("POST", "/invocations", GENERATE, _S + " l.2202", body=_CHAT, note="SageMaker"),
    Route("POST", "/vertex_generate", GENERATE, _S + " l.2215 (AIP_PREDICT_ROUTE renames it)", body='{"instances":[{"text":"hi"}],"parameters":{"max_new_tokens":1}}'),
    Route("POST", "/api/chat", GENERATE, _S + " l.2131 (Ollama; SGLANG_OLLAMA_CHAT_ROUTE renames it)", body=_OLLAMA),
    Route("POST", "/api/generate", GENERATE, _S + " l.2137 (Ollama; SGLANG_OLLAMA_GENERATE_ROUTE renames it)", body=_OLLAMA),
    Route("POST", "/tokenize", TOKENIZE, _S + " l.1911", body=_TOKENS),
    Route("POST", "/v1/tokenize", TOKENIZE, _S + " l.1906", body=_TOKENS),
    Route("POST", "/detokenize", TOKENIZE, _S + " l.1929", body=_TOKENS),
    Route("POST", "/v1/detokenize", TOKENIZE, _S + " l.1924", body=_TOKENS),
    Route("POST", "/v1/messages/count_tokens", TOKENIZE, _S + " l.2170", body=_ANTHROPIC),
    _admin_get_post("/flush_cache", _S + " l.1025" + _S_ADMIN),
    _admin("/update_weights_from_disk", _S + " l.1300" + _S_ADMIN),
    _admin("/init_weights_update_group", _S + " l.1404" + _S_ADMIN),
    _admin("/update_weights_from_tensor", _S + " l.1436" + _S_ADMIN),
    _admin("/update_weights_from_distributed", _S + " l.1488" + _S_ADMIN),
    _admin("/load_lora_adapter", _S + " l.1652" + _S_ADMIN),
    _admin("/unload_lora_adapter", _S + " l.1676" + _S_ADMIN),
    _admin("/abort_request", _S + " l.1721" + _S_ADMIN, "a POST aborts a request (or all of them)"),
    _admin("/pause_generation", _S + " l.1831" + _S_ADMIN),
    _admin("/continue_generation", _S + " l.1844" + _S_ADMIN),
    _admin("/set_internal_state", _S + " l.897" + _S_ADMIN, "also PUT"),
    _admin_get_post("/start_profile", _S + " l.1221" + _S_ADMIN),
    _admin_get_post("/stop_profile", _S + " l.1232" + _S_ADMIN),
    _admin_get_post("/freeze_gc", _S + " l.1254" + _S_ADMIN),
    _admin_get_post("/release_memory_occupation", _S + " l.1575" + _S_ADMIN),
    _admin_get_post("/resume_memory_occupation", _S + " l.1587" + _S_ADMIN),
    _admin_get_post("/slow_down", _S + " l.1621" + _S_ADMIN),
    _admin_get_post("/configure_logging", _S + " l.1711" + _S_ADMIN),
    _admin("/scale_elastic_ep", "SGLang 0.5.23 sglang/srt/entrypoints/elastic_ep.py l.15 (included at http_server.py l.539)"),
    Route("GET", "/v1/models", LIST, _S + " l.1993"),
    Route("GET", "/model_info", LIST, _S + " l.812"),
    Route("GET", "/server_info", LIST, _S + " l.863", note="the server's arguments"),
    Route("GET", "/v1/loads", LIST, "SGLang 0.5.23 sglang/srt/entrypoints/v1_loads.py l.96"),
    Route("GET", "/metrics", LIST, "SGLang 0.5.23 sglang/srt/utils/auth.py l.101-106 (no key by design; --enable-metrics)"),
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

_BO = "llmops/backend/routes_openai.py"
_BT = "llmops/backend/routes_tgi.py"
_BM = "llmops/backend/routes_ops.py"

TORCH: tuple[Route, ...] = (
    Route("POST", "/v1/chat/completions", GENERATE, _BO + " chat_completions (check_auth)", body=_CHAT),
    Route("POST", "/v1/completions", GENERATE, _BO + " completions (check_auth)", body=_COMPLETION),
    Route("POST", "/generate", GENERATE, _BT + " generate (check_auth)", body=_TGI),
    Route("POST", "/generate_stream", GENERATE, _BT + " generate_stream (check_auth)", body=_TGI),
    Route("POST", "/", GENERATE, _BT + " compat (check_auth)", body=_TGI),
    Route("GET", "/v1/models", LIST, _BO + " models (no key, like TGI)"),
    Route("GET", "/info", LIST, _BT + " info (no key, like TGI)"),
    Route("GET", "/metrics", LIST, _BM + " metrics"),
)

# fmt: on

ROUTES: dict[str, tuple[Route, ...]] = {
    "tgi": TGI,
    "vllm": VLLM,
    "sglang": SGLANG,
    "llamacpp": LLAMACPP,
    "torch": TORCH,
}


def routes_for(engine: str | None) -> tuple[Route, ...]:
    """The routes to probe: the engine's own, or (engine unknown) every engine's, once each.

    For the union a route served by several engines keeps the first row's body with the most
    severe kind of any engine, and names every source; a route one engine acts on even for a
    ``GET`` (SGLang's ``/start_profile``, also vLLM's POST-only one) is probed with ``PUT``.
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
                "PUT" if "PUT" in (old.probe_method, r.probe_method) else old.probe_method,
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
    "SGLANG_KEY_IN_ARGV",
    "SGLANG_OPEN_PREFIXES",
    "TGI_KEY_IN_ARGV",
    "TOKENIZE",
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
