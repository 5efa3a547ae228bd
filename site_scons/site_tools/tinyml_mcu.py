"""SCons tool: the memory report (flash/RAM per board, per layer), `simulate`, the generated code run on an
emulator of the board's CPU (Cortex-M4F under QEMU, AVR under simavr) with its scores checked byte for byte, and
`profile`, its per-layer cost on the emulated Cortex-M4F."""
import os

from tinyml_glue import add_builder, params_node, program_identity, stage_action

# The board fields each stage's action uses: its parameter node holds the board's name and these, and the action
# gets the Board back by name. (title, cpu, core, progmem: shown in memory.json; the rest decide the numbers.)
MEMORY_FIELDS = ("title", "cpu", "core", "progmem", "flash_bytes", "ram_bytes", "family", "compiler", "gcc_flags",
                 "max_object_bytes", "core_margin")
QEMU_FIELDS = ("emulator", "emulator_kind", "emulator_machine", "cpu", "gcc_flags", "clock_hz", "flash_wait_states")
SIMAVR_FIELDS = ("emulator", "emulator_kind", "emulator_machine", "cpu", "fqbn", "flash_bytes", "ram_bytes")
PROFILE_FIELDS = QEMU_FIELDS


def _board(p):
    from codegen.device import boards

    return boards.from_signature(p["board"])


def _memory(target, source, p):
    from codegen.device import memreport

    report = memreport.memory_report(source[0], _board(p), target[0], target[1])
    # The budget, not the 40-row layer table: that is in memory.txt, and the summary shows the bars.
    for line in memreport.budget_lines(report):
        print(f"  {line}")
    print(f"  per-layer table: {target[1]}")
    try:
        memreport.check_fits(report)
    except Exception as e:  # noqa: BLE001 - reported here, enforced before compile/upload
        print(f"warning: {e}")


def _memory_plot(target, source, p):
    import json

    from codegen import plots

    with open(source[0]) as f:
        report = json.load(f)
    plots.save_png(plots.memory_layers_figure(report), target[0])


def _simulate(target, source, p):
    board = _board(p)
    if board.has_qemu:
        from codegen.runners import simulate

        mlf, images_c, images_h, images_json, expected = source[:5]
        result = simulate.simulate_cortex_m4(mlf, images_c, images_h, images_json, expected, target[0],
                                             work_dir=p["work_dir"], board=board)
        print(f"  Cortex-M4 (QEMU mps2-an386): {result['instructions_per_inference']:,.0f} instructions per "
              f"inference, {result['instructions_per_mac']:.2f} per MAC, "
              f"~{result['cycles_per_inference_estimate']:,.0f} cycles (estimate); scores identical to TFLite")
    elif board.has_simavr:
        from codegen.runners import avr_sim

        avr_sim.simulate_avr_sketch(p["sketch_dir"], p["sketch_name"], board, source[4], target[0],
                                    work_dir=p["work_dir"])
    else:
        from codegen.errors import PipelineError

        raise PipelineError(f"no emulator for {board.title}; `scons simulate` supports boards whose "
                            "emulator is set in codegen/device/boards.json (e.g. BOARD=nano33ble, BOARD=mega)")


def _profile(target, source, p):
    from codegen.runners import profile

    mlf, images_c, images_h, images_json = source[:4]
    report = profile.profile_cortex_m4(mlf, target[0], target[1], work_dir=p["work_dir"], board=_board(p),
                                       images_c=images_c, images_h=images_h, images_json=images_json)
    t = report["total"]
    slowest = sorted(report["layers"], key=lambda r: -r["cycles_estimate"])[:3]
    print(f"  Cortex-M4 (QEMU mps2-an386): {t['instructions']:,} instructions, ~{t['cycles_estimate']:,} cycles "
          f"(estimate) over {len(report['layers']) - 1} kernel calls; the slowest: "
          + ", ".join(f"{r['layer']} {r['share_cycles_percent']:.1f}%" for r in slowest))
    print(f"  per-layer table: {target[1]}")


def _profile_plot(target, source, p):
    import json

    from codegen import plots

    with open(source[0]) as f:
        report = json.load(f)
    plots.save_png(plots.profile_figure(report), target[0])


def TinyProfile(env, build_dir, mlf, images, board):
    """profile.json, profile.txt (per kernel call on the emulated Cortex-M4F) and profile.png (drawn from the json)."""
    from codegen.device import boards

    work_dir = os.path.join(build_dir, "profile")
    table = env.TinyProfileRun([os.path.join(build_dir, "profile.json"), os.path.join(build_dir, "profile.txt")],
                               [mlf, *images[:3], params_node(env, board=boards.stage_signature(board, PROFILE_FIELDS),
                                                              work_dir=work_dir)])
    env.Clean(table, env.Dir(work_dir))     # the firmware: kept between runs, undeclared
    plot = env.TinyProfilePlot(os.path.join(build_dir, "profile.png"), table[0])
    return table + plot


def TinyMemoryReport(env, build_dir, mlf, board):
    """memory.json, memory.txt and memory_layers.png (per-layer flash/RAM bars, drawn from memory.json)."""
    from codegen.device import boards

    table = env.TinyMemoryTable([os.path.join(build_dir, "memory.json"), os.path.join(build_dir, "memory.txt")],
                                [mlf, params_node(env, board=boards.stage_signature(board, MEMORY_FIELDS))])
    plot = env.TinyMemoryPlot(os.path.join(build_dir, "memory_layers.png"), table[0])
    return table + plot


def TinySimulate(env, build_dir, mlf, images, expected, sketch_nodes, board, *, sketch_name):
    from codegen.device import boards

    work_dir = os.path.join(build_dir, "simulate")
    board = boards.board(board)
    on_avr = board.has_simavr
    programs = (("arduino-builder", "avr-gcc", "avr-size", "simavr") if on_avr else
                ("arm-none-eabi-gcc", "qemu-system-arm"))
    node = env.TinyRunSimulation(os.path.join(build_dir, "simulate.json"),
                                 [mlf, *images[:3], expected, *sketch_nodes, params_node(
                                     env, board=boards.stage_signature(board, SIMAVR_FIELDS if on_avr else QEMU_FIELDS),
                                     work_dir=work_dir,
                                     sketch_dir=os.path.join(build_dir, sketch_name), sketch_name=sketch_name,
                                     programs=program_identity(*programs))])
    env.Clean(node, env.Dir(work_dir))      # the firmware and arduino-builder's cache: kept between runs, undeclared
    return node


def generate(env):
    add_builder(env, "TinyMemoryTable", stage_action(_memory, "TINY_MEMORYCOMSTR", "Memory report -> $TARGET"))
    add_builder(env, "TinyMemoryPlot", stage_action(_memory_plot, "TINY_MEMORYPLOTCOMSTR",
                                                    "Per-layer memory plot -> $TARGET"))
    add_builder(env, "TinyRunSimulation", stage_action(_simulate, "TINY_SIMULATECOMSTR", "Simulating -> $TARGET"))
    add_builder(env, "TinyProfileRun", stage_action(_profile, "TINY_PROFILECOMSTR", "Profiling per layer -> $TARGET"))
    add_builder(env, "TinyProfilePlot", stage_action(_profile_plot, "TINY_PROFILEPLOTCOMSTR",
                                                     "Per-layer profile plot -> $TARGET"))
    env.AddMethod(TinyMemoryReport)
    env.AddMethod(TinyProfile)
    env.AddMethod(TinySimulate)


def exists(env):
    return True
