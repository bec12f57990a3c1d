"""Settings of the gateway deployment (pydantic, one description per field)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Environment variables a replica needs from its deployer (forwarded by the builder).
#: ``GARDEN_ADMIN_KEY`` is deliberately absent: a runtime_env is shown on the Ray
#: dashboard, so the key reaches replicas only through the head's own environment
#: (``garden up --admin-key``) or an explicit ``env_vars`` entry.
FORWARDED_ENV = ("GARDEN_HOME", "GARDEN_DATABASE_URL", "RAY_AUTH_MODE")


class GatewayConfig(BaseModel):
    """How the gateway runs. Validated on construction; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int = Field(1, ge=1, description="Serve replicas of the gateway.")
    num_cpus: float = Field(0.1, ge=0, description="Logical CPUs reserved per replica.")
    dashboard_url: str | None = Field(
        None,
        description="Ray dashboard / job API address (http://host:8265) from which the "
        "gateway reads training jobs' Ray logs (submission and cancellation go through "
        "the Work port, which cluster.deploy gives the same address); None lets Ray "
        "discover it.",
    )
    llm_apps: list[str] = Field(
        default_factory=list,
        description="Serve application names whose status /health reports (LLM apps). "
        "Empty means every Serve application but the gateway's own.",
    )
    media_app: str | None = Field(
        None,
        description="Serve application name of the MediaRouter deployment "
        "(serve_apps.media.builder.build_media_app(http=False)); when set, the media "
        "routes (/v1/images, /v1/videos, /v1/predictions, /v1/webhooks) are mounted and "
        "call it. None leaves them out.",
    )
    max_upload_bytes: int = Field(
        256 * 1024 * 1024, ge=1, description="Largest dataset upload accepted, in bytes (413)."
    )
    preview_rows: int = Field(20, ge=1, le=1000, description="Most rows a preview may return.")
    request_timeout_s: float = Field(
        60.0, gt=0, description="Longest the gateway waits on the job API or a file read, s."
    )
    submit_timeout_s: float = Field(
        120.0, gt=0,
        description="How long a job submission waits for the job API (a freshly started "
        "cluster's dashboard agent), s.",
    )
    env_vars: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of the replicas (runtime_env env_vars); the builder adds "
        f"the deployer's values of {', '.join(FORWARDED_ENV)} when unset here.",
    )
