"""KubeRay manifests of Model Garden, generated from one :class:`KubeRaySettings`:

- a ``RayService`` (``ray.io/v1``) whose ``serveConfigV2`` is the Serve config that
  ``garden up`` deploys (:func:`cluster.serve_config.serve_config`), with a head group
  (GCS, dashboard, catalog actor; no GPU), a GPU worker group (LLM engines, training
  workers) scaled by Ray's autoscaler, Ray token auth (``authOptions``) and GCS fault
  tolerance on an external Redis whose password a Secret holds;
- a ``RayJob`` for a training job (``python -m train_jobs.run --config job.yaml``) and one
  for a batch job (``python -m batch_jobs.run --config job.yaml``), each on its own Ray
  cluster or, with ``cluster`` set, on an existing one (``clusterSelector``); the job file
  is a ConfigMap mounted in the submitter Pod, uploaded as the job's ``working_dir`` by
  ``ray job submit``;
- the ConfigMap of settings (``GARDEN_STORAGE_URI``, ``GARDEN_HOME``) and an example of the
  Secret (``GARDEN_DATABASE_URL``, ``GARDEN_ADMIN_KEY``, ``GARDEN_API_KEY``) that every Pod
  reads with ``envFrom``: the manifests name them, never their values.

Field names and rules are KubeRay :data:`KUBERAY_VERSION`'s CRDs
(``ray-operator/config/crd/bases``) and its validation
(``ray-operator/controllers/ray/utils/validation.go``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster.serve_config import AppSpec, ServeSettings, serve_config
from ray_jobs.driver import SpecError, load_spec
from serve_apps.llm.config import LLMAppConfig

#: The KubeRay release whose CRDs the manifests follow (README, "Running on Kubernetes").
KUBERAY_VERSION = "v1.7.0"
API_VERSION = "ray.io/v1"
#: Ray's head-node ports (KubeRay's defaults: GCS, dashboard, client, Serve, metrics).
HEAD_PORTS = {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": 8000,
              "metrics": 8080}
#: Where a RayJob's job file (its ConfigMap) is mounted in the submitter Pod.
JOB_DIR = "/etc/garden/job"
JOB_FILE = "job.yaml"
#: Examples shipped with the project that become the RayJobs' job files.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class NodeGroup(BaseModel):
    """One kind of Pod of the Ray cluster: its resources, requested and limited alike
    (Ray reads the limits as the node's resources; CPU and memory as Kubernetes
    quantities)."""

    model_config = ConfigDict(extra="forbid")

    cpus: int = Field(ge=1, description="CPUs of each Pod (Ray's num-cpus).")
    memory: str = Field(pattern=r"^\d+(Ki|Mi|Gi|Ti)$", description="Memory, e.g. 32Gi.")
    gpus: int = Field(0, ge=0, description="nvidia.com/gpu of each Pod (Ray's num-gpus).")

    def resources(self) -> dict[str, dict[str, Any]]:
        """The container's ``resources``: requests equal to limits, GPUs as limits."""
        amounts: dict[str, Any] = {"cpu": str(self.cpus), "memory": self.memory}
        if self.gpus:
            amounts["nvidia.com/gpu"] = self.gpus
        return {"requests": dict(amounts), "limits": dict(amounts)}


class WorkerGroup(NodeGroup):
    """The GPU worker group: LLM engine replicas and Ray Train workers."""

    name: str = Field("gpu", pattern=_DNS1035.pattern)
    replicas: int = Field(1, ge=0)
    min_replicas: int = Field(0, ge=0)
    max_replicas: int = Field(4, ge=1)
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Pod nodeSelector, e.g. "
        "{'cloud.google.com/gke-accelerator': 'nvidia-l4'}.")

    @model_validator(mode="after")
    def _bounds(self) -> WorkerGroup:
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(f"worker group {self.name}: need min_replicas <= replicas <= "
                             f"max_replicas, got {self.min_replicas}, {self.replicas}, "
                             f"{self.max_replicas}")
        return self


