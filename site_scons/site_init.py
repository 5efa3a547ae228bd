# Makes the repo's `codegen` package importable from SConstruct and the site tools when SCons runs from a
# checkout (an installed copy of the project needs nothing here).
import os
import sys

_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _root not in sys.path:
    sys.path.insert(0, _root)
