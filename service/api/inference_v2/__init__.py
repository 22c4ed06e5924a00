"""The Open Inference Protocol (KServe v2, Triton) beside /v1: its messages (`schemas.py`), its
tensors in JSON or the binary tensor extension (`tensors.py`), a served model's inputs and
outputs (`inference.py`) and its error shape (`error_shape.py`). The routes are in
`service/api/routes/inference_v2.py`."""
