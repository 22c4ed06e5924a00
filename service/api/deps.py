"""FastAPI dependencies as typed aliases: a route declares what it needs in its signature."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, HTTPException, Path, Security
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import HTTPConnection

from service.api.auth import bearer_key, header_key, key_accepted
from service.logging_setup import note_model
from service.registry import ServedModel
from service.runtime import Runtime


def get_runtime(connection: HTTPConnection) -> Runtime:
    """The app's runtime, from the lifespan state (see service/app.py)."""
    return cast(Runtime, connection.state.runtime)


async def _runtime(connection: HTTPConnection) -> Runtime:
    return get_runtime(connection)


# The dependencies are coroutines because FastAPI runs a plain-def dependency in a worker
# thread: three thread hops per request were about half of the event loop's time per request
# (cProfile, benchmarks/capacity_http.py's load), for work that never blocks.
RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def require_api_key(
    runtime: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_key)],
    x_api_key: Annotated[str | None, Security(header_key)],
) -> None:
    """401 unless authentication is off or the request carries a configured key (the Bearer
    one wins when both headers are sent)."""
    presented = bearer.credentials if bearer is not None else x_api_key
    if not key_accepted(runtime.settings.api_keys, presented):
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required: send 'Authorization: Bearer <key>' "
            "or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


MODELS_LOADING = "the models are still loading; retry shortly"


def refuse_while_loading(runtime: Runtime) -> None:
    """503 with Retry-After while this worker's first load of the models folder is under way:
    a worker just started or restarted is reached like any other (each listens on its own
    socket), and "no such model" would be wrong about a model there a moment later."""
    if not runtime.registry.refreshed:
        raise HTTPException(status_code=503, detail=MODELS_LOADING, headers={"Retry-After": "1"})


async def get_model(
    name: Annotated[str, Path(description="the model name from its manifest")],
    runtime: RuntimeDep,
) -> ServedModel:
    """The model the name serves at this moment; the request keeps it even if a reload swaps."""
    model = runtime.registry.get(name)
    if model is None:
        refuse_while_loading(runtime)
        served = [m.name for m in runtime.registry.served()]
        raise HTTPException(
            status_code=404, detail=f"no model named {name!r} is served (served: {served})"
        )
    note_model(model.name, model.version)
    return model


ModelDep = Annotated[ServedModel, Depends(get_model)]
