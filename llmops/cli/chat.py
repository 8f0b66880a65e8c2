"""`llmops chat`: talk to an endpoint with streaming replies (OpenAI chat API, or TGI)."""

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from llmops.cli import deps, output
from llmops.cli.params import ApiKeyOpt, ModelNameOpt

if TYPE_CHECKING:
    import asyncio

    from llmops.client.chat import ChatSession

HELP_LINE = "/reset clears the conversation, /exit (or Ctrl-D) quits."


def chat(
    target: Annotated[
        str, typer.Argument(metavar="NAME|URL", help="A deployment name or a base URL.")
    ],
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="Send one message, print the reply, and exit."),
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", metavar="TEXT", help="A system prompt.")
    ] = None,
    api_key: ApiKeyOpt = None,
    model: ModelNameOpt = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Longest reply, in tokens.")
    ] = 512,
    temperature: Annotated[
        float | None, typer.Option("--temperature", min=0.0, help="Sampling temperature.")
    ] = None,
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=0.1, max=86400, help="Seconds to wait for one reply.")
    ] = 300.0,
) -> None:
    """Chat with an endpoint: streamed replies, history, /reset and /exit (or one shot with -m)."""
    import asyncio

    from llmops.client.chat import ChatSession
    from llmops.client.stream import detect
    from llmops.client.targets import resolve_target
    from llmops.client.transport import HttpxTransport

    _check_numbers(temperature, timeout_s)
    tgt = resolve_target(target, api_key, deps.deployment_resolver())
    loop = asyncio.new_event_loop()
    transport = HttpxTransport(tgt.url, tgt.api_key, max_connections=1, timeout_s=timeout_s)
    try:
        endpoint = loop.run_until_complete(detect(transport, tgt.url, tgt.api_key, model))
        session = ChatSession(
            endpoint, transport, system=system, max_tokens=max_tokens, temperature=temperature
        )
        if message is not None:
            _turn(loop, session, message)
        else:
            output.info(f"{tgt.url}: {endpoint.protocol} API, model {endpoint.model}. {HELP_LINE}")
            _interactive(loop, session)
    finally:
        loop.run_until_complete(transport.aclose())
        loop.close()


def _check_numbers(temperature: float | None, timeout_s: float) -> None:
    import math

    from llmops.errors import UsageError

    if temperature is not None and not (math.isfinite(temperature) and temperature <= 100):
        raise UsageError(f"--temperature {temperature} is not a usable temperature", "e.g. 0.7")
    if not math.isfinite(timeout_s):
        raise UsageError(f"--timeout {timeout_s} is not a number of seconds", "e.g. --timeout 60")


def _turn(loop: "asyncio.AbstractEventLoop", session: "ChatSession", text: str) -> None:
    """One user turn: stream the reply to stdout as it arrives."""

    wrote = False

    def write(piece: str) -> None:
        nonlocal wrote
        wrote = True
        sys.stdout.write(piece)
        sys.stdout.flush()

    task = loop.create_task(session.send(text, write))
    try:
        loop.run_until_complete(task)
    except KeyboardInterrupt:
        task.cancel()
        # swallow the cancellation itself, or whatever the task raised meanwhile
        with contextlib.suppress(BaseException):
            loop.run_until_complete(task)
        raise
    finally:
        if wrote:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _interactive(loop: "asyncio.AbstractEventLoop", session: "ChatSession") -> None:
    """Read turns with plain ``input()`` until /exit or end of input; errors do not end it."""
    from llmops.cli import report_error
    from llmops.errors import EndpointError

    prompt = "> " if sys.stdin.isatty() else ""
    while True:
        try:
            line = input(prompt)
        except (EOFError, KeyboardInterrupt):
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            session.reset()
            output.info("conversation cleared")
            continue
        if text.startswith("/") and " " not in text:
            output.warn(f"unknown command {text}; {HELP_LINE}")
            continue
        try:
            _turn(loop, session, line)
        except EndpointError as err:
            report_error(err)
        except KeyboardInterrupt:
            output.info("(reply interrupted)")


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
