"""Does a lesson run on the device it picks? A static reading of its code cells.

On a machine without a GPU, ``get_device()`` is the CPU, so a lesson that forgot ``.to(device)``
still runs and nbval still passes; on a GPU it trains on the CPU, or fails where a CPU model
meets CUDA tensors. These two rules catch that on any machine:

- ``trained_off_device`` (in notebook_flow.py): every model given to ``fit(...)`` is one the
  lesson built with ``.to(device)``. The argument is followed back through the lesson's
  assignments, ``for`` loops, dicts, its own functions' ``return``s and, for a function's
  parameter, every call.
- ``built_off_device`` (here): in a cell that uses ``device``, every module built (a class from
  ``torch.nn``, ``course_utils`` or the notebook, or a builder function annotated to return
  one) and every random tensor is made on the device (``.to(device)`` or ``device=``). Cells
  without ``device`` are CPU-only demos (shapes, an inline module against the tested one).

Like checks.py, test files import this with ``from notebook_devices import ...``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import typing

from torch import nn

RANDOM_TENSORS = {"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "normal"}
KEEPS_DEVICE = {"eval", "train", "requires_grad_", "float", "double", "contiguous"}
NOTEBOOK_MODULE = object()  # marks a class the notebook defines on nn.Module


def parse_cells(nb) -> list[ast.Module]:
    """One tree per code cell; every node knows its cell, parent and enclosing function."""
    trees = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = [_no_magic(line) for line in cell.source.splitlines()]
        tree = ast.parse("\n".join(lines))
        _annotate(tree, index, parent=None, scope=None)
        trees.append(tree)
    return trees


def _no_magic(line: str) -> str:
    stripped = line.lstrip()
    magic = stripped.startswith(("%", "!"))  # IPython: %time, !ls
    return line[: len(line) - len(stripped)] + "pass" if magic else line


def _annotate(node, cell, parent, scope):
    node.cell, node.parent, node.scope = cell, parent, scope
    inner = node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else scope
    for child in ast.iter_child_nodes(node):
        _annotate(child, cell, node, inner)


def order(node) -> tuple[int, int, int]:
    return node.cell, getattr(node, "lineno", 0), getattr(node, "col_offset", 0)


def is_method_call(node, names) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
    )


def _mentions_device(node) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id == "device")
        or (isinstance(n, ast.Attribute) and n.attr == "device")
        for n in ast.walk(node)
    )


def moves_to_device(expr) -> bool:
    """``expr`` is ``something.to(device)``, maybe followed by ``.eval()`` and the like."""
    while is_method_call(expr, KEEPS_DEVICE):
        expr = expr.func.value
    return is_method_call(expr, {"to"}) and any(
        _mentions_device(a) for a in [*expr.args, *(k.value for k in expr.keywords)]
    )


def made_on_device(call: ast.Call) -> bool:
    """The value of ``call`` is made with ``device=`` or goes straight into ``.to(device)``."""
    if any(k.arg == "device" for k in call.keywords):
        return True
    node = call
    while isinstance(node.parent, ast.Attribute) and _calls(node.parent.parent, node.parent):
        node = node.parent.parent  # climb `x.method(...)` calls: x.float().to(device)
        if moves_to_device(node):
            return True
        if not is_method_call(node, KEEPS_DEVICE):
            return False
    return False


def _calls(node, func) -> bool:
    return isinstance(node, ast.Call) and node.func is func


# ----------------------------------------------------------------------------- what builds a module


def imported_names(trees) -> dict[str, object]:
    """What the notebook's imports bind (``nn``, ``F``, ``GPT``, ...), and its own modules."""
    names: dict[str, object] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):  # import torch.nn.functional as F; import torch
                for alias in node.names:
                    name = alias.name if alias.asname else alias.name.split(".")[0]
                    names[alias.asname or name] = importlib.import_module(name)
            elif isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    names[alias.asname or alias.name] = getattr(module, alias.name, None)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                if any(builds_a_module(resolve(base, names)) for base in node.bases):
                    names[node.name] = NOTEBOOK_MODULE
    return names


def resolve(expr, names):
    """The object a callee like ``nn.Linear`` or ``GPT`` stands for, or None."""
    if isinstance(expr, ast.Name):
        return names.get(expr.id)
    if isinstance(expr, ast.Attribute):
        owner = resolve(expr.value, names)
        return getattr(owner, expr.attr, None) if owner is not None else None
    return None


def builds_a_module(obj) -> bool:
    """A module class, or a plain function annotated to return one (build_attention_model).
    Not a method such as ``MultiHeadAttention.from_torch``: it copies a module and keeps its
    device."""
    if obj is NOTEBOOK_MODULE:
        return True
    if isinstance(obj, type):
        return issubclass(obj, nn.Module)
    if inspect.isfunction(obj):
        try:
            returned = typing.get_type_hints(obj).get("return")
        except Exception:  # an annotation that does not resolve: not a builder we know
            return False
        return isinstance(returned, type) and issubclass(returned, nn.Module)
    return False


def _is_random_tensor(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in RANDOM_TENSORS
        and isinstance(func.value, ast.Name)
        and func.value.id == "torch"
    )


def _is_part_of_another_call(call: ast.Call) -> bool:
    """An argument of another call (nn.Sequential(nn.Linear(...)), attention=Attention(...)):
    the outer value is the one that must be on the device."""
    parent = call.parent
    return isinstance(parent, ast.keyword) or (isinstance(parent, ast.Call) and call in parent.args)


def _inside_a_class(node) -> bool:
    while node is not None:
        if isinstance(node, ast.ClassDef):
            return True
        node = node.parent
    return False


def built_off_device(nb) -> list[str]:
    """Modules and random tensors made on the CPU in cells that use ``device``."""
    trees = parse_cells(nb)
    names = imported_names(trees)
    problems = []
    for tree in trees:
        if not any(isinstance(n, ast.Name) and n.id == "device" for n in ast.walk(tree)):
            continue
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            if _is_random_tensor(call):
                kind = "random tensor"
            elif builds_a_module(resolve(call.func, names)) and not (
                _is_part_of_another_call(call) or _inside_a_class(call)
            ):
                kind = "module"
            else:
                continue
            if not made_on_device(call):
                problems.append(
                    f"cell {tree.cell}: {ast.unparse(call)[:70]} makes a {kind} on the CPU in a "
                    "cell that uses `device`: add .to(device)"
                )
    return problems
