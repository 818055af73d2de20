"""`model.Price`, `model.Prices` and `model.genai_prices`: a call's cost, never a guess."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chronos import model

USAGE = model.Usage(input_tokens=1_000, output_tokens=200, cached_tokens=300,
                    cache_write_tokens=100, reasoning_tokens=50)


def test_a_price_charges_each_part_at_its_rate() -> None:
    price = model.Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    assert price.cost(USAGE) == pytest.approx(
        (600 * 3.0 + 300 * 0.3 + 100 * 3.75 + 200 * 15.0) / 1e6)
    # Without cache rates, cached tokens cost what fresh input costs.
    assert model.Price(input=1.0, output=2.0).cost(USAGE) == pytest.approx(
        (1_000 * 1.0 + 200 * 2.0) / 1e6)


def test_genai_prices_knows_the_vendors_models_and_not_the_others() -> None:
    openai = model.genai_prices("openai", "gpt-4o", USAGE)
    assert openai is not None
    assert openai > 0
    assert model.genai_prices("anthropic", "claude-sonnet-4-5", USAGE) is not None
    assert model.genai_prices("openai", "no-such-model-anywhere", USAGE) is None
    assert model.genai_prices("llamacpp", "gpt-4o", USAGE) is None  # local: not OpenAI's price
    assert model.genai_prices("openai", "", USAGE) is None


def test_nothing_imports_genai_prices_until_a_cost_is_asked_and_without_it_there_is_none() -> (
    None
):
    script = (
        "import sys\n"
        "from chronos import graph, model, server, store, stream\n"
        "assert 'genai_prices' not in sys.modules\n"
        "sys.modules['genai_prices'] = None  # as if not installed\n"
        "assert model.genai_prices('openai', 'gpt-4o', model.Usage(input_tokens=5)) is None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.stdout.strip() == "ok", done.stderr


def test_usages_add_up_keeping_unreported_counts_unreported() -> None:
    a = model.Usage(input_tokens=10, output_tokens=5, raw={"x": 1})
    b = model.Usage(input_tokens=1, reasoning_tokens=2)
    assert a + b == model.Usage(input_tokens=11, output_tokens=5, reasoning_tokens=2)
    assert (a + b).cached_tokens is None
    assert model.Usage.from_counts((a + b).counts()) == a + b
