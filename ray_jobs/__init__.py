"""What training jobs (:mod:`train_jobs`) and batch jobs (:mod:`batch_jobs`) share as Ray
jobs: submitting, stopping and listing them through Ray's job API
(:mod:`ray_jobs.submit`), the driver's credential (:mod:`ray_jobs.credentials`) and the
skeleton of a driver's ``main()`` with its SIGTERM handling (:mod:`ray_jobs.driver`). It
imports only :mod:`catalog`; both job packages and :mod:`cluster` import it.
"""
