"""The ``llm`` proposer: a chat model proposes each change as edit blocks.

Two clients sit behind one small interface (``ChatClient.complete``): the
official ``openai`` SDK for any OpenAI-compatible endpoint (OpenAI, Ollama,
vLLM, llama.cpp's server, OpenRouter, Groq, …) and the official
``anthropic`` SDK for Claude models. The SDKs' own retries are off
(``max_retries=0``): retries happen here, with exponential backoff, so they
are the same for both and testable.

Configuration (``[proposer]`` in ratchet.toml), and what overrides it:

- ``model``: ``--model`` > ``RATCHET_MODEL`` > ``[proposer] model``.
- ``provider``: ``auto`` (default) means ``anthropic`` when the model name
  starts with ``claude``, else ``openai``.
- ``base_url``: ``OPENAI_BASE_URL`` (or ``ANTHROPIC_BASE_URL``) > ``[proposer]
  base_url`` > the provider's public API.
- the key: the variable named by ``[proposer] api_key_env`` when set (an
  explicit choice, so a key is never sent to an endpoint it was not meant
  for), else ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``. A custom
  ``base_url`` needs no key (local servers ignore it). The key's variable
  must be one the experiments' environment scrub removes, so generated code
  never sees it.

Failures: 429, 5xx, timeouts and refused connections are retried
``[proposer] retries`` times, waiting ``RATCHET_LLM_BACKOFF`` (default 1 s)
× 2^attempt, at most 60 s, or what a ``Retry-After`` header asks within that
limit; then ``ProposalError`` (the loop records a ``rejected`` row and stops
the run after ``max_failures`` in a row). Other HTTP errors are not retried.
An answer that cannot be applied gets one repair round-trip with the exact
reason; if the second answer fails too, ``ProposalUnusable``.

Usage and cost: every answer's token counts (estimated from characters
when a server reports none) are priced with ``[proposer] prices`` (model →
USD per million input and output tokens; the longest model-name prefix
wins) and recorded on the experiment. ``max_cost_usd`` and
``max_total_tokens`` count everything recorded under the run's tag, so a
resumed run does not get a fresh allowance; once reached, the run ends
cleanly (``ProposalsExhausted``) before the next request. The answer that
crosses a cap is still used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..errors import ConfigError, ProposalError, ProposalsExhausted, ProposalUnusable
from ..execute.environment import scrub, user_environ
from ..models import Context, Proposal, Usage
from ..study import Study
from .edits import EditError, parse_answer
from .prompt import build_prompt, estimate_tokens, repair_message

__all__ = [
    "Reply",
    "Transient",
    "ChatClient",
    "LLMSettings",
    "LLMProposer",
    "resolve_settings",
    "make_client",
    "make_llm_proposer",
    "check_endpoint",
]

DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
URL_VARIABLES = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
MAX_DELAY = 60.0
PING_TIMEOUT = 10.0
_NO_KEY = "no-key"  # sent to endpoints that need none: the SDKs refuse an empty key


@dataclass(frozen=True)
class Reply:
    """One answer: its text, its token counts, and whether max_tokens cut it."""

    text: str
    input_tokens: int
    output_tokens: int
    truncated: bool = False


class Transient(Exception):
    """A failure worth retrying (429, 5xx, timeout, refused connection)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class ChatClient(Protocol):
    """One chat endpoint. ``complete`` raises ``Transient`` or ``ProposalError``."""

    def complete(self, system: str, messages: list[dict[str, str]]) -> Reply: ...

    def models(self) -> list[str]: ...


@dataclass(frozen=True)
class LLMSettings:
    """Everything the proposer needs, resolved once from flags, environment and the study."""

    provider: str
    model: str
    base_url: str
    key_variable: str  # where the key came from (shown, never the key itself)
    api_key: str = field(repr=False)
    temperature: float = 0.7
    max_tokens: int = 4096
    prompt_tokens: int = 32000
    timeout: float = 120.0
    retries: int = 4
    backoff: float = 1.0
    max_cost_usd: float | None = None
    max_total_tokens: int | None = None
    price: tuple[float, float] | None = None  # USD per million input, output tokens

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        if self.price is None:
            return 0.0
        return (input_tokens * self.price[0] + output_tokens * self.price[1]) / 1_000_000


# --- settings -------------------------------------------------------------------------


