"""Named build profiles in `tinyml.ini`, PlatformIO style, and where each build variable's value comes from.

    [tinyml]
    default_envs = mega-tiny          ; the profile a bare `scons` uses (optional)

    [env]                             ; common values, for every profile (and for no profile)
    EPOCHS = 10

    [env:mega-tiny]
    extends = env:base                ; optional: values of other [env:NAME] sections, later ones win
    BOARD = mega

Keys are the build variables (codegen.config.VARIABLES, case-insensitive). Precedence, highest first: command
line > the chosen [env:NAME] (then the sections it extends) > [env] > the board's model_defaults (boards.json)
> the built-in default. The file is read with configparser: no interpolation (values are taken literally),
`;` and `#` start comments, also after a value when preceded by a space (as in platformio.ini).

No SCons import: SConstruct and a firmware repo that loads the tool both call `resolve`.
"""
import configparser
import hashlib
import errno
import os
import re
import shutil
import stat
import tempfile
import textwrap

from . import config, inputfiles
from .errors import ConfigError

FILE_NAME = "tinyml.ini"
COMMON = "env"
TOOL_SECTION = "tinyml"
TUNE_SECTION = "tune"        # `scons tune`: [tune] and [tune:NAME] hold search spaces (codegen.tune.space)
TOOL_KEYS = ("default_envs",)
SECTION_KEYS = ("extends",)
# Chooses the section: a command-line-only variable, never a key in one.
CHOOSER = "ENV"

# Comma-separated lists (config.parse splits them): a value on several lines in the file, one item per line as
# in platformio.ini, is the same list. Other values on several lines join with spaces (ARDUINO_FLAGS=).
LIST_VARIABLES = ("BOARD", "INPUTS", "IMAGES", "BACKEND")

# tinyml.ini is read on every scons start: a bound on what a wrong file (a log, a dump) costs.
MAX_FILE_BYTES = 1 * 2**20

COMMAND_LINE = "command line"
BUILT_IN = "built-in default"


def project_file(root):
    """Where the profiles of the project rooted at `root` (the SConstruct's folder) live."""
    return os.path.join(root, FILE_NAME)


