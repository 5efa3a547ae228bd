"""mkdocs hook: the reference pages are generated from the project's own registries at build time, so they
cannot go stale. A page holds a marker `<!-- generated: NAME -->`; the hook replaces it with the table made
from codegen/targets.py (targets), codegen/config.py VARIABLES (variables), codegen/device/boards.json
(boards) or the op registry (ops). An unknown marker fails the build."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def targets_md():
    from codegen import targets

    rows = ["| target | on a microcontroller board | on a Linux board |", "|---|---|---|"]
    for t in targets.TARGETS:
        if t.listed:
            rows.append(f"| `{t.name}` | {_cell(t.description) or '-'} | {_cell(t.linux) or '-'} |")
    rows.append("| `<board>` | the default targets for one board, e.g. `scons nano33ble` | the same |")
    return "\n".join(rows)


def variables_md():
    from codegen import config

    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, (default, text) in config.VARIABLES.items():
        shown = f"`{default}`" if str(default) != "" else "(empty)"
        rows.append(f"| `{name}=` | {_cell(shown)} | {_cell(text)} |")
    return "\n".join(rows)


def boards_md():
    from codegen.device import boards, ports

    rows = ["| `BOARD=` | board | cpu | flash | RAM | emulator (`scons simulate`) | fqbn (arduino-cli) | USB ids |",
            "|---|---|---|---|---|---|---|---|"]
    for (name, title, cpu, flash, ram, emulator) in ports.boards_rows():
        entry = boards.get(name)
        usb = ", ".join(f"{v}:{p}" for v, p in entry.get("usb_ids", [])) or "-"
        rows.append(f"| `{name}` | {_cell(title)} | {cpu} | {flash} | {ram} | {emulator} | "
                    f"{'`' + entry['fqbn'] + '`' if entry.get('fqbn') else '-'} | {usb} |")
    return "\n".join(rows)


def ops_md():
    from codegen.lowering.registry import markdown_op_list

    return markdown_op_list().strip()


GENERATORS = {"targets": targets_md, "variables": variables_md, "boards": boards_md, "ops": ops_md}


def generate(name):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if name not in GENERATORS:
        raise ValueError(f"unknown generated section {name!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[name]()


def on_page_markdown(markdown, page, config, files):
    return MARKER.sub(lambda m: generate(m.group(1)), markdown)
