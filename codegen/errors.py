"""The one exception type every stage raises for problems a user can fix.

The SCons glue prints its message as the single error line of a failed build, so each message names the input
and says what to do; anything else escaping a stage is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    pass


class ConfigError(PipelineError):
    """A build variable (EPOCHS=, ALPHA=, ...) has a value the pipeline cannot use."""


class ModelError(PipelineError):
    """The .tflite file cannot be turned into C; the message says why and what to do."""
