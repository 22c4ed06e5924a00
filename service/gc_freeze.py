"""Full garbage collections without what the process holds for good.

CPython's cyclic collector now and then walks every object the process holds (a full, or
oldest-generation, collection), holding the GIL throughout. In a worker holding the app, scipy,
ONNX Runtime and the default bundle those are about 180,000 objects, and under overload each
worker ran one in 12 s, 110 to 124 ms long: the event loop stood still
meanwhile, and the slowest refusals and health checks were the ones that met it. So once the
models are loaded, everything held then is moved out of the collector's sight (`gc.freeze`):
later full collections walk only what was made since. A reload first puts the frozen objects
back in view and collects, so that a cycle among what the reload replaced is still freed."""

from __future__ import annotations

import gc


def freeze_held_objects() -> None:
    """Collect what is garbage now, then freeze every object left (blocking: about 100 ms in a
    worker with the default bundle)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
