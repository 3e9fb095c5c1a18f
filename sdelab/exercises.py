"""The notebooks' exercises: the check tests the student's own answer, and falls back on the hidden solution only
while the student's cell is still the stub (so running a notebook top to bottom, as CI does, checks the solutions).

Every exercise has three cells, in this order:

1. the student's cell, a stub: ``my_slope = ...`` or a ``def my_step(...): ...`` whose body is ``...``;
2. the hidden solution, under other names (``solution_slope``, ``solution_step``): it never overwrites the student's;
3. the check: ``slope = answer(my_slope, solution_slope, "my_slope")``, then ``check(...)`` on ``slope``.
"""

from __future__ import annotations

import dis
from typing import Any


class ExerciseFailed(AssertionError):
    """A check that the answer did not pass; its message says what was expected."""


def is_stub(value: Any) -> bool:
    """True for the unanswered stubs: ``...`` (Ellipsis), or a function whose body does nothing (``...``, ``pass``
    or a docstring alone) and so returns None without computing anything."""
    if value is Ellipsis:
        return True
    if callable(value) and hasattr(value, "__code__"):
        ops = [i for i in dis.get_instructions(value) if i.opname not in ("RESUME", "NOP", "CACHE")]
        returns_none = all(i.opname in ("RETURN_VALUE", "RETURN_CONST", "LOAD_CONST") for i in ops)
        return returns_none and all(i.argval is None for i in ops if i.opname in ("RETURN_CONST", "LOAD_CONST"))
    return False


def answer(student: Any, solution: Any, name: str) -> Any:
    """The answer to check: the student's, or the solution's while ``student`` is still the stub (said plainly)."""
    if is_stub(student):
        print(f"{name} is not answered yet (it is still the stub): the check below runs on the hidden solution. "
              f"Write your answer in the cell that defines {name}, run it, then run the check again.")
        return solution
    print(f"checking your {name}")
    return student


def check(passed: bool, success: str, failure: str) -> None:
    """Print ``success`` if ``passed``, else raise ``ExerciseFailed(failure)``: the failure says what was expected."""
    if not passed:
        raise ExerciseFailed(failure)
    print(f"correct: {success}")
