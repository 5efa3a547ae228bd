"""Installed as the `tinyml_scons` package: the SCons tools of this project.

    import tinyml_scons
    env = Environment(tools=["default", "tinyml"], toolpath=[tinyml_scons.TOOLPATH])
"""
import os

TOOLPATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site_tools")