def _shown(path):
    """The file's name as a user finds it: relative to the current folder when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def _parser():
    # default_section: a name no one writes, so that a [DEFAULT] section is reported as unknown instead of
    # silently applying to every section (configparser's meaning, not PlatformIO's).
    return configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"),
                                     default_section="\0unused", strict=True)


_PROFILE_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_HEADER = re.compile(r"\[(?P<name>[^]]+)\]")
_KEY = re.compile(r"(?P<key>[^=:\s][^=:]*?)\s*[=:]")


def _scan(lines):
    """[(kind, section, key, line index)] of section headers and keys, the way configparser reads them
    (keys start a line; indented lines continue a value): for line numbers in messages and for `save`."""
    found, section, in_value = [], None, False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue        # a blank line or a comment; an indented line after a key continues its value
        if line[0].isspace() and in_value:
            continue
        header = _HEADER.match(stripped)
        if header and not line[0].isspace():
            section, in_value = header.group("name").strip(), False
            found.append(("section", section, None, i))
            continue
        key = _KEY.match(stripped)
        if key and section is not None:
            found.append(("key", section, key.group("key").strip(), i))
            in_value = True
    return found


class Profiles:
    """The sections of one tinyml.ini: {section: {KEY: (value, line number)}}."""

    def __init__(self, path, text=None):
        self.path = path
        self.shown = _shown(path)
        self.sections = {}
        self.section_lines = {}
        self.exists = text is not None
        if text is None:
            return
        parser = _parser()
        try:
            parser.read_string(text, source=self.shown)
        except configparser.Error as e:
            raise ConfigError(f"{self.shown}{_line_of(e)}: {_what(e, text.splitlines())}; fix the file "
                              "(PlatformIO-style: [env], [env:NAME] sections of KEY = value lines) or remove it") \
                from None
        lines = {}
        for kind, section, key, i in _scan(text.splitlines()):
            if kind == "section":
                self.section_lines.setdefault(section, i + 1)
            else:
                lines.setdefault((section, key.lower()), i + 1)
        for section in parser.sections():
            values = {}
            for key, value in parser.items(section):
                values[key.upper()] = (value, lines.get((section, key.lower())))
            self.sections[section] = values
        self._check()

    def where(self, section, key=None):
        line = self.section_lines.get(section) if key is None else self.sections[section][key][1]
        return f"{self.shown}:{line}" if line else self.shown

    def _check(self):
        for section, values in self.sections.items():
            if section == TOOL_SECTION:
                allowed = {k.upper() for k in TOOL_KEYS}
            elif section.startswith("env:") and not _PROFILE_NAME.fullmatch(section[4:]):
                raise ConfigError(f"{self.where(section)}: [{section}] is not a profile name; use letters, digits "
                                  "and - _ . + after env: (no spaces), e.g. [env:mega-tiny]")
            elif section == COMMON or section.startswith("env:"):
                allowed = set(config.VARIABLES) - {CHOOSER}
                if section != COMMON:
                    allowed |= {k.upper() for k in SECTION_KEYS}
            elif section == TUNE_SECTION or section.startswith(f"{TUNE_SECTION}:"):
                allowed = set(config.VARIABLES) - {CHOOSER}     # search spaces: codegen.tune.space checks them
            else:
                raise ConfigError(f"{self.where(section)}: unknown section [{section}]; use [env] (common values), "
                                  f"[env:NAME] (a profile, chosen with ENV=NAME), [{TOOL_SECTION}] or "
                                  f"[{TUNE_SECTION}] (`scons tune`'s search space)")
            for key in values:
                if key in allowed:
                    continue
                if key == CHOOSER:
                    why = f"{CHOOSER}= chooses a profile on the command line; it cannot be set in one"
                elif key in config.VARIABLES:
                    why = f"build variables go in [{COMMON}] or [env:NAME]"
                elif key.lower() in TOOL_KEYS:
                    why = f"{key.lower()} belongs in [{TOOL_SECTION}]"
                elif key.lower() in SECTION_KEYS:
                    why = f"{key.lower()} belongs in an [env:NAME] section"
                else:
                    why = "`scons -h` lists the build variables"
                raise ConfigError(f"{self.where(section, key)}: unknown key {key!r} in [{section}]; {why}")
        for name in self.envs():
            self._chain(name)      # an unknown or circular `extends` is an error even in an unused profile

    def envs(self):
        return [s[4:] for s in self.sections if s.startswith("env:")]

    def tune_entries(self, env=None):
        """`scons tune`'s search space and settings written in [tune], then [tune:ENV] over it:
        {KEY: (raw value, "file:line [section]")} (codegen.tune.space parses and checks them)."""
        entries = {}
        for section in [TUNE_SECTION] + ([f"{TUNE_SECTION}:{env}"] if env else []):
            for key, (value, line) in self.sections.get(section, {}).items():
                entries[key] = (value, f"{self.shown}:{line} [{section}]" if line else f"{self.shown} [{section}]")
        return entries

    def default_env(self):
        value, _ = self.sections.get(TOOL_SECTION, {}).get("DEFAULT_ENVS", ("", None))
        names = [n.strip() for n in value.replace("\n", ",").split(",") if n.strip()]
        if len(names) > 1:
            raise ConfigError(f"{self.where(TOOL_SECTION, 'DEFAULT_ENVS')}: default_envs names {len(names)} "
                              f"profiles ({', '.join(names)}); a build uses one: keep one, or choose with ENV=NAME")
        return names[0] if names else None

    def _section_of(self, name):
        return f"env:{name}"

    def _chain(self, name, seen=()):
        """The [env:...] sections whose values profile `name` takes, lowest precedence first, itself last."""
        section = self._section_of(name)
        if name in seen:
            raise ConfigError(f"{self.where(section, 'EXTENDS')}: [{section}] extends itself through "
                              f"{' -> '.join(self._section_of(n) for n in (*seen, name))}; break the cycle")
        chain = []
        value, _ = self.sections[section].get("EXTENDS", ("", None))
        for parent in [p.strip() for p in value.replace("\n", ",").split(",") if p.strip()]:
            parent_name = parent[4:].strip() if parent.startswith("env:") else parent
            if self._section_of(parent_name) not in self.sections:
                raise ConfigError(f"{self.where(section, 'EXTENDS')}: [{section}] extends {parent!r}, which is not "
                                  f"a section of the file; known profiles: {_names(self.envs())}")
            chain += [s for s in self._chain(parent_name, (*seen, name)) if s not in chain]
        return chain + [section]


def _names(names):
    return ", ".join(names) if names else "none"


def _line_of(e):
    line = getattr(e, "lineno", None)
    if line is None and getattr(e, "errors", None):
        line = e.errors[0][0]
    return f":{line}" if line else ""


def _what(e, lines):
    if isinstance(e, configparser.MissingSectionHeaderError):
        return f"{e.line.strip()!r} comes before any [section] header"
    if isinstance(e, configparser.DuplicateOptionError):
        return f"{e.option!r} is given twice in [{e.section}]"
    if isinstance(e, configparser.DuplicateSectionError):
        return f"section [{e.section}] is given twice"
    if isinstance(e, configparser.ParsingError):
        line = e.errors[0][0]
        shown = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        return f"{shown!r} is not a KEY = value line"
    return str(e).splitlines()[0]


def _read_text(path):
    """The file's text: read without blocking (O_NONBLOCK, a regular file), at most MAX_FILE_BYTES, as UTF-8
    with or without a byte order mark (utf-8-sig: an editor's BOM is not part of the first line)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        raw = f.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES:,} bytes; a profiles file is a few KB")
    return raw.decode("utf-8-sig")


def load(path):
    """The profiles in `path`; a file that does not exist holds none."""
    kind = inputfiles.not_regular(path)
    if kind == "missing":
        return Profiles(path)
    if kind is not None:        # a FIFO would block every scons start
        reason = os.strerror(errno.EISDIR) if kind == "a folder" else f"it is {kind}, not a regular file"
        raise ConfigError(f"cannot read {_shown(path)} ({reason}); make it a readable file or remove it")
    try:
        text = _read_text(path)
    except OSError as e:
        raise ConfigError(f"cannot read {_shown(path)} ({e.strerror}); make it a readable file or remove it") \
            from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{_shown(path)} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 "
                          "or remove it") from None
    return Profiles(path, text)


