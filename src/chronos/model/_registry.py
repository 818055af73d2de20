"""Providers by name, for configuration files, environment variables and the `chronos` CLI.

Vendor modules are imported only when their provider is asked for, so naming one never loads
the others (or their optional extras), and a vendor module added later is found as soon as it
exists: add its line to `_PROVIDERS`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from collections.abc import Mapping
from typing import Any, Final

from chronos.errors import ConfigurationError
from chronos.model._provider import Provider

__all__ = ["available_providers", "provider_from_name", "provider_name_from_environment"]

# name -> (module, class). The order is the order of preference when an API key in the
# environment picks the provider.
_PROVIDERS: Final[Mapping[str, tuple[str, str]]] = {
    "openai": ("chronos.model.openai", "OpenAIProvider"),
    "openai_responses": ("chronos.model.openai_responses", "OpenAIResponsesProvider"),
    "azure_openai": ("chronos.model.openai", "AzureOpenAIProvider"),
    "anthropic": ("chronos.model.anthropic", "AnthropicProvider"),
    "gemini": ("chronos.model.gemini", "GeminiProvider"),
    "cohere": ("chronos.model.cohere", "CohereProvider"),
    "bedrock": ("chronos.model.bedrock", "BedrockProvider"),
    "ollama": ("chronos.model.ollama", "OllamaProvider"),
    "llamacpp": ("chronos.model.llamacpp", "LlamaCppProvider"),
}
_ALIASES: Final[Mapping[str, str]] = {
    "local": "llamacpp",
    "llama.cpp": "llamacpp",
    "llama_cpp": "llamacpp",
    "azure": "azure_openai",
    "claude": "anthropic",
    "google": "gemini",
}

# Environment variables whose presence means "use this provider" when nothing else says so.
_SIGNALS: Final[Mapping[str, tuple[str, ...]]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
    "ollama": ("OLLAMA_HOST",),
}
DEFAULT_PROVIDER: Final = "llamacpp"


def _module_exists(module: str) -> bool:
    # find_spec of a submodule imports its parent (chronos.model, loaded already), not it.
    return importlib.util.find_spec(module) is not None


def available_providers() -> list[str]:
    """Names of the providers this installation has, e.g. `["openai", "llamacpp"]`.

    A provider is listed when its module exists; it may still need an extra or a key.
    """
    return [name for name, (module, _) in _PROVIDERS.items() if _module_exists(module)]


def provider_from_name(name: str, **options: Any) -> Provider:
    """Create a provider from its name and keyword options.

    ```python
    provider = model.provider_from_name("openai", model="gpt-4o-mini")
    provider = model.provider_from_name("llamacpp")          # the local default model
    ```

    Options set to `None` are left out, so values from a CLI or a config file can be passed
    straight through. Names are those of `Provider.name` ("openai", "azure_openai",
    "anthropic", "gemini", "ollama", "cohere", "bedrock", "llamacpp", ...); case and "-"
    versus "_" do not matter; "local" means "llamacpp", "claude" "anthropic", "google"
    "gemini".

    Raises:
        ConfigurationError: the name is unknown or its module missing (the message lists the
            choices), an option is not one the provider takes, or the provider itself refuses
            its configuration (a missing key, extra or model file).
    """
    normal = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(normal, normal)
    choices = ", ".join(available_providers())
    if key not in _PROVIDERS:
        raise ConfigurationError(f"unknown provider {name!r}; choose from: {choices}")
    module_name, class_name = _PROVIDERS[key]
    if not _module_exists(module_name):
        raise ConfigurationError(
            f"provider {key!r} is not available in this version of chronos; choose from: {choices}"
        )
    factory = getattr(importlib.import_module(module_name), class_name)
    given = {option: value for option, value in options.items() if value is not None}
    try:
        inspect.signature(factory).bind(**given)
        provider: Provider = factory(**given)
    except TypeError as exc:
        # Argument binding: "unexpected keyword argument 'base_url'", "missing ... 'model'";
        # checked again on the call for classes that pass **kwargs on to their base.
        if "argument" not in str(exc):
            raise
        raise ConfigurationError(f"provider {key!r}: {exc}") from exc
    return provider


def provider_name_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The provider the environment asks for, "llamacpp" when it asks for none.

    `CHRONOS_PROVIDER` wins; then `CHRONOS_BASE_URL` (an OpenAI-compatible server); then the
    first available provider whose key or host variable is set (`OPENAI_API_KEY`,
    `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, `COHERE_API_KEY`, `OLLAMA_HOST`).
    """
    env = os.environ if environ is None else environ
    if env.get("CHRONOS_PROVIDER"):
        return env["CHRONOS_PROVIDER"]
    if env.get("CHRONOS_BASE_URL"):
        return "openai"
    available = available_providers()
    for name, variables in _SIGNALS.items():
        if name in available and any(env.get(variable) for variable in variables):
            return name
    return DEFAULT_PROVIDER
