"""mkdocs hook: the reference pages are generated from the project's own registries at build time, so they
cannot go stale. A page holds a marker `<!-- generated: NAME -->`; the hook replaces it with the table made
from codegen/targets.py (targets), codegen/stagetable.py (stages: the targets joined with the backends' steps),
codegen/config.py VARIABLES (variables), codegen/boards.json (boards), the op registry (ops) or the error messages raised in the code (errors). An unknown marker fails
the build."""
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
    from codegen import boards
    from codegen.device import ports

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


# The exceptions whose message is the user's `error:` line (codegen/errors.py and its subclasses).
ERROR_CLASSES = {"PipelineError", "ConfigError", "ModelError", "AvrError", "QemuError", "TflmError",
                 "DownloadError"}


def _message(node):
    """The text of a message expression: literal parts as they are, each {expression} as <expression>."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_message(v) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        text = ast.unparse(node.value)
        return f"<{text if len(text) <= 30 else '...'}>"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _message(node.left) + _message(node.right)
    return "<...>"


def error_messages():
    """[(file, line, message)] of every error a stage or the build file raises for the user: the messages of the
    error classes raised in codegen/, site_scons/ and SConstruct, and SConstruct's `error:` lines."""
    import ast

    found = []
    paths = [os.path.join(ROOT, "SConstruct")]
    for top in ("codegen", "site_scons"):
        for folder, dirs, names in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "bundle_files"))
            paths += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    for path in paths:
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            message = None
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in ERROR_CLASSES:
                    message = _message(node.exc.args[0])
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "write"
                  and node.args and _message(node.args[0]).startswith("error: ")):
                message = _message(node.args[0])[len("error: "):]
            if message and message.strip() and not re.fullmatch(r"<[^>]*>", message.strip()):
                found.append((os.path.relpath(path, ROOT), node.lineno, message.strip().replace("\n", " ")))
    return sorted(found)


def _markdown_text(text):
    """`text` shown as written: outside `code spans` <, >, & and * are escaped (HTML tags, emphasis); inside
    them nothing is (a code span shows entities literally)."""
    parts = text.split("`")
    if len(parts) % 2 == 0:             # an unpaired backtick: no code spans at all
        parts = [text.replace("`", "\\`")]
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return "`".join(parts)


def errors_md():
    rows = []
    current = None
    for path, _, message in error_messages():
        if path != current:
            rows += ["", f"### `{path}`", "", "| message |", "|---|"]
            current = path
        rows.append(f"| {_markdown_text(_cell(message))} |")
    return "\n".join(rows).strip()


def stages_md():
    from codegen import stagetable

    return stagetable.markdown()


GENERATORS = {"targets": targets_md, "stages": stages_md, "variables": variables_md, "boards": boards_md, "ops": ops_md,
              "errors": errors_md}


def generate(name):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if name not in GENERATORS:
        raise ValueError(f"unknown generated section {name!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[name]()


def on_page_markdown(markdown, page, config, files):
    return MARKER.sub(lambda m: generate(m.group(1)), markdown)