def resolve_settings(
    study: Study, model: str | None = None, environ: Mapping[str, str] | None = None
) -> LLMSettings:
    """Flags > environment > ratchet.toml; every problem is one ``ConfigError`` sentence."""
    env = user_environ() if environ is None else environ
    spec = study.proposer
    name = model or env.get("RATCHET_MODEL") or spec.model
    if not name:
        raise ConfigError(
            "the llm proposer needs a model — pass --model NAME, set RATCHET_MODEL,"
            ' or set [proposer] model = "NAME" in ratchet.toml'
        )
    provider = spec.provider
    if provider == "auto":
        provider = "anthropic" if name.lower().startswith("claude") else "openai"
    base_url = env.get(URL_VARIABLES[provider]) or spec.base_url
    variable = spec.api_key_env or KEY_VARIABLES[provider]
    key = env.get(variable, "")
    if not key and spec.api_key_env:
        raise ConfigError(
            f"[proposer] api_key_env names {variable}, which is not set — export {variable}"
            " or remove api_key_env from ratchet.toml"
        )
    if not key and not base_url:
        raise ConfigError(
            f"No key found for model {name} — set {variable}, point {URL_VARIABLES[provider]}"
            " at a local server, or pass --proposer mutate"
        )
    _check_key_is_scrubbed(study, variable)
    return LLMSettings(
        provider=provider,
        model=name,
        base_url=(base_url or DEFAULT_URLS[provider]).rstrip("/"),
        key_variable=variable if key else "none",
        api_key=key or _NO_KEY,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        prompt_tokens=spec.prompt_tokens,
        timeout=spec.timeout,
        retries=spec.retries,
        backoff=_backoff(env),
        max_cost_usd=spec.max_cost_usd,
        max_total_tokens=spec.max_total_tokens,
        price=_price(study, name),
    )


def _check_key_is_scrubbed(study: Study, variable: str) -> None:
    """The proposer's key must never reach the code it writes."""
    if scrub({variable: "x"}):
        raise ConfigError(
            f"[proposer] api_key_env = {variable!r} would reach the experiments' environment"
            " (only names like *_API_KEY, *_TOKEN, *SECRET*, *PASSWORD* are removed)"
            f" — rename it, e.g. {variable}_API_KEY"
        )
    if scrub({variable: "x"}, study.run.env_allow):
        raise ConfigError(
            f"[run] env_allow lets {variable}, the llm proposer's key, reach the"
            " experiments — remove it from env_allow or give the proposer another"
            " variable with [proposer] api_key_env"
        )


def _price(study: Study, model: str) -> tuple[float, float] | None:
    prices = study.proposer.prices
    match = prices.get(model)
    if match is None:
        prefixes = [name for name in prices if model.startswith(name)]
        match = prices[max(prefixes, key=len)] if prefixes else None
    if match is None and study.proposer.max_cost_usd is not None:
        raise ConfigError(
            f"[proposer] max_cost_usd needs the price of model {model} — add it to"
            f' [proposer] prices, e.g. prices = {{ "{model}" = [2.5, 10.0] }}'
            " (USD per million input and output tokens)"
        )
    return match


def _backoff(env: Mapping[str, str]) -> float:
    raw = env.get("RATCHET_LLM_BACKOFF", "1")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_DELAY:
        raise ConfigError(f"RATCHET_LLM_BACKOFF must be seconds between 0 and 60, got {raw!r}")
    return value


# --- clients ----------------------------------------------------------------------------


def make_client(settings: LLMSettings) -> ChatClient:
    """The SDK client for ``settings.provider`` (imported only when used)."""
    if settings.provider == "anthropic":
        return AnthropicClient(settings)
    return OpenAIClient(settings)


class OpenAIClient:
    """Chat completions on any OpenAI-compatible endpoint."""

    def __init__(self, settings: LLMSettings) -> None:
        import openai

        self.sdk, self.settings = openai, settings
        self.client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key,
            timeout=settings.timeout,
            max_retries=0,
        )
        self.options: dict[str, Any] = {
            "max_tokens": settings.max_tokens,
            "temperature": settings.temperature,
        }

    def complete(self, system: str, messages: list[dict[str, str]]) -> Reply:
        chat = [{"role": "system", "content": system}, *messages]
        try:
            resp = self.client.chat.completions.create(
                model=self.settings.model, messages=chat, **self.options
            )
        except self.sdk.BadRequestError as exc:
            if not self._adapt(str(exc.message)):
                raise _classify(exc, self.sdk, self.settings) from None
            return self.complete(system, messages)
        except self.sdk.OpenAIError as exc:
            raise _classify(exc, self.sdk, self.settings) from None
        choice = resp.choices[0] if resp.choices else None
        text = (choice.message.content or "") if choice else ""
        usage = resp.usage
        return Reply(
            text=text,
            input_tokens=usage.prompt_tokens if usage else _estimate(system, messages),
            output_tokens=usage.completion_tokens if usage else estimate_tokens(text),
            truncated=bool(choice and choice.finish_reason == "length"),
        )

    def _adapt(self, message: str) -> bool:
        """Newer OpenAI models refuse ``max_tokens`` or ``temperature``: switch once."""
        if "max_completion_tokens" in message and "max_tokens" in self.options:
            self.options["max_completion_tokens"] = self.options.pop("max_tokens")
            return True
        if "temperature" in message and "temperature" in self.options:
            del self.options["temperature"]
            return True
        return False

    def models(self) -> list[str]:
        try:
            client = self.client.with_options(timeout=min(self.settings.timeout, PING_TIMEOUT))
            return [m.id for m in client.models.list().data]
        except self.sdk.OpenAIError as exc:
            raise _unreachable(_classify(exc, self.sdk, self.settings), self.settings) from None


