"""Bring a Model Garden cluster up and down and deploy its apps.

``cluster.local``: ``up()``, ``down()``, ``status()`` for one machine (``cluster.startup``:
its port checks and the Ray logs a failed start keeps);
``cluster.deploy``: ``deploy_apps()`` onto any connected Ray cluster.
"""
