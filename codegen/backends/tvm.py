"""BACKEND=tvm: the project's own route, the .tflite lowered to standalone C (codegen/lowering, the MLF, the
sketch). Its stages are the pipeline's own (site_scons/site_tools/tinyml.py declares them with the stage table);
here is what the backend interface asks of it besides: its name, its column of the side-by-side table."""
from .base import Backend


class TvmBackend(Backend):
    name = "tvm"
    title = "TVM standalone C"
    folder = ""

    def comparison_row(self, memory, simulate=None, check=None):
        simulate = simulate or {}
        return {"flash_bytes": (memory.get("code_bytes") or 0) + memory["constants_bytes"],
                "constants_or_model_bytes": memory["constants_bytes"], "code_bytes": memory.get("code_bytes"),
                "workspace_or_arena_bytes": memory["ram_workspace_bytes"],
                "ram_bytes": memory["ram_workspace_bytes"] + memory["input_bytes"] + memory["output_bytes"],
                "m4_instructions_per_inference": simulate.get("instructions_per_inference"),
                "m4_cycles_estimate_per_inference": simulate.get("cycles_per_inference_estimate"),
                # exact by construction: its host check fails on any difference
                "max_diff": None if check is None else check.get("max_abs_diff", 0)}


BACKEND = TvmBackend()