class JobTemplate(BaseModel):
    """A RayJob's lifecycle: ``activeDeadlineSeconds``, ``ttlSecondsAfterFinished`` and
    where it runs."""

    model_config = ConfigDict(extra="forbid")

    active_deadline_s: int = Field(86_400, ge=1, description="Longest the job may run, s.")
    ttl_s_after_finished: int = Field(
        3_600, ge=0, description="Seconds the finished RayJob (and its cluster, with "
        "shutdownAfterJobFinishes) is kept for inspection.")
    cluster: str | None = Field(
        None, description="An existing RayCluster to run on (clusterSelector "
        "ray.io/cluster: the RayService's active cluster, kubectl get rayservice NAME -o "
        "jsonpath='{.status.activeServiceStatus.rayClusterName}'); None: the job starts "
        "its own cluster and deletes it when done.")


def default_llm() -> dict[str, LLMAppConfig]:
    """One LLM app, ``llm`` at ``/openai``: SmolLM2-135M-Instruct on one GPU per replica,
    1 to 4 replicas at 16 ongoing requests each."""
    return {"llm": LLMAppConfig(model="SmolLM2-135M-Instruct", deployment={
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4,
                               "target_ongoing_requests": 16},
        "ray_actor_options": {"num_cpus": 2, "num_gpus": 1}})}


class KubeRaySettings(BaseModel):
    """Everything the manifests are made of. Unknown fields are errors; so are a name
    that is not a DNS-1035 label, an LLM app that asks for more of a resource than a GPU
    worker has, and more engine replicas than the worker group can hold
    (pydantic's ValidationError)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("garden", max_length=40, pattern=_DNS1035.pattern,
                      description="The RayService's name (Services derive from it).")
    namespace: str = Field("default", pattern=_DNS1035.pattern)
    image: str = Field("model-garden:0.1.0",
                       description="The image of every Pod: Ray 2.60 with this project "
                       "installed (pip install '.[gpu]').")
    ray_version: str = Field("2.60.0", description="Ray's version in the image.")
    head: NodeGroup = Field(default_factory=lambda: NodeGroup(cpus=4, memory="16Gi"))
    gpu_workers: WorkerGroup = Field(
        default_factory=lambda: WorkerGroup(cpus=8, memory="48Gi", gpus=1))
    serve: ServeSettings = Field(
        default_factory=lambda: ServeSettings(
            http_host="0.0.0.0", proxy_location="EveryNode", llm=default_llm()),
        description="The Serve apps; gateway.dashboard_url defaults to the head Service.")
    console: bool = Field(True, description="Deploy the web console at /ui.")
    config_map: str = Field("garden-config", description="ConfigMap read by every Pod.")
    secret: str = Field("garden-secrets", description="Secret read by every Pod.")
    redis_address: str | None = Field(
        "redis:6379", description="External Redis of GCS fault tolerance (host:port); "
        "None turns it off.")
    redis_secret: str = Field("garden-redis", description="Secret holding Redis' password.")
    redis_secret_key: str = Field("password")
    storage_uri: str = Field("s3://CHANGE-ME/garden",
                             description="GARDEN_STORAGE_URI: the object store every node "
                             "reads (datasets, models, checkpoints, media).")
    garden_home: str = Field("/home/ray/garden", description="GARDEN_HOME: each Pod's "
                             "local cache of the store.")
    train_job: JobTemplate = Field(default_factory=JobTemplate)
    batch_job: JobTemplate = Field(default_factory=lambda: JobTemplate(active_deadline_s=
                                                                       172_800))

    @model_validator(mode="after")
    def _check(self) -> KubeRaySettings:
        if self.serve.gateway.dashboard_url is None:
            gateway = self.serve.gateway.model_copy(update={"dashboard_url": (
                f"http://{self.head_service}.{self.namespace}.svc.cluster.local:"
                f"{HEAD_PORTS['dashboard']}")})
            self.serve = self.serve.model_copy(update={"gateway": gateway})
        workers = self.gpu_workers
        for app, config in self.serve.llm.items():
            options = config.deployment.ray_actor_options
            for key, have in (("num_gpus", workers.gpus), ("num_cpus", workers.cpus)):
                if options.get(key, 0) > have:
                    raise ValueError(f"llm app {app!r}: {key}={options[key]} per replica, "
                                     f"but a {workers.name} worker has {have}")
        gpus = sum(self.max_engine_replicas(config) * config.deployment.ray_actor_options.get(
            "num_gpus", 0) for config in self.serve.llm.values())
        if gpus > workers.max_replicas * workers.gpus:
            raise ValueError(f"the LLM apps may ask for {gpus:g} GPUs, but the "
                             f"{workers.name} group holds at most "
                             f"{workers.max_replicas * workers.gpus}")
        return self

    @staticmethod
    def max_engine_replicas(config: LLMAppConfig) -> int:
        """The most replicas an LLM app may run (``max_replicas`` when autoscaled)."""
        scaling = config.deployment.autoscaling_config
        return int(scaling.get("max_replicas", 1)) if scaling else int(
            config.deployment.num_replicas or 1)

    @property
    def head_service(self) -> str:
        """The Service KubeRay creates for a RayService's head (``<name>-head-svc``)."""
        return f"{self.name}-head-svc"


