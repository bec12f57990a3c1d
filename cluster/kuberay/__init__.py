"""Run Model Garden on Kubernetes with KubeRay: :mod:`cluster.kuberay.manifests` (the
RayService, RayJobs, ConfigMaps and Secret examples, from one ``KubeRaySettings``) and
:mod:`cluster.kuberay.grafana` (the dashboard of the ``garden_*`` metrics)."""