class Resolved:
    """The raw build variables in force (command line merged over the profile) and where each came from."""

    def __init__(self, profiles, env, env_from, raw, sources):
        self.profiles = profiles
        self.env = env              # the chosen profile's name, or None
        self.env_from = env_from    # "ENV=" or "default_envs"
        self.raw = raw              # {NAME: string}, what config.parse takes
        self.sources = sources      # {NAME: (label, "file:line [section]" or None)} for each NAME in raw

    def parse(self, board_name=None):
        """config.parse of the values in force (with board `board_name`'s model_defaults), or a ConfigError
        whose message names the file, line and section when the value at fault came from the profile."""
        from . import boards

        try:
            return config.parse(self.raw, boards.get(board_name) if board_name else None)
        except ConfigError as e:
            raise ConfigError(self.locate(e)) from None

    def locate(self, error):
        """The message of `error`, prefixed with the profile line of the variable it names first, if any."""
        message = str(error)
        for match in re.finditer(r"\b([A-Z][A-Z0-9_]*)(?==|:)", message):
            if match.group(1) in config.VARIABLES:
                location = self.sources.get(match.group(1), (None, None))[1]
                return f"{location}: {message}" if location else message
        return message


def resolve(arguments, path, saving=False):
    """The build variables in force for a command line `arguments` ({NAME: string}, SCons ARGUMENTS) and the
    profiles in `path`. With `saving`, ENV= may name a profile the file does not have yet (`scons save`)."""
    profiles = load(path)
    arguments = dict(arguments)
    env_from = "ENV="
    if CHOOSER in arguments:
        env = arguments.pop(CHOOSER).strip() or None
    else:
        env, env_from = profiles.default_env(), "default_envs"
    if env and f"env:{env}" not in profiles.sections and not saving:
        if not profiles.exists:
            raise ConfigError(f"ENV={env}: there is no {profiles.shown}; write one with `scons save ENV={env} "
                              "VAR=value ...` or leave ENV= out")
        if env_from == "default_envs":
            raise ConfigError(f"{profiles.where(TOOL_SECTION, 'DEFAULT_ENVS')}: default_envs names {env!r}, but "
                              f"the file has no [env:{env}]; known profiles: {_names(profiles.envs())}")
        from .suggest import did_you_mean

        hint = did_you_mean(env, profiles.envs(), "did you mean ENV={}? ")
        raise ConfigError(f"ENV={env}: {profiles.shown} has no [env:{env}]; {hint}known profiles: "
                          f"{_names(profiles.envs())} (or write it with `scons save ENV={env} VAR=value ...`)")
    chain = [COMMON] if COMMON in profiles.sections else []
    if env and f"env:{env}" in profiles.sections:
        chain += profiles._chain(env)
    raw, sources = {}, {}
    for section in chain:
        for key, (value, line) in profiles.sections[section].items():
            if key in config.VARIABLES:
                raw[key] = _one_line(key, value)
                sources[key] = (f"{profiles.shown} [{section}]",
                                f"{profiles.shown}:{line} [{section}]" if line else f"{profiles.shown} [{section}]")
    for key, value in arguments.items():
        raw[key] = value
        sources[key] = (COMMAND_LINE, None)
    explicit_build_dir = "BUILD_DIR" in raw
    if env and not explicit_build_dir:
        # Each profile builds in its own folder, as PlatformIO's .pio/build/<env>: switching between two
        # profiles of one board then rebuilds nothing (they shared build/<BOARD>/ and retrained every time).
        raw["BUILD_DIR"] = os.path.join(config.VARIABLES["BUILD_DIR"][0], env)
        sources["BUILD_DIR"] = (f"profile {env}'s own folder", None)
    model = raw.get("MODEL", "").strip()
    if model and not explicit_build_dir:
        # And each MODEL= in its own folder (inside the profile's): switching between two models rebuilds
        # neither (they shared build/<BOARD>/ and regenerated everything at each switch).
        raw["BUILD_DIR"] = os.path.join(raw.get("BUILD_DIR", config.VARIABLES["BUILD_DIR"][0]), model_folder(model))
        sources["BUILD_DIR"] = (f"MODEL={model}'s own folder" + (f" in profile {env}'s" if env else ""), None)
    return Resolved(profiles, env, env_from, raw, sources)