class SettingsError(SpecError):
    """A KubeRay settings file that is not valid: the message names the file, the line
    and the field of the first problem."""


def load_settings(path: Path) -> KubeRaySettings:
    """:class:`KubeRaySettings` from a YAML or JSON file (every field optional).

    Raises:
        SettingsError: unreadable, or invalid (file, line and field of the first problem).
    """
    return load_spec(path, KubeRaySettings, "KubeRay settings", SettingsError)


def _env_from(settings: KubeRaySettings) -> list[dict[str, Any]]:
    return [{"configMapRef": {"name": settings.config_map}},
            {"secretRef": {"name": settings.secret}}]


def _head_group(settings: KubeRaySettings) -> dict[str, Any]:
    return {
        # num-cpus and num-gpus come from the container's limits (KubeRay); setting them
        # here as well is refused (validateRayGroupResources)
        "rayStartParams": {"dashboard-host": "0.0.0.0"},
        "template": {"spec": {"containers": [{
            "name": "ray-head", "image": settings.image,
            "ports": [{"containerPort": port, "name": name}
                      for name, port in HEAD_PORTS.items()],
            "envFrom": _env_from(settings),
            "resources": settings.head.resources(),
        }]}},
    }


def _gpu_group(settings: KubeRaySettings) -> dict[str, Any]:
    workers = settings.gpu_workers
    spec: dict[str, Any] = {
        "containers": [{
            "name": "ray-worker", "image": settings.image,
            "envFrom": _env_from(settings),
            "resources": workers.resources(),
            # vLLM and NCCL need more shared memory than a container's 64 MiB default
            "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
        }],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
    }
    if workers.node_selector:
        spec["nodeSelector"] = dict(workers.node_selector)
    if workers.gpus:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists",
                                "effect": "NoSchedule"}]
    return {"groupName": workers.name, "replicas": workers.replicas,
            "minReplicas": workers.min_replicas, "maxReplicas": workers.max_replicas,
            "rayStartParams": {}, "template": {"spec": spec}}


def ray_cluster_spec(settings: KubeRaySettings, *, gcs_ft: bool) -> dict[str, Any]:
    """A ``RayClusterSpec``: the head and GPU groups, token auth, the in-tree autoscaler
    (GPU workers between min and max replicas) and, with ``gcs_ft`` and a Redis address,
    ``gcsFaultToleranceOptions`` whose password is a secretKeyRef."""
    spec: dict[str, Any] = {
        "rayVersion": settings.ray_version,
        "enableInTreeAutoscaling": True,
        "authOptions": {"mode": "token"},
        "headGroupSpec": _head_group(settings),
        "workerGroupSpecs": [_gpu_group(settings)],
    }
    if gcs_ft and settings.redis_address:
        spec["gcsFaultToleranceOptions"] = {
            "redisAddress": settings.redis_address,
            "redisPassword": {"valueFrom": {"secretKeyRef": {
                "name": settings.redis_secret, "key": settings.redis_secret_key}}}}
    return spec


