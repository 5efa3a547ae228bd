"""`scons tune`: search the model settings (ARCH, ALPHA, SIZE, CHANNELS, DEPTH, EPOCHS, ...) for the most accurate
int8 model that fits one board's flash and RAM and a latency budget, with the real code generator in the loop.

Organised by concern, each module importing only those listed before it:
  settings   the TUNE_* build variables and their validation (codegen.config merges them into its table)
  space      the search space: `[tune]` profile keys or a board's default, validated, sampled through Optuna
  storage    where the Optuna study lives (a journal file under the build dir, or TUNE_STORAGE=postgresql://...)
             and the recovery of trials a killed worker left RUNNING
  untrained  `python -m codegen.tune.untrained`: an untrained Keras model + random calibration data (the probe)
  runner     one trial = ordinary scons builds in their own folder: the cheap probe, then the training build
  report     the progress line, the table, the Pareto plot and tune.json
  command    the `scons tune` and `scons tune save` entry points (SConstruct calls them)

No SCons import here; Optuna, TensorFlow and matplotlib are imported only when a study runs.
"""
