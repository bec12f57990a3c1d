"""Settings of the gateway deployment (pydantic, one description per field)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog.reconcile import DEFAULT_GRACE_S

#: Environment variables a replica needs from its deployer (forwarded by the builder).
#: ``GARDEN_ADMIN_KEY`` is deliberately absent: a runtime_env is shown on the Ray
#: dashboard, so the key reaches replicas only through the head's own environment
#: (``garden up --admin-key``) or an explicit ``env_vars`` entry.
FORWARDED_ENV = ("GARDEN_HOME", "GARDEN_DATABASE_URL", "RAY_AUTH_MODE")


class GatewayConfig(BaseModel):
    """How the gateway runs. Validated on construction; unknown fields are errors, and so
    is a ``reconcile_grace_s`` not above ``submit_timeout_s + request_timeout_s``
    (pydantic's ValidationError, a ValueError)."""

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
    reconcile_period_s: float = Field(
        30.0, ge=0,
        description="Seconds between two rounds of each replica's reconciler, which ends "
        "catalog training jobs and batches whose Ray job is over without their driver "
        "having recorded it (serve_apps.gateway.reconcile); the first round runs at start. "
        "0 turns it off.",
    )
    reconcile_grace_s: float = Field(
        DEFAULT_GRACE_S, gt=0,
        description="Seconds a live job or batch may name a Ray job that the job API does "
        "not list, counted from the row's last change, before the reconciler fails it "
        "('Ray job ... not found'); more than submit_timeout_s + request_timeout_s, the "
        "longest a submission may still be under way.",
    )
    env_vars: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of the replicas (runtime_env env_vars); the builder adds "
        f"the deployer's values of {', '.join(FORWARDED_ENV)} when unset here.",
    )

    @model_validator(mode="after")
    def _grace_outlasts_a_submission(self) -> GatewayConfig:
        longest = self.submit_timeout_s + self.request_timeout_s
        if self.reconcile_grace_s <= longest:
            raise ValueError(
                f"reconcile_grace_s ({self.reconcile_grace_s:g}) must exceed submit_timeout_s "
                f"+ request_timeout_s ({longest:g}): a job still being submitted would be "
                "failed as not found")
        return self