def serve_document(settings: KubeRaySettings, apps: list[AppSpec] | None = None
                   ) -> dict[str, Any]:
    """The RayService's Serve config: ``settings.serve`` with ``apps`` (the web console,
    which ``garden`` hands over) after the gateway."""
    return serve_config(settings.serve, apps or [])


def rayservice(settings: KubeRaySettings, serve_doc: dict[str, Any]) -> dict[str, Any]:
    """The ``RayService``: ``serve_doc`` as ``serveConfigV2`` (a YAML string, as KubeRay
    reads it) on a cluster with GCS fault tolerance."""
    return {
        "apiVersion": API_VERSION, "kind": "RayService",
        "metadata": {"name": settings.name, "namespace": settings.namespace,
                     "labels": {"app.kubernetes.io/name": "model-garden"}},
        "spec": {
            "serveConfigV2": yaml.dump(serve_doc, Dumper=_Dumper, sort_keys=False),
            "rayClusterConfig": ray_cluster_spec(settings, gcs_ft=True),
        },
    }


def rayjob(settings: KubeRaySettings, kind: str) -> dict[str, Any]:
    """The ``RayJob`` of a ``kind`` ("train" or "batch") job: its entrypoint runs the
    job file of ConfigMap ``<name>-<kind>-job`` (:func:`job_config_map`), uploaded from
    the submitter Pod as the job's working_dir.

    Raises:
        ValueError: ``kind`` is neither.
    """
    modules = {"train": ("train_jobs.run", settings.train_job),
               "batch": ("batch_jobs.run", settings.batch_job)}
    if kind not in modules:
        raise ValueError(f"kind must be train or batch, not {kind!r}")
    module, template = modules[kind]
    name = f"{settings.name}-{kind}"
    spec: dict[str, Any] = {
        "entrypoint": f"python -m {module} --config {JOB_FILE}",
        "runtimeEnvYAML": yaml.safe_dump({"working_dir": JOB_DIR}),
        "submissionMode": "K8sJobMode",
        "ttlSecondsAfterFinished": template.ttl_s_after_finished,
        "activeDeadlineSeconds": template.active_deadline_s,
        "submitterPodTemplate": {"spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "ray-job-submitter", "image": settings.image,
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                              "limits": {"cpu": "1", "memory": "2Gi"}},
                "volumeMounts": [{"name": "job", "mountPath": JOB_DIR}],
            }],
            "volumes": [{"name": "job", "configMap": {"name": f"{name}-job"}}],
        }},
    }
    if template.cluster:
        # KubeRay refuses shutdownAfterJobFinishes with clusterSelector: the cluster is
        # not the job's to delete
        spec["clusterSelector"] = {"ray.io/cluster": template.cluster}
    else:
        spec["shutdownAfterJobFinishes"] = True
        spec["rayClusterSpec"] = ray_cluster_spec(settings, gcs_ft=False)
    return {"apiVersion": API_VERSION, "kind": "RayJob",
            "metadata": {"name": name, "namespace": settings.namespace,
                         "labels": {"app.kubernetes.io/name": "model-garden"}},
            "spec": spec}


def job_config_map(settings: KubeRaySettings, kind: str) -> dict[str, Any]:
    """The ConfigMap of a RayJob's job file: the project's example
    (``examples/sft.yaml`` for "train", ``examples/batch.yaml`` and the request lines it
    names for "batch"), as ``job.yaml`` to edit."""
    files = {"train": {JOB_FILE: "sft.yaml"},
             "batch": {JOB_FILE: "batch.yaml",
                       "batch_requests.jsonl": "batch_requests.jsonl"}}[kind]
    return _config_map(f"{settings.name}-{kind}-job", settings.namespace, {
        key: (EXAMPLES / source).read_text(encoding="utf-8") for key, source in files.items()})


