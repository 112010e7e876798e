"""Typed access to the server's parts from a route: the one place that knows where they are kept.

Use the accessors (``gateway(request)``) on the hot invocation routes, where a FastAPI dependency
would cost a resolution per request, and the ``Annotated`` aliases (``ControllerDep``) elsewhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hubserve.asyncinf import AsyncInference
from hubserve.batch.runner import BatchJobRunner
from hubserve.control.controller import Controller
from hubserve.gateway import Gateway
from hubserve.metrics import Metrics
from hubserve.services import Services
from hubserve.settings import Settings


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def settings(request: Request) -> Settings:
    configured: Settings = request.app.state.settings  # set when the app is built, before its lifespan
    return configured


def gateway(request: Request) -> Gateway:
    return services(request).gateway


def controller(request: Request) -> Controller:
    return services(request).controller


def metrics(request: Request) -> Metrics:
    return services(request).metrics


def async_inference(request: Request) -> AsyncInference:
    return services(request).async_inference


def batch_jobs(request: Request) -> BatchJobRunner:
    return services(request).batch_jobs


ServicesDep = Annotated[Services, Depends(services)]
SettingsDep = Annotated[Settings, Depends(settings)]
ControllerDep = Annotated[Controller, Depends(controller)]
