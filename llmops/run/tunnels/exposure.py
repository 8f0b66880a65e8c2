"""The exposure check: audit the local endpoint before a tunnel starts, and again through its
public URL once it is up; stop a tunnel that fails either.

Before a tunnel starts, :func:`open_tunnel` audits the local endpoint (``llmops.run.audit``:
every route the engine serves that generates, tokenizes, lists slots/props or administers,
asked without a key); once it is up it checks that ``/v1/models`` answers with the key through
the public URL (:func:`check_exposure`) and runs the same audit there. Any generating or
administrative route that answers without the key refuses the tunnel, and a started one is
stopped again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from llmops.errors import TunnelStartError, TunnelUnprotected, TunnelUnreachable
from llmops.net import http_status
from llmops.plan import audit as pa
from llmops.plan import tunnel as tp
from llmops.run.tunnels.manager import TunnelManager
from llmops.run.tunnels.records import TunnelRecord, TunnelSpec

#: How long one probe through a public URL waits: a tunnel's first answers can be slow.
PROBE_TIMEOUT_S = 10.0


def check_exposure(
    url: str,
    api_key: str | None,
    *,
    allow_public_no_auth: bool,
    timeout_s: float = 60.0,
    poll_s: float = 0.5,
) -> tp.ExposureCheck:
    """Probe ``/v1/models`` through the public URL, with and without the key.

    A fresh quick tunnel "may take some time to be reachable", so the request with the key
    (or, with no key, the keyless one) is retried until it gets an answer or ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    target = url.rstrip("/") + "/v1/models"
    while True:
        with_key = http_status(target, api_key, PROBE_TIMEOUT_S) if api_key else None
        without = http_status(target, None, PROBE_TIMEOUT_S)
        check = tp.judge_exposure(
            url,
            with_key_status=with_key,
            without_key_status=without,
            had_key=bool(api_key),
            allow_public_no_auth=allow_public_no_auth,
        )
        if check.reachable or time.monotonic() > deadline:
            return check
        time.sleep(poll_s)


@dataclass(frozen=True)
class OpenedTunnel:
    record: TunnelRecord
    check: tp.ExposureCheck
    local_audit: pa.Audit | None = None  # the audit through 127.0.0.1:PORT, before starting
    public_audit: pa.Audit | None = None  # the same audit through the public URL


def _what(spec: TunnelSpec) -> str:
    return f"deployment {spec.deployment}" if spec.deployment else f"port {spec.port}"


def _open_hint(audit: pa.Audit) -> str:
    hint = (
        "start it with an API key (`llmops up` sets one by default) and keep every route "
        "behind it, or pass `--allow-public-no-auth` if it really should be public"
    )
    if audit.engine == "vllm":
        hint = (
            "vLLM's --api-key guards only "
            + ", ".join(pa.VLLM_GUARDED_PREFIXES)
            + " (/invocations, /tokenize and more answer without it): put an authenticating "
            "reverse proxy in front, "
            "or serve the model with llama.cpp or llmops' torch backend; "
            "`--allow-public-no-auth` overrides"
        )
    return hint + f" (`llmops audit {audit.url}` shows every route)"


def audit_local(
    spec: TunnelSpec,
    api_key: str | None,
    *,
    engine: str | None,
    allow_public_no_auth: bool,
    timeout_s: float = 10.0,
) -> pa.Audit:
    """The audit through the local endpoint, before anything starts; raises to refuse."""
    from llmops.run import audit as ra

    local = f"http://127.0.0.1:{spec.port}"
    what = _what(spec)
    pre = ra.audit(local, engine, timeout_s=timeout_s)
    if pre.verdict == "unreachable":
        raise TunnelUnreachable(
            f"{what} does not answer locally: {pre.detail}",
            "check it with `llmops ps` (and the key in its secrets.env)",
        )
    if api_key:
        got = http_status(local + "/v1/models", api_key, timeout_s)
        if got != 200:
            raise TunnelUnreachable(
                f"{what} does not answer locally with its key: GET {local}/v1/models "
                f"answered {got if got is not None else 'nothing'}",
                "check it with `llmops ps` (and the key in its secrets.env)",
            )
    if allow_public_no_auth:
        return pre
    if pre.verdict in ("exposed", "unprotected"):
        raise TunnelUnprotected(
            f"refusing to expose {what}: it answers without an API key ({pre.detail})",
            _open_hint(pre),
        )
    if pre.verdict == "inconclusive":
        raise TunnelUnreachable(
            f"refusing to expose {what} before it is audited: {pre.detail}",
            "wait until `llmops ps` shows it ready, then try again",
        )
    return pre


