"""The exercises' checks test the student's answer, and fall back on the solution only for an untouched stub."""

import pytest

from sdelab.exercises import ExerciseFailed, answer, check, is_stub


def stub(x, y):
    ...


def stub_with_docstring(x):
    """Write Eq. 6 here."""


def stub_pass(x):
    pass


def written(x, y):
    return x + y


def returns_none_after_work(x):
    x.append(1)


def test_stubs_are_recognised():
    assert is_stub(...)
    assert is_stub(stub) and is_stub(stub_with_docstring) and is_stub(stub_pass)
    assert is_stub(lambda: None)


def test_answers_are_not_stubs():
    assert not is_stub(written)
    assert not is_stub(returns_none_after_work)
    assert not is_stub(lambda x: x)
    for value in [0, 0.0, None, "", False, [], -1.0, "eta=0"]:
        assert not is_stub(value)


def test_answer_uses_the_student_unless_stub(capsys):
    assert answer(0.5, 1.0, "my_slope") == 0.5
    assert "checking your my_slope" in capsys.readouterr().out
    assert answer(..., 1.0, "my_slope") == 1.0
    assert "not answered yet" in capsys.readouterr().out
    assert answer(stub, written, "my_step") is written
    assert answer(written, stub, "my_step") is written


def test_check_raises_on_a_wrong_answer(capsys):
    check(True, "the slope is -1", "expected -1")
    assert "correct: the slope is -1" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="expected -1"):
        check(False, "the slope is -1", "expected -1")
