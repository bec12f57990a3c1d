"""Bring a Model Garden cluster up and down and deploy its apps.

``cluster.local``: ``up()``, ``down()``, ``status()`` for one machine (``cluster.startup``:
its port checks and the Ray logs a failed start keeps);
``cluster.serve_config``: the apps' Serve config (``serve deploy``'s document), built from
one ``ServeSettings``; ``cluster.deploy``: ``deploy_apps()`` of that config onto any
connected Ray cluster; ``cluster.apps``: the gateway's builder that the config names;
``cluster.kuberay``: the same config in a KubeRay RayService, RayJob templates and a
Grafana dashboard (``garden deploy kuberay``).
"""