def model_folder(model):
    """The build folder's name for a MODEL= file: readable (its stem) and stable (a digest of its absolute path,
    so that two files with one name, models/a/kws.tflite and models/b/kws.tflite, never share a folder)."""
    path = os.path.abspath(model)
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", os.path.splitext(os.path.basename(path))[0]).strip("._") or "model"
    digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"model-{stem[:40]}-{digest}"


def _one_line(key, value):
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    if key in LIST_VARIABLES:
        return ",".join(item.strip(",") for item in lines)
    return " ".join(lines)


def save(path, arguments, dry_run=False):
    """Writes the command line's variables (`arguments`, with ENV=NAME) into [env:NAME] of `path`: keys it
    gives replace the section's, its other keys, sections and comments stay. Returns what it wrote.

    configparser would rewrite the whole file without its comments, so the section is edited as lines; the
    result is read back and must give exactly the values written (else nothing is written)."""
    arguments = dict(arguments)
    name = (arguments.pop(CHOOSER, "") or "").strip()
    if not name:
        raise ConfigError("`scons save` needs ENV=NAME, the profile to write, e.g. scons save ENV=mega-tiny "
                          "BOARD=mega EPOCHS=5")
    if not _PROFILE_NAME.fullmatch(name):
        raise ConfigError(f"ENV={name!r} is not a profile name; use letters, digits and - _ . +")
    if not arguments:
        raise ConfigError(f"`scons save ENV={name}` was given no variables to save; add them, e.g. "
                          f"scons save ENV={name} EPOCHS=5")
    config.check_variable_names(arguments)
    profiles = load(path)
    text = ""
    if profiles.exists:
        text = _read_text(path)
    section = f"env:{name}"
    new_text = _with_values(text, section, arguments)
    check = Profiles(path, new_text)
    got = {k: check.sections[section][k][0] for k in arguments}
    bad = [k for k in arguments if got[k] != arguments[k].strip()]
    if bad:
        raise ConfigError(f"{bad[0]}={arguments[bad[0]]!r} cannot be kept in an ini file as it is (a line break, "
                          f"or ' ;' / ' #', which start a comment there); pass it on the command line instead")
    written = "\n".join(f"  {_line(k, arguments[k])}" for k in arguments)
    verb = "updated" if section in profiles.sections else "added"
    if dry_run:     # scons -n
        return f"would have {verb} [{section}] in {profiles.shown} (scons -n: not written):\n{written}"
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tinyml-ini-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
        if profiles.exists:
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return f"{verb} [{section}] in {profiles.shown}:\n{written}"