class AnthropicClient:
    """Claude models through Anthropic's Messages API."""

    def __init__(self, settings: LLMSettings) -> None:
        import anthropic

        self.sdk, self.settings = anthropic, settings
        self.client = anthropic.Anthropic(
            base_url=settings.base_url,
            api_key=settings.api_key,
            timeout=settings.timeout,
            max_retries=0,
        )
        # Sent as an extra field: recent SDKs dropped the argument, and recent models
        # refuse it, in which case it is left out from then on.
        self.extra: dict[str, Any] = {"temperature": settings.temperature}

    def complete(self, system: str, messages: list[dict[str, str]]) -> Reply:
        try:
            resp = self.client.messages.create(
                model=self.settings.model,
                max_tokens=self.settings.max_tokens,
                system=system,
                messages=messages,  # type: ignore[arg-type]
                extra_body=self.extra,
            )
        except self.sdk.BadRequestError as exc:
            if "temperature" not in str(exc.message) or not self.extra.pop("temperature", None):
                raise _classify(exc, self.sdk, self.settings) from None
            return self.complete(system, messages)
        except self.sdk.AnthropicError as exc:
            raise _classify(exc, self.sdk, self.settings) from None
        text = "".join(b.text for b in resp.content if getattr(b, "type", "") == "text")
        return Reply(
            text=text,
            input_tokens=resp.usage.input_tokens,
            output_tokens=resp.usage.output_tokens,
            truncated=resp.stop_reason == "max_tokens",
        )

    def models(self) -> list[str]:
        try:
            client = self.client.with_options(timeout=min(self.settings.timeout, PING_TIMEOUT))
            return [m.id for m in client.models.list().data]
        except self.sdk.AnthropicError as exc:
            raise _unreachable(_classify(exc, self.sdk, self.settings), self.settings) from None


def _classify(exc: Exception, sdk: Any, settings: LLMSettings) -> Exception:
    """An SDK exception → ``Transient`` (retry) or ``ProposalError`` (give up now)."""
    if isinstance(exc, sdk.APITimeoutError):
        return Transient(f"no answer within {settings.timeout:g} s ([proposer] timeout)")
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return Transient(f"cannot connect to {settings.base_url} ({cause or exc})")
    if isinstance(exc, sdk.APIStatusError):
        code = exc.status_code
        text = f"HTTP {code}: {_short(_body_message(exc), settings)}"
        if code in (408, 409, 429) or code >= 500:
            return Transient(text, _retry_after(exc.response.headers.get("retry-after")))
        return ProposalError(f"{settings.base_url} refused the request ({text}){_hint(code)}")
    return ProposalError(f"the {settings.provider} client failed: {_short(str(exc), settings)}")


