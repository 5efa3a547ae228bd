"""`python -m codegen.lowering`: the supported TFLite ops by family (the README's list)."""
from .registry import markdown_op_list

print(markdown_op_list())
