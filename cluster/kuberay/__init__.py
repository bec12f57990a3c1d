"""Run Model Garden on Kubernetes with KubeRay."""