def settings_config_map(settings: KubeRaySettings) -> dict[str, Any]:
    """The ConfigMap every Pod reads (``envFrom``): where the storage lives."""
    return _config_map(settings.config_map, settings.namespace, {
        "GARDEN_STORAGE_URI": settings.storage_uri, "GARDEN_HOME": settings.garden_home})


def _config_map(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": data}


#: The keys of the Secret every Pod reads, and what each holds.
SECRET_KEYS = {
    "GARDEN_DATABASE_URL": "the catalog's PostgreSQL, "
                           "postgresql+psycopg://USER:PASSWORD@HOST:5432/garden",
    "GARDEN_ADMIN_KEY": "the bootstrap admin API key (gk_...), for the first garden keys "
                        "create",
    "GARDEN_API_KEY": "the API key the RayJobs' drivers act as (a user's key)",
}


def secret_example(settings: KubeRaySettings) -> list[dict[str, Any]]:
    """Examples of the two Secrets the manifests reference, each value a placeholder
    saying what to put there (``kubectl create secret generic`` is the other way)."""
    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": settings.secret, "namespace": settings.namespace},
         "stringData": {key: f"CHANGE-ME: {what}" for key, what in SECRET_KEYS.items()}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": settings.redis_secret, "namespace": settings.namespace},
         "stringData": {settings.redis_secret_key: "CHANGE-ME: the Redis password"}},
    ]


class _Dumper(yaml.SafeDumper):
    """YAML as people write manifests: multi-line strings (``serveConfigV2``, job files)
    as literal blocks, keys in the order given."""


def _literal(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _literal)


def dump_yaml(*documents: Any) -> str:
    """``documents`` as one YAML stream (``---`` between them), block literals for
    multi-line strings."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False)


def write_manifests(settings: KubeRaySettings, out: Path,
                    apps: list[AppSpec] | None = None) -> list[Path]:
    """Write the manifests of ``settings`` under ``out`` and return their paths:
    ``rayservice.yaml``, ``serve-config.yaml`` (the same Serve config, for ``serve deploy``),
    ``rayjob-train.yaml`` and ``rayjob-batch.yaml`` (each with its job ConfigMap),
    ``configmap.yaml``, ``secret.example.yaml`` and ``grafana-dashboard.json``.

    Raises:
        pydantic.ValidationError: the Serve config is refused by Ray's schema.
        OSError: ``out`` cannot be written.
    """
    import json

    from cluster.kuberay.grafana import grafana_dashboard

    out.mkdir(parents=True, exist_ok=True)
    doc = serve_document(settings, apps)
    files: dict[str, list[dict[str, Any]] | dict[str, Any]] = {
        "rayservice.yaml": [rayservice(settings, doc)],
        "serve-config.yaml": doc,
        "rayjob-train.yaml": [job_config_map(settings, "train"), rayjob(settings, "train")],
        "rayjob-batch.yaml": [job_config_map(settings, "batch"), rayjob(settings, "batch")],
        "configmap.yaml": [settings_config_map(settings)],
        "secret.example.yaml": secret_example(settings),
    }
    written = []
    for filename, content in files.items():
        path = out / filename
        documents = content if isinstance(content, list) else [content]
        path.write_text(dump_yaml(*documents), encoding="utf-8")
        written.append(path)
    path = out / "grafana-dashboard.json"
    path.write_text(json.dumps(grafana_dashboard(), indent=2) + "\n", encoding="utf-8")
    written.append(path)
    return written


__all__ = ["KUBERAY_VERSION", "JobTemplate", "KubeRaySettings", "NodeGroup", "SettingsError",
           "WorkerGroup", "dump_yaml", "job_config_map", "load_settings", "ray_cluster_spec",
           "rayjob", "rayservice", "secret_example", "serve_document", "settings_config_map",
           "write_manifests"]