def open_tunnel(
    manager: TunnelManager,
    spec: TunnelSpec,
    api_key: str | None,
    *,
    allow_public_no_auth: bool = False,
    verify_timeout_s: float = 60.0,
    on_progress: Callable[[str], None] = lambda _m: None,
    engine: str | None = None,
) -> OpenedTunnel:
    """Audit locally, start the tunnel, audit again through it; stop it if that fails.

    The audit (``llmops.plan.audit``) asks every route ``engine`` serves (every known engine's
    when None) without credentials; any generating or administrative route that answers is
    "exposed". Through the public URL the key must also get 200 from ``/v1/models``.

    Raises:
        TunnelUnprotected: a route answers without a key (and no override was given).
        TunnelUnreachable: nothing answers locally, or not through the public URL, or the
            audit could not tell (the engine is still loading).
    """
    from llmops.run import audit as ra

    what = _what(spec)
    probe_timeout = max(1.0, min(10.0, verify_timeout_s))
    on_progress(f"auditing {what} at http://127.0.0.1:{spec.port} (requests without a key)")
    pre = audit_local(
        spec,
        api_key,
        engine=engine,
        allow_public_no_auth=allow_public_no_auth,
        timeout_s=probe_timeout,
    )
    on_progress(f"starting {spec.via} tunnel for {what}")
    rec = manager.start(spec)
    if rec.url is None:  # pragma: no cover - every starter returns a URL or raises
        manager.stop(spec.name)
        raise TunnelStartError(f"{spec.via} reported no URL", None)
    on_progress(f"auditing {rec.url} through the tunnel")
    try:
        check = check_exposure(
            rec.url, api_key, allow_public_no_auth=allow_public_no_auth, timeout_s=verify_timeout_s
        )
        public = ra.audit(rec.url, engine, timeout_s=probe_timeout) if check.reachable else None
    except BaseException:
        manager.stop(spec.name, 3.0)
        raise
    kept = _keep_or_stop(manager, spec, check, public, allow_public_no_auth=allow_public_no_auth)
    return OpenedTunnel(rec, _final_check(rec.url, check, kept), pre, kept)


def _keep_or_stop(
    manager: TunnelManager,
    spec: TunnelSpec,
    check: tp.ExposureCheck,
    public: pa.Audit | None,
    *,
    allow_public_no_auth: bool,
) -> pa.Audit:
    """The public audit, when it says the tunnel may stay up; else stop it and raise."""
    what = _what(spec)
    if public is None or public.verdict == "unreachable":
        manager.stop(spec.name, 3.0)
        detail = public.detail if public is not None else check.detail
        raise TunnelUnreachable(
            f"the {spec.via} tunnel for {what} started but {detail}; it was stopped",
            "try again (a new quick tunnel can take a minute to resolve), or use another `--via`",
        )
    if not public.ok and not allow_public_no_auth:
        manager.stop(spec.name, 3.0)
        if public.verdict == "inconclusive":
            raise TunnelUnreachable(
                f"refusing to keep the tunnel for {what}: {public.detail}; it was stopped",
                "try again once it answers; `llmops audit URL` shows every route",
            )
        raise TunnelUnprotected(
            f"refusing to keep the tunnel for {what}: {public.detail}; it was stopped",
            _open_hint(public),
        )
    return public


def _final_check(url: str, check: tp.ExposureCheck, public: pa.Audit) -> tp.ExposureCheck:
    """The kept tunnel's row: the check's keyed answer, the public audit's keyless one."""
    models = next((p for p in public.probes if p.label == "GET /v1/models"), None)
    without = models.status if models is not None else check.without_key_status
    head = f"/v1/models: {check.with_key_status or '-'} with the key, {without} without"
    verdict = "ok" if public.ok else "unprotected-allowed"
    return tp.ExposureCheck(
        url,
        check.with_key_status,
        without,
        True,
        public.ok,
        verdict,
        f"{head}; {public.detail}" if public.ok else public.detail,
    )