def _body_message(exc: Any) -> str:
    """The server's own error message when the body has one, else the SDK's."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return str(exc.message)


def _hint(code: int) -> str:
    if code in (401, 403):
        return " — check the key (ratchet doctor shows which variable it comes from)"
    if code == 404:
        return " — check the model name (--model) and the base URL"
    return ""


def _short(text: str, settings: LLMSettings) -> str:
    """One line, bounded, and never the key."""
    if settings.api_key and settings.api_key != _NO_KEY:
        text = text.replace(settings.api_key, "***")
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _estimate(system: str, messages: list[dict[str, str]]) -> int:
    return estimate_tokens(system) + sum(estimate_tokens(m["content"]) for m in messages)


def _unreachable(exc: Exception, settings: LLMSettings) -> ProposalError:
    where = URL_VARIABLES[settings.provider]
    return ProposalError(
        f"{settings.provider} endpoint {settings.base_url} does not answer ({exc})"
        f" — start the server or fix [proposer] base_url / {where}"
    )


# --- the proposer -----------------------------------------------------------------------


class LLMProposer:
    """Asks a chat model for one change per experiment; one repair round per answer."""

    name = "llm"

    def __init__(
        self,
        settings: LLMSettings,
        client: ChatClient,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.client = client
        self.sleep = sleep

    def propose(self, context: Context) -> Proposal:
        """Prompt, answer, parse; on an unusable answer, one repair round with the reason."""
        spent = _spent(context)
        self._check_caps(spent, context.tag)
        prompt = build_prompt(context, self.settings.prompt_tokens)
        messages = [{"role": "user", "content": prompt.user}]
        reply = self._ask(prompt.system, messages, Usage())
        usage = self._usage(Usage(), reply)
        try:
            return self._proposal(reply, context, usage, repaired=False)
        except EditError as first:
            reason = _reason(first, reply, self.settings)
        if self._over_cap(_add(spent, usage)):
            raise ProposalUnusable(f"the answer could not be applied: {reason}", usage)
        messages += [
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": repair_message(reason)},
        ]
        second = self._ask(prompt.system, messages, usage)
        usage = self._usage(usage, second)
        try:
            return self._proposal(second, context, usage, repaired=True)
        except EditError as exc:
            raise ProposalUnusable(
                "the answer could not be applied, even after a repair round:"
                f" {_reason(exc, second, self.settings)}",
                usage,
            ) from None

    def _proposal(self, reply: Reply, context: Context, usage: Usage, repaired: bool) -> Proposal:
        if not reply.text.strip():
            raise EditError("the answer was empty")
        parsed = parse_answer(reply.text, context.files)
        return Proposal(
            description=parsed.description,
            edits=parsed.edits,
            rationale=parsed.rationale,
            usage=usage,
            meta={
                "proposer": "llm",
                "model": self.settings.model,
                "format": "+".join(parsed.formats),
                "repaired": repaired,
            },
        )

    def _ask(self, system: str, messages: list[dict[str, str]], usage: Usage) -> Reply:
        """One answer, retrying transient failures with backoff; ``ProposalError`` at the end."""
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            try:
                return self.client.complete(system, messages)
            except Transient as exc:
                if attempt + 1 == attempts:
                    tries = f" after {attempts} attempts" if attempts > 1 else ""
                    raise ProposalError(
                        f"the {self.settings.provider} request to {self.settings.base_url}"
                        f" failed{tries}: {exc}",
                        usage,
                    ) from None
                self.sleep(self._delay(attempt, exc.retry_after))
            except ProposalError as exc:
                raise ProposalError(str(exc), usage) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = self.settings.backoff * 2**attempt
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, MAX_DELAY)

    def _usage(self, usage: Usage, reply: Reply) -> Usage:
        cost = self.settings.cost(reply.input_tokens, reply.output_tokens)
        return _add(usage, Usage(reply.input_tokens, reply.output_tokens, cost))

    def _over_cap(self, spent: Usage) -> str:
        """Which cap ``spent`` has reached, as a phrase, or "" when none."""
        s = self.settings
        if s.max_cost_usd is not None and spent.cost_usd >= s.max_cost_usd:
            return (
                f"the cost cap is reached: ${spent.cost_usd:.4f} spent of"
                f" [proposer] max_cost_usd = ${s.max_cost_usd:g}"
            )
        tokens = spent.input_tokens + spent.output_tokens
        if s.max_total_tokens is not None and tokens >= s.max_total_tokens:
            return (
                f"the token cap is reached: {tokens:,} tokens spent of"
                f" [proposer] max_total_tokens = {s.max_total_tokens:,}"
            )
        return ""

    def _check_caps(self, spent: Usage, tag: str) -> None:
        reached = self._over_cap(spent)
        if reached:
            raise ProposalsExhausted(
                f"{reached} on tag {tag} — raise it in ratchet.toml or start a new --tag"
            )


def _spent(context: Context) -> Usage:
    """Everything recorded under this tag: caps survive a restart."""
    total = Usage()
    for e in context.history:
        if e.tag == context.tag:
            total = _add(total, e.usage)
    return total


def _add(a: Usage, b: Usage) -> Usage:
    return replace(
        a,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost_usd=a.cost_usd + b.cost_usd,
    )


def _reason(exc: EditError, reply: Reply, settings: LLMSettings) -> str:
    if reply.truncated:
        return f"{exc} (the answer was cut at [proposer] max_tokens = {settings.max_tokens})"
    return str(exc)


# --- entry points for make_proposer and doctor ------------------------------------------


def make_llm_proposer(study: Study, model: str | None = None) -> LLMProposer:
    """The configured proposer; configuration errors surface here, before the run starts."""
    settings = resolve_settings(study, model)
    return LLMProposer(settings, make_client(settings))


def check_endpoint(study: Study, model: str | None = None) -> str:
    """One line for ``ratchet doctor``: does the endpoint answer? Never shows the key."""
    settings = resolve_settings(study, model)
    listed = make_client(settings).models()
    note = "" if not listed or settings.model in listed else f"; it does not list {settings.model}"
    return (
        f"llm: {settings.provider} model {settings.model} at {settings.base_url} answers"
        f" (key from {settings.key_variable}){note}"
    )
