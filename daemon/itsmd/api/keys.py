"""Typed application keys."""

from __future__ import annotations

from aiohttp import web

from itsmd.checks.runner import CheckRunner
from itsmd.notify.worker import OutboxWorker
from itsmd.runtime.httpclient import HttpClient
from itsmd.runtime.reconcile import Reconciliation
from itsmd.runtime.state import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
OUTBOX = web.AppKey("outbox", OutboxWorker)
CHECKS = web.AppKey("checks", CheckRunner)
HTTP = web.AppKey("http", HttpClient)
RECONCILE = web.AppKey("reconcile", Reconciliation)
ACTOR = web.RequestKey("actor", str)  # who makes the request: token name or "anonymous"
