"""The exposure audit's route tables: which routes each engine serves and how to probe them.

One ``Route`` per row: the method the route serves, its kind (generate | admin | tokenize |
list), the probe to send without credentials and the minimal body; ``llmops.plan.audit`` judges
the answers (its docstring says how each kind is probed and what an answer means).

Each row names where the route is declared in the pinned engine's source (TGI 3.3.7, vLLM
0.33.0, SGLang 0.5.23, llama.cpp b11434; their key rules are recorded in
``tests/fixtures/engines/*.json`` under ``http_auth``) or in ``llmops/backend/routes_*.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENERATE = "generate"
TOKENIZE = "tokenize"
ADMIN = "admin"
LIST = "list"
KINDS = (GENERATE, ADMIN, TOKENIZE, LIST)
#: An open route of these kinds exposes the deployment.
REFUSING_KINDS = (GENERATE, ADMIN)

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
