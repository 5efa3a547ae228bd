"""Reading the Model Library Format tar that codegen/emit/mlf.py writes, for the stages that consume it (sketch,
C library export, memory report, simulation). Light on purpose: no TVM or numpy, importable at build-file
read time."""
import json
import os
import tarfile

from ..errors import PipelineError

# Bumped whenever the generated C or metadata.json changes shape: part of the mlf stage's parameters, so an MLF
# built by an earlier release of this generator is rebuilt rather than trusted.
MLF_VERSION = 8
SOURCE_DIRS = ("codegen/host/src/", "codegen/host/include/")


def model_files(model_name="default"):
    """The C files an MLF of `model_name` holds (fixed names, so consumers can declare them up front)."""
    return [f"{model_name}_lib0.c", f"{model_name}_lib1.c", f"{model_name}_lib2.c", f"tvmgen_{model_name}.h"]


def read_mlf(mlf_tar, model_name=None):
    """(metadata, {file name: bytes}) of the model's C sources and header; exactly model_files() or an error.

    `model_name`: the one the consumer expects; None takes the archive's own (metadata.json).
    """
    files, metadata = {}, None
    try:
        with tarfile.open(mlf_tar) as tar:
            for member in tar.getmembers():
                name = member.name.lstrip("./")
                if name == "metadata.json":
                    metadata = json.load(tar.extractfile(member))
                elif member.isfile() and name.startswith(SOURCE_DIRS):
                    files[os.path.basename(name)] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, json.JSONDecodeError) as e:
        reason = " ".join(str(e).split())            # tarfile's reasons span lines; keep one error line
        raise PipelineError(f"cannot read the MLF tar {mlf_tar} ({reason}); rebuild it with `scons mlf`") from None
    if metadata is None:
        raise PipelineError(f"{mlf_tar}: no metadata.json, not a Model Library Format archive; rebuild it with "
                            "`scons mlf`")
    wanted = set(model_files(model_name or metadata.get("model_name", "default")))
    if set(files) != wanted:
        raise PipelineError(f"{mlf_tar}: holds {sorted(files)}, expected exactly {sorted(wanted)}; rebuild it "
                            "with `scons mlf`")
    return metadata, files
