"""Media router settings: provider endpoints and tokens, policy, retries, polling.

Everything is read when :meth:`MediaConfig.from_env` is called, never at import.
Environment variables (names follow each provider's own SDK where one exists):

======================  ==============================================================
``REPLICATE_API_TOKEN``  Replicate token; ``REPLICATE_BASE_URL`` overrides the API URL.
``REPLICATE_WEBHOOK_SECRET``  ``whsec_...`` signing secret for Replicate webhooks.
``STABILITY_API_KEY``    Stability key; ``STABILITY_BASE_URL`` overrides the API URL.
``OPENAI_API_KEY``       OpenAI key; ``OPENAI_BASE_URL`` overrides the API URL.
``RUNWAYML_API_SECRET``  Runway key; ``RUNWAY_BASE_URL`` overrides the API URL.
``GARDEN_MEDIA_WEBHOOK_URL``  Public base URL of this gateway, given to providers that
                         call back (``{url}/v1/webhooks/{provider}``); unset: polling only.
``GARDEN_STORAGE_URI``   Shared storage root (:mod:`catalog.storage`); outputs go to its
                         ``media`` folder unless ``media_dir`` names another location.
``GARDEN_MEDIA_RETENTION_DAYS``  Days deleted media keep their files (default 30;
                         ``none`` keeps them).
``GARDEN_MEDIA_OUTPUT_TTL_DAYS``  Days any output keeps its files (default: for ever).
======================  ==============================================================
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

PROVIDERS = ("replicate", "stability", "openai", "runway")

#: provider -> (token variable, base URL variable, default base URL)
PROVIDER_ENV: dict[str, tuple[str, str, str]] = {
    "replicate": ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "https://api.replicate.com"),
    "stability": ("STABILITY_API_KEY", "STABILITY_BASE_URL", "https://api.stability.ai"),
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
    "runway": ("RUNWAYML_API_SECRET", "RUNWAY_BASE_URL", "https://api.dev.runwayml.com"),
}


class ProviderSettings(BaseModel):
    """One provider's endpoint and credentials."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="API root, e.g. https://api.replicate.com.")
    token: SecretStr | None = Field(None, description="API token; None disables the provider.")
    token_env: str = Field(description="Variable that holds the token (named in 503 errors).")
    webhook_secret: SecretStr | None = Field(
        None, description="Webhook signing secret (Replicate: whsec_...)."
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="Operation key (e.g. 'image.generate') -> model to use when the "
        "request names none; overrides the provider's defaults.",
    )


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
    And Jitter", 2015): attempt n sleeps uniform(0, min(max_delay_s, base_delay_s * 2**n)),
    but never less than the provider's Retry-After."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(3, ge=1, le=20, description="Calls per provider, first included.")
    base_delay_s: float = Field(0.5, ge=0, description="Backoff base, seconds.")
    max_delay_s: float = Field(8.0, ge=0, description="Backoff cap, seconds.")
    max_retry_after_s: float = Field(
        30.0, ge=0, description="A longer Retry-After gives up on this provider (fallback)."
    )


class CooldownPolicy(BaseModel):
    """A provider failing ``failures`` times in a row is skipped for ``seconds``."""

    model_config = ConfigDict(extra="forbid")

    failures: int = Field(3, ge=1)
    seconds: float = Field(60.0, ge=0)


def _default_policy() -> dict[str, list[str]]:
    return {
        "image.generate": ["stability", "openai", "replicate"],
        "image.upscale": ["stability", "replicate"],
        "image.edit": ["stability", "openai", "replicate"],
        "image.variation": ["openai"],
        "video.generate": ["runway", "replicate"],
    }


class MediaConfig(BaseModel):
    """Settings of the media router (one object, passed to the Serve deployment)."""

    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderSettings] = Field(description="Provider name -> settings.")
    policy: dict[str, list[str]] = Field(
        default_factory=_default_policy,
        description="'<modality>.<operation>' -> providers in the order tried.",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    cooldown: CooldownPolicy = Field(default_factory=CooldownPolicy)
    request_timeout_s: float = Field(60.0, gt=0, description="One HTTP call to a provider.")
    poll_interval_s: float = Field(1.0, gt=0, description="Between status polls of one job.")
    job_timeout_s: float = Field(
        900.0, gt=0, description="A job not finished after this is marked failed."
    )
    webhook_tolerance_s: int = Field(300, ge=1, description="Oldest webhook timestamp accepted.")
    webhook_url: str | None = Field(
        None, description="Public base URL for provider callbacks; None: polling only."
    )
    media_dir: str | None = Field(
        None,
        description="Where outputs are copied: a local folder or an object-store URI "
        "(s3://bucket/prefix, gs://bucket/prefix); None: 'media' under the shared storage "
        "root (GARDEN_STORAGE_URI, default $GARDEN_HOME), resolved where the service runs.",
    )
    prices_usd: dict[str, float] = Field(
        default_factory=dict, description="'<provider>/<model>' -> USD per output (override)."
    )
    max_concurrent_downloads: int = Field(16, ge=1)
    max_upload_bytes: int = Field(20 * 2**20, ge=1, description="Largest source image upload.")
    retention_days: float | None = Field(
        30.0, ge=0, description="Files of deleted images, edits, videos and uploads are "
        "removed from storage this long after the delete; None keeps them.")
    output_ttl_days: float | None = Field(
        None, ge=0, description="Files of every output older than this are removed "
        "(rows stay, marked purged); None keeps outputs for ever.")
    purge_interval_s: float = Field(3600.0, gt=0, description="Between retention purges.")

    @field_validator("media_dir", mode="before")
    @classmethod
    def _media_dir_as_str(cls, value: object) -> object:
        """A local path given as ``pathlib.Path`` (or any os.PathLike) becomes its string."""
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @classmethod
    def from_env(cls, **overrides: object) -> MediaConfig:
        """Settings from the environment variables in this module's docstring."""
        providers = {}
        for name, (token_env, url_env, default_url) in PROVIDER_ENV.items():
            token = os.environ.get(token_env) or None
            secret = os.environ.get("REPLICATE_WEBHOOK_SECRET") if name == "replicate" else None
            providers[name] = ProviderSettings(
                base_url=os.environ.get(url_env) or default_url,
                token=SecretStr(token) if token else None,
                token_env=token_env,
                webhook_secret=SecretStr(secret) if secret else None,
            )
        values: dict[str, object] = {
            "providers": providers,
            "webhook_url": os.environ.get("GARDEN_MEDIA_WEBHOOK_URL") or None,
        }
        for name, field in (("GARDEN_MEDIA_RETENTION_DAYS", "retention_days"),
                            ("GARDEN_MEDIA_OUTPUT_TTL_DAYS", "output_ttl_days")):
            raw = os.environ.get(name)
            if raw:
                values[field] = None if raw.strip().lower() == "none" else raw
        values.update(overrides)
        return cls(**values)

    def resolved_media_dir(self) -> str:
        """The output location: ``media_dir``, or ``catalog.storage.location("media")``
        (read now, so from this process's ``GARDEN_STORAGE_URI``). A URI
        (``s3://bucket/prefix/media``) is returned as it is; a local folder is returned
        as a plain path (``~`` expanded) and created if missing.

        Raises:
            OSError: a local folder cannot be created.
        """
        from catalog import storage

        location = self.media_dir or storage.location("media")
        if storage.is_remote(location):
            return location
        path = Path(location).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
