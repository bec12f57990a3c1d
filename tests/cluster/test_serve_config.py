""":func:`cluster.serve_config.deploy_config` on the session's Ray cluster: an app whose
builder refuses its ``args`` fails the deploy with Serve's own message, naming the app and
the field, and leaves the apps deployed with ``serve.run`` alone."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ray


def test_a_failed_app_says_why_and_other_apps_keep_running(serve_url):
    from ray import serve

    from cluster.serve_config import deploy_config

    @serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
    class Bystander:
        def __call__(self, request) -> str:
            return "still here"

    serve.run(Bystander.bind(), name="bystander", route_prefix="/bystander")
    doc = {"applications": [{
        "name": "broken-gateway", "route_prefix": "/broken-gateway",
        "import_path": "cluster.apps:gateway_app", "args": {"num_cpuz": 1}}]}
    try:
        with pytest.raises(RuntimeError) as failed:
            deploy_config(doc, timeout_s=300)
        message = str(failed.value)
        assert message.startswith("app 'broken-gateway' failed to deploy:"), message
        assert "num_cpuz" in message and "Extra inputs are not permitted" in message
        # a declarative deploy leaves the imperative app as it was
        assert serve.status().applications["bystander"].status == "RUNNING"
    finally:
        serve.delete("broken-gateway")
        serve.delete("bystander")
