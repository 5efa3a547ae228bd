"""The stage table: the target registry (codegen/targets.py) and the backends' steps (codegen/backends) are one
table, checked here instead of at every build: each step belongs to a registered target, a target's `backends`
are exactly those that declare steps for it, every step's action has a code version, and the generated table
lists each (target, backend, step) once."""
import os

import pytest

from codegen import backends, boards, config, targets
from codegen import stagetable as table
from codegen.backends import base
from codegen.resources import sketch_templates_dir
from helpers import ROOT

SHARED = os.path.join(ROOT, "..", "shared")
TREES = {"TFLM_DIR": os.path.join(SHARED, "tflm-tree"), "TINYMAIX_DIR": os.path.join(SHARED, "tinymaix-tree")}


def _steps(board_name):
    if not all(os.path.isdir(t) for t in TREES.values()):
        pytest.skip("the TFLM and TinyMaix trees are in ../shared (the project's CI), not in a user's clone")
    board = boards.get(board_name)
    cfg = config.parse(TREES)
    ctx = base.Context(board=board, cfg=cfg, out="build/x", templates=sketch_templates_dir(),
                       expected_path="build/x/expected.json", classes=("a", "b"), input_paths=("a.png",))
    names = [backends.BY_BOARD["linux"]] if board.is_linux else list(backends.names())
    found = {}
    for name in names:
        steps = backends.get(name).steps(ctx)
        found[name] = {stage for s in steps for stage in ((s.stage,) if isinstance(s.stage, str) else s.stage)}
        if backends.get(name).firmware and "sketch" in found[name]:
            found[name] |= {"compile", "upload", "verify"}       # the glue's, for every backend with a sketch
        if backends.get(name).compilation_database and "sketch" in found[name]:
            found[name].add("compiledb")                         # SCons' compilation_db tool, on its sketch
        assert len({s.id for s in steps}) == len(steps), name
    return found


@pytest.mark.parametrize("board_name", ["nano33ble", "mega", "rpi4"])
def test_every_step_belongs_to_a_registered_target(board_name):
    for name, stages in _steps(board_name).items():
        assert stages <= set(targets.BY_NAME), (name, stages - set(targets.BY_NAME))


# Stages the pipeline itself declares for every backend, which a backend may add a step to (TFLM's expected_tflm.json
# with its second resolver).
PIPELINE_STAGES = {"expected"}


def test_a_targets_backends_are_those_that_have_its_steps():
    found = _steps("nano33ble")
    for t in targets.TARGETS:
        if t.name in PIPELINE_STAGES:
            continue
        having = {name for name, stages in found.items() if t.name in stages}
        if t.backends:
            assert having == set(t.backends), (t.name, having)
            assert t.only, f"{t.name}: the error for a BACKEND= without it needs `only`"
        elif having:
            assert having == set(found), f"{t.name} is a stage of {having} only: say so in its `backends`"


def test_asking_for_a_stage_no_chosen_backend_has_is_one_line_naming_why():
    line = targets.lacking_backends("profile", ["tflm"], {"tflm": backends.get("tflm").lacks})
    assert line.startswith("`scons profile` profiles the generated C of BACKEND=tvm") and "compiled out" in line
    assert targets.lacking_backends("profile", ["tvm", "tflm"]) is None
    assert targets.lacking_backends("check", ["tinymaix"]) is None
    assert "no Arduino build" in targets.lacking_backends("compile", ["tinymaix"],
                                                          {"tinymaix": backends.get("tinymaix").lacks})


def test_the_generated_table_lists_each_step_once():
    _steps("nano33ble")
    rows = table.rows("nano33ble")
    keys = [(r[0], r[1], r[2]) for r in rows if r[1] != "-"]
    assert len(keys) == len(set(keys))
    assert ("simulate", "tinymaix", "simulate") in keys and ("profile", "tvm", "profile") in keys
    assert {r[0] for r in rows} == {t.name for t in targets.TARGETS}
    assert "`codegen.backends.tvm.mlf`" in table.markdown()


def test_a_boards_usb_ids_or_memory_do_not_enter_the_sketch_or_its_library():
    """The sketch and the Arduino library carry only the board fields their templates read: editing a board's USB
    ids (or RAM size) re-renders neither, so compile and upload do not rerun."""
    from codegen.backends import tvm

    board = boards.get("nano33ble")
    edited = boards.make("nano33ble", dict(board.entry, usb_ids=[["0x1234", "0x5678"]], ram_bytes=1234))
    steps = []
    for b in (board, edited):
        ctx = base.Context(board=b, cfg=config.parse({}), out="build/x", templates=sketch_templates_dir(),
                           expected_path="build/x/expected.json")
        steps.append({s.id: s for s in tvm.BACKEND.steps(ctx)})
    for step in ("sketch", "arduino_library", "mlf", "c_library", "check"):
        assert steps[0][step].params == steps[1][step].params, step
    assert steps[0]["memory"].board_fields and "ram_bytes" in steps[0]["memory"].board_fields
