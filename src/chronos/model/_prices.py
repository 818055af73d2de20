"""What a model call cost, in US dollars: from the `genai-prices` package, or prices of yours.

```python
cost = model.genai_prices("openai", "gpt-4o", usage)   # None: unknown model, or no package
mine = model.Prices({"my-finetune": model.Price(input=0.5, output=1.5)})
```

A cost is never guessed: a model nobody priced costs None, not zero, and so does any total
that includes it. `genai-prices` (the `prices` extra) is imported on the first lookup only.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from chronos.model._types import Usage

__all__ = ["Price", "Prices", "Pricing", "genai_prices"]

Pricing = Callable[[str, str, Usage], float | None]
"""`(provider name, model, usage) -> US dollars`, None when the price is not known."""

# chronos provider names -> genai-prices provider ids; any other provider has no known price.
# An OpenAI-compatible server behind `OpenAIProvider` is "openai" too: its models are found
# only when OpenAI lists the same name (which the README tells users to override).
_PROVIDER_IDS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "openai_responses": "openai",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "bedrock": "aws",
    "cohere": "cohere",
}
_PER_MILLION: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """A model's rates in US dollars per million tokens.

    ```python
    model.Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    ```

    Cached and cache-write input tokens cost `input` unless given; reasoning tokens are
    output tokens.
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
        """What `usage` costs at these rates."""
        cached = usage.cached_tokens or 0
        written = usage.cache_write_tokens or 0
        fresh = max((usage.input_tokens or 0) - cached - written, 0)
        dollars = (
            fresh * self.input
            + cached * (self.input if self.cached_input is None else self.cached_input)
            + written * (self.input if self.cache_write is None else self.cache_write)
            + (usage.output_tokens or 0) * self.output
        )
        return dollars / _PER_MILLION


class Prices:
    """Your own prices by model name, and `fallback` (genai-prices) for the others.

    ```python
    runner = graph.Runner(compiled, prices=model.Prices({"my-finetune": model.Price(0.5, 1.5)}))
    ```

    A key is a model name (any provider) or `"provider/model"` (that provider only, which
    wins). `Prices.only(table)` prices the models listed and no others.
    """

    __slots__ = ("_fallback", "_table")

    def __init__(
        self, table: Mapping[str, Price], *, fallback: Pricing | None = None
    ) -> None:
        self._table = dict(table)
        self._fallback = genai_prices if fallback is None else fallback
        for key, price in self._table.items():
            if not isinstance(price, Price):
                raise TypeError(f"the price of {key!r} must be a model.Price, "
                                f"not {type(price).__name__}")

    @classmethod
    def only(cls, table: Mapping[str, Price]) -> Prices:
        """These prices and no others: an unlisted model costs None."""
        return cls(table, fallback=_unknown)

    def __call__(self, provider: str, model: str, usage: Usage) -> float | None:
        price = self._table.get(f"{provider}/{model}") or self._table.get(model)
        if price is not None:
            return price.cost(usage)
        return self._fallback(provider, model, usage)


def _unknown(provider: str, model: str, usage: Usage) -> float | None:
    return None


def genai_prices(provider: str, model: str, usage: Usage) -> float | None:
    """The cost `genai-prices` gives for this provider's model; None if it does not know it.

    None too when the package is not installed (`pip install 'chronos[prices]'`).
    """
    provider_id = _PROVIDER_IDS.get(provider)
    if provider_id is None or not model:
        return None
    try:
        import genai_prices as prices  # imported on first use: the extra is optional
    except ImportError:
        return None
    counts: dict[str, int] = {
        "input_tokens": usage.input_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
    }
    if usage.cached_tokens:
        counts["cache_read_tokens"] = usage.cached_tokens
    if usage.cache_write_tokens:
        counts["cache_write_tokens"] = usage.cache_write_tokens
    with contextlib.suppress(LookupError, ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unpriced usage key is its problem, not the user's
        found = prices.calc_price(prices.Usage(**counts), model, provider_id=provider_id)
        return float(found.total_price)
    return None
