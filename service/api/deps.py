"""FastAPI dependencies as typed aliases: a route declares what it needs in its signature."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, HTTPException, Path
from starlette.requests import HTTPConnection

from service.api.auth import key_accepted, presented_key
from service.registry import ServedModel
from service.runtime import Runtime


def get_runtime(connection: HTTPConnection) -> Runtime:
    """The app's runtime, from the lifespan state (see service/app.py)."""
    return cast(Runtime, connection.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_api_key(connection: HTTPConnection, runtime: RuntimeDep) -> None:
    """401 unless authentication is off or the request carries a configured key."""
    if not key_accepted(runtime.settings.api_keys, presented_key(connection.headers)):
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required: send 'Authorization: Bearer <key>' "
            "or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def get_model(
    name: Annotated[str, Path(description="the model name from its manifest")],
    runtime: RuntimeDep,
) -> ServedModel:
    """The model the name serves at this moment; the request keeps it even if a reload swaps."""
    model = runtime.registry.get(name)
    if model is None:
        served = [m.name for m in runtime.registry.served()]
        raise HTTPException(
            status_code=404, detail=f"no model named {name!r} is served (served: {served})"
        )
    return model


ModelDep = Annotated[ServedModel, Depends(get_model)]
