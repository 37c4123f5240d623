"""While any submission is graded nothing private of any assignment is readable, and a submission that exhausts its
memory is ``memory`` however that shows: killed by the kernel, stopped at its memory, or still retrying allocations
when its time runs out."""

from __future__ import annotations

import json
import re

import pytest

from autograder.assignment.course import Assignment, assignment_ids, grader_folders
from autograder.grading import engine as engine_module
from autograder.grading.engine import Engine, Settings
from autograder.grading.verdict import Status
from autograder.proof.submissions import RETRY_ALLOCATIONS, correct, edit, examples
from autograder.sandbox.isolation import Limits, probe

pytestmark = pytest.mark.slow

READ_EVERYTHING = '''
_sizes = []
for _index, _path in enumerate({paths!r}):
    try:
        with open(_path, "rb") as _handle:
            _sizes.append(f"{{_index}}={{len(_handle.read())}}")
    except Exception as _error:
        _sizes.append(f"{{_index}}={{type(_error).__name__}}")
raise ValueError("SIZES " + ";".join(_sizes) + " END")
'''


def private_targets(graded: Assignment) -> list:
    """Every assignment's solution, reference values, planted bugs and examples, and all of another assignment's
    graders (found here from the course's folders, not from the list the engine hides)."""
    targets = []
    for folder in grader_folders(graded.root):
        other = Assignment.load(folder.name) if folder.name in assignment_ids() else None
        targets += [other.solution_path] if other else []
        targets += [folder / name for name in ("reference_values.json", "mutants.py", "examples.py")]
        if folder != graded.graders_dir:
            targets += sorted(folder.glob("test_*.py")) + [folder / "cases.py"]
    return [path for path in targets if path.is_file()]


@pytest.mark.parametrize("assignment", assignment_ids(), indirect=True)
def test_no_private_file_of_any_assignment_is_readable_and_reading_one_is_tampering(assignment):
    isolation = probe()
    if not isolation.bubblewrap:
        pytest.skip("bubblewrap is not installed (make sandbox): private files are only reported, not hidden")
    targets = private_targets(assignment)
    assert len(assignment_ids()) > 1 and len(targets) > 8
    assert all(path.stat().st_size > 0 for path in targets)
    unit = next(iter(assignment.units))
    nb = edit(correct(assignment), unit, after=READ_EVERYTHING.format(paths=[str(p) for p in targets]))
    grader = Engine(assignment, Settings(Limits(timeout=240, memory_mb=2048)))
    try:
        verdict = grader.grade(json.dumps(nb).encode())
    finally:
        grader.close()
    found = re.search(r"SIZES (.*?) END", verdict.units[unit].cell_error)
    assert found, verdict.units[unit]
    sizes = dict(entry.split("=", 1) for entry in found[1].split(";"))  # index of the path -> bytes read, or error
    assert set(sizes) == {str(i) for i in range(len(targets))}
    readable = {str(targets[int(i)]): size for i, size in sizes.items() if size.isdigit() and size != "0"}
    assert readable == {}, "private files were readable"
    assert verdict.status == Status.TAMPERED
    told = " ".join(verdict.tampering)
    assert [str(p) for p in targets if str(p) not in told] == []
    assert verdict.units[unit].status == Status.TAMPERED and verdict.tests[f"test_{unit}_hidden"].points == 0


# memory exhausted inside a graded unit (a grader calls the function): allocations that hold memory and are retried
# when they fail, and (address space only) allocations that hold nothing and are retried until the time runs out
HOLDING = "bytearray(64 << 20)"
assert HOLDING in RETRY_ALLOCATIONS


@pytest.mark.parametrize("assignment", assignment_ids(), indirect=True)
def test_a_memory_bomb_inside_a_unit_is_memory_without_a_memory_cgroup_too(assignment, monkeypatch):
    """With this machine's limits every grading path grades the example ``memory-in-unit`` (test_class_grading.py,
    test_grading_paths.py); here the memory limit is only the address space, as on a machine without a memory cgroup."""
    monkeypatch.setattr(engine_module, "probe", lambda use: probe(use, cgroups=False))
    example = examples(assignment).EXAMPLES["memory-in-unit"]
    bombed = set(assignment.units) - example.honest
    cases = {"retried": example.build(assignment)}
    if assignment.id == assignment_ids()[0]:
        text = json.dumps(cases["retried"])
        assert text.count(HOLDING) == 1 and text.count("except MemoryError") == 1
        cases["untouched"] = json.loads(text.replace(HOLDING, "torch.empty(1 << 26)").replace(
            "except MemoryError", "except RuntimeError"))
    grader = Engine(assignment, Settings(Limits(timeout=60, memory_mb=1024)))
    try:
        verdicts = {name: grader.grade(json.dumps(nb).encode()) for name, nb in cases.items()}
    finally:
        grader.close()
    for name, verdict in verdicts.items():
        statuses = {unit: info.status for unit, info in verdict.units.items()}
        assert verdict.status == Status.MEMORY, (name, statuses)
        assert {unit for unit, status in statuses.items() if status != Status.OK} == bombed, (name, statuses)
        assert all("memory" in verdict.units[unit].message for unit in bombed), name