def _line(key, value):
    return f"{key} = {value.strip()}" if value.strip() else f"{key} ="


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _with_values(text, section, values):
    """`text` with KEY = value lines for `values` in [section]: existing keys replaced where they are (with
    their continuation lines), new ones after the section's last line, the section appended if missing."""
    lines = text.splitlines()
    found = _scan(lines)
    headers = [(s, i) for kind, s, _, i in found if kind == "section"]
    start = next((i for s, i in headers if s == section), None)
    new = {k: _line(k, v) for k, v in values.items()}
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        header = [] if text else ["; Build profiles: `scons ENV=NAME` uses [env:NAME]; the command line overrides "
                                  "them (`scons -h` shows the values in force)."]
        lines += header + ([""] if lines or header else []) + [f"[{section}]"] + list(new.values())
        return "\n".join(lines) + "\n"
    end = next((i for s, i in headers if i > start), len(lines))
    keys = [(k, i) for kind, s, k, i in found if kind == "key" and start < i < end]
    replace = {}
    for n, (key, i) in enumerate(keys):
        if key.upper() in new and key.upper() not in replace.values():
            stop = keys[n + 1][1] if n + 1 < len(keys) else end
            # the key's continuation lines (indented), up to the next key, header, comment or blank line
            last = i
            while last + 1 < stop and lines[last + 1][:1].isspace() and lines[last + 1].strip() \
                    and lines[last + 1].strip()[0] not in "#;":
                last += 1
            replace[(i, last)] = key.upper()
    added = [line for key, line in new.items() if key not in replace.values()]
    insert_after = _last_content(lines, start, end)
    out, skip_to = [], -1
    spans = {i: (last, key) for (i, last), key in replace.items()}
    for i, line in enumerate(lines):
        if i <= skip_to:
            continue
        if i in spans:
            skip_to, key = spans[i]
            # the key as the file spells it, and its comment after the value, stay
            written = _KEY.match(line.strip()).group("key").strip()
            comment = re.search(r"\s[;#].*$", lines[i])
            out.append(new[key].replace(key, written, 1) + (f"  {comment.group(0).strip()}" if comment else ""))
        else:
            skip_to = i
            out.append(line)
        if i <= insert_after <= skip_to:
            out += added
    return "\n".join(out) + "\n"


def _last_content(lines, start, end):
    """The index of [section]'s last non-blank, non-comment line (its header if it has none)."""
    for i in range(end - 1, start, -1):
        stripped = lines[i].strip()
        if stripped and stripped[0] not in "#;":
            return i
    return start


def _value_text(value):
    return str(value) if str(value).strip() else "(empty)"


