"""Where a model given to ``fit(...)`` comes from, followed back through a lesson's code: the
first of the two device rules of notebook_devices.py (whose docstring says why)."""

from __future__ import annotations

import ast

from notebook_devices import is_method_call, moves_to_device, order, parse_cells


class Flow:
    """Where a value in the notebook comes from: assignments, loops, functions and their calls."""

    def __init__(self, trees):
        nodes = [n for tree in trees for n in ast.walk(tree)]
        self.bindings = []  # (node, target text, value, how): how is "value" or an element index
        self.functions = {n.name: n for n in nodes if isinstance(n, ast.FunctionDef)}
        self.calls = [n for n in nodes if isinstance(n, ast.Call)]
        for node in nodes:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind(node, target, node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                self._bind(node, node.target, node.value)
            elif isinstance(node, ast.For):
                self._bind_loop(node)

    def _bind(self, node, target, value):
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            for t, v in zip(target.elts, value.elts):
                self._bind(node, t, v)
        else:
            self.bindings.append((node, ast.unparse(target), value, "value"))

    def _bind_loop(self, loop):
        targets = loop.target.elts if isinstance(loop.target, ast.Tuple) else [loop.target]
        for index, target in enumerate(targets):
            how = index if isinstance(loop.target, ast.Tuple) else None
            self.bindings.append((loop, ast.unparse(target), loop.iter, how))

    def on_device(self, expr, depth: int = 0) -> bool:
        """Whether the value of ``expr`` was built with ``.to(device)``."""
        if depth > 20:
            return False
        if moves_to_device(expr):
            return True
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
            function = self.functions.get(expr.func.id)
            returns = [n.value for n in ast.walk(function or ast.Pass()) if _returns(n)]
            return bool(returns) and all(self.on_device(r, depth + 1) for r in returns)
        if isinstance(expr, ast.Tuple | ast.List):
            return bool(expr.elts) and all(self.on_device(e, depth + 1) for e in expr.elts)
        if isinstance(expr, ast.Name | ast.Subscript | ast.Attribute):
            return self._bound_on_device(expr, depth + 1)
        return False

    def _bound_on_device(self, expr, depth) -> bool:
        scope = expr.scope
        if isinstance(expr, ast.Name) and scope is not None and expr.id in _parameters(scope):
            return self._passed_on_device(scope, expr.id, depth)
        text = ast.unparse(expr)
        earlier = [b for b in self.bindings if b[1] == text and order(b[0]) < order(expr)]
        local = [b for b in earlier if b[0].scope is scope] or [
            b for b in earlier if b[0].scope is None
        ]
        if not local:  # models["1 head"] with no assignment of its own: all of models
            return isinstance(expr, ast.Subscript) and self.all_on_device(expr.value, depth)
        _, _, value, how = max(local, key=lambda b: order(b[0]))
        if how == "value":
            return self.on_device(value, depth)
        return self._element_on_device(value, how, depth)

    def _element_on_device(self, iterable, index, depth) -> bool:
        """A loop variable: ``for m in ms``, ``for name, m in ms.items()``, ``ms.values()``."""
        if is_method_call(iterable, {"items"}):
            return index == 1 and self.all_on_device(iterable.func.value, depth)
        if is_method_call(iterable, {"values"}):
            return index is None and self.all_on_device(iterable.func.value, depth)
        return index is None and self.all_on_device(iterable, depth)

    def all_on_device(self, container, depth) -> bool:
        """Every value a dict, list or comprehension holds is on the device."""
        if isinstance(container, ast.Dict):
            values = container.values
        elif isinstance(container, ast.List | ast.Tuple | ast.Set):
            values = container.elts
        elif isinstance(container, ast.DictComp):
            values = [container.value]
        elif isinstance(container, ast.ListComp | ast.GeneratorExp):
            values = [container.elt]
        elif isinstance(container, ast.Name):
            earlier = [
                b for b in self.bindings if b[1] == container.id and b[3] == "value"
            ]  # the container's own (last) assignment
            return bool(earlier) and self.all_on_device(
                max(earlier, key=lambda b: order(b[0]))[2], depth + 1
            )
        else:
            return False
        return bool(values) and all(self.on_device(v, depth + 1) for v in values)

    def _passed_on_device(self, function, parameter, depth) -> bool:
        """A function's parameter: every call of the function passes a model on the device."""
        position = _parameters(function).index(parameter)
        calls = [
            c for c in self.calls if isinstance(c.func, ast.Name) and c.func.id == function.name
        ]
        passed = []
        for call in calls:
            by_name = {k.arg: k.value for k in call.keywords}
            arg = call.args[position] if position < len(call.args) else by_name.get(parameter)
            passed.append(arg)
        return bool(passed) and all(a is not None and self.on_device(a, depth) for a in passed)


def _returns(node) -> bool:
    return isinstance(node, ast.Return) and node.value is not None


def _parameters(function) -> list[str]:
    return [a.arg for a in [*function.args.posonlyargs, *function.args.args]] + [
        a.arg for a in function.args.kwonlyargs
    ]


def trained_off_device(nb) -> list[str]:
    """Models given to ``fit(...)`` that the lesson did not build with ``.to(device)``."""
    trees = parse_cells(nb)
    flow = Flow(trees)
    problems = []
    for call in flow.calls:
        if isinstance(call.func, ast.Name) and call.func.id == "fit" and call.args:
            model = call.args[0]
            if not flow.on_device(model):
                problems.append(
                    f"cell {call.cell}: fit({ast.unparse(model)}, ...) trains a model that is "
                    "not built with .to(device): on a GPU it would train on the CPU"
                )
    return problems
