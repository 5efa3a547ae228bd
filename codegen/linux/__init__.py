"""The Linux single-board route (BOARD=rpi4, rpi5, rpi_zero2): the model runs as a .tflite with the
interpreter-only runtime (LiteRT, formerly tflite_runtime), not as generated C.

`settings` (its build variables), `targets` (which stages such a board has), `bundle` (the deployable folder:
model.tflite, labels.txt, run.py, requirements.txt, test samples), `runtime_env` (the isolated runtime venv the
check runs it in), `check` (its scores against tf.lite), `report` (model size, memory, x86 latency) and
`remote` (upload and run over ssh).
"""