def in_force(resolved, board_dicts):
    """[(NAME, value text, source text)] for every build variable: the values in force and where each comes
    from; a board's model_defaults apply per board, so with several boards a value may differ between them."""
    rows = []
    for name, (default, _) in config.VARIABLES.items():
        if name == CHOOSER:
            where = resolved.env_from if resolved.env else ""
            source = (COMMAND_LINE if where == "ENV=" else f"{resolved.profiles.shown} [{TOOL_SECTION}] "
                      "default_envs") if where else "no profile"
            rows.append((name, _value_text(resolved.env or ""), source))
            continue
        if name in resolved.raw:
            rows.append((name, _value_text(resolved.raw[name]), resolved.sources[name][0]))
            continue
        per_board = []
        for board in board_dicts:
            model_defaults = board.get("model_defaults") or {}
            if name in model_defaults:
                per_board.append((board["name"], _value_text(model_defaults[name]), "board"))
            else:
                per_board.append((board["name"], _value_text(default), BUILT_IN))
        kinds = set((value, kind) for _, value, kind in per_board)
        if not per_board or kinds == {(_value_text(default), BUILT_IN)}:
            rows.append((name, _value_text(default), BUILT_IN))
        elif len(kinds) == 1:
            rows.append((name, per_board[0][1],
                         f"board default (boards.json: {', '.join(b for b, _, _ in per_board)})"))
        else:       # several boards, not all alike: each one's value
            rows.append((name, "; ".join(f"{b}: {v}" for b, v, _ in per_board),
                         "; ".join(f"{b}: {'board default (boards.json)' if k == 'board' else k}"
                                   for b, _, k in per_board)))
    return rows


def help_width():
    """Columns to wrap `scons -h` to: the terminal's ($COLUMNS first), within 72..118; 100 when not a terminal."""
    return min(max(shutil.get_terminal_size((100, 24)).columns, 72), 118)


def variables_help(resolved, board_dicts, width=100):
    """`scons -h`'s variable table: names aligned to the longest, each with its value in force and where that
    comes from (aligned too; a longer value pushes only its own row's source), its help wrapped under it."""
    rows = in_force(resolved, board_dicts)
    helps = {name: help_text for name, (_, help_text) in config.VARIABLES.items()}
    name_width = max(len(name) for name, _, _ in rows)
    value_width = min(max(len(value) for _, value, _ in rows), 20)
    indent = " " * (2 + name_width + 2)
    out = [f"  {'NAME':<{name_width}}  {'VALUE':<{value_width}}  FROM"]
    for name, value, source in rows:
        # one line, however long (a path): a row is found by its name, and a file name is not cut in two
        out.append(f"  {name:<{name_width}}  {value:<{value_width}}  {source}")
        out.append(textwrap.fill(helps[name], width, initial_indent=indent + "  ", subsequent_indent=indent + "  ",
                                 break_on_hyphens=False))
    return "\n".join(out)


def profiles_help(resolved):
    """`scons -h`'s list of the profiles in the file, the chosen one marked."""
    profiles = resolved.profiles
    if not profiles.exists:
        return (f"Profiles: none ({profiles.shown} does not exist; `scons save ENV=NAME VAR=value ...` writes "
                "one)")
    envs = profiles.envs()
    lines = [f"Profiles in {profiles.shown} (choose with ENV=NAME; `scons save ENV=NAME VAR=value ...` "
             "writes one):"]
    column = max([len(e) for e in envs] + [0]) + 2
    for env in envs:
        values = profiles.sections[f"env:{env}"]
        text = " ".join(f"{k}={_one_line(k, v)}" for k, (v, _) in values.items() if k in config.VARIABLES)
        if "EXTENDS" in values:
            text += f" (extends {values['EXTENDS'][0]})"
        mark = "*" if env == resolved.env else " "
        lines.append(f"  {mark} {env:<{column}}{text or '(no values)'}")
    if not envs:
        lines.append("    (none)")
    chosen = (f"ENV={resolved.env}" + (" (default_envs)" if resolved.env_from == "default_envs" else "")
              if resolved.env else "none")
    common = f"; [{COMMON}] applies to every build" if COMMON in profiles.sections else ""
    lines.append(f"  in force: {chosen}{common}")
    return "\n".join(lines)
