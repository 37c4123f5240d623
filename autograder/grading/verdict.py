"""The verdict on one submission, typed: its statuses, its test cells, its units, and the worker's report on a unit.

Every status a submission or a unit can have is a :class:`Status` (a ``str``, so it is written to JSON as the plain
string it always was). A :class:`Verdict` is what the engine hands out and what every command reads; its JSON
(:meth:`Verdict.to_json`, written by ``grade --json``, the class's ``*-autograde.json`` result files, the
gradebook's recorder) keeps exactly the keys and values it had as a dict, and :meth:`Verdict.from_json` reads it
back. :class:`UnitRun` is the worker's ``unit`` event, as the scoring reads it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields


class Status(enum.StrEnum):
    """What happened to a submission or one of its units (the value is what JSON files and reports show)."""

    meaning: str

    def __new__(cls, value: str, meaning: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    INVALID_NOTEBOOK = "invalid-notebook", "the file is no notebook of this assignment; nothing of it could be run"
    MISSING = "missing", "no file was submitted"
    TAMPERED = "tampered", "test cells, nbgrader metadata or the grader's functions were changed; scored zero"
    MEMORY = "memory", "the code used more memory than allowed and was stopped"
    TIMEOUT = "timeout", "the code ran out of time"
    CRASHED = "crashed", "the grading process ended (the code ended it, or the grader could not start or failed)"
    OK = "ok", "graded: every point is what the checks gave"
    NOT_GRADED = "not-graded", "the grader itself failed on this notebook; it is graded again on the next run"
    NOT_RECORDED = "not-recorded", "graded, but a step after grading failed (gradebook, feedback, result file)"


# a unit's (and a graded submission's) status: the first of these that applies
SEVERITY = (Status.TAMPERED, Status.MEMORY, Status.TIMEOUT, Status.CRASHED, Status.OK)
# statuses without an honest score (left out of the class's means; nbgrader records the staged notebook for them)
UNGRADED = (Status.MISSING, Status.INVALID_NOTEBOOK, Status.NOT_GRADED)


def _status(value) -> Status | None:
    return None if value is None else Status(value)


@dataclass
class TestResult:
    """One test cell's points."""

    __test__ = False  # not a pytest class

    unit: str
    kind: str = "hidden"  # "visible" or "hidden"
    points: float = 0.0
    max_points: float = 0.0
    passed: bool = False
    message: str = ""


@dataclass
class UnitResult:
    """One unit: its status, why when it is not ok, its graders' checks and the worker's visible-test outcomes."""

    part: str
    status: Status
    message: str = ""
    checks: list[dict] = field(default_factory=list)    # {"name", "passed", "message", ...} per check
    cell_error: str = ""
    seconds: float | None = None
    visible: dict[str, dict] = field(default_factory=dict)  # grade_id -> {"passed", "message"}

    @classmethod
    def from_json(cls, data: dict) -> UnitResult:
        return cls(**{**data, "status": Status(data["status"])})


@dataclass
class UnitRun:
    """The worker's ``unit`` event: how one unit's process ended and what it reported (``results`` is None when no
    result came back)."""

    unit: str
    abandoned: bool = False
    results: list[dict] | None = None
    visible: dict[str, dict] = field(default_factory=dict)
    cell_errors: list[dict] = field(default_factory=list)
    tampered: list[list] = field(default_factory=list)   # [owner unit or None, text]
    notices: list[list] = field(default_factory=list)    # [owner unit or None, text]
    internal_error: str | None = None
    killed: str | None = None                            # "time", "hung", "processes"
    out_of_memory: bool = False
    too_many_processes: bool = False
    memory_exhausted: bool = False
    memory_error: bool = False
    memory_mb: int | None = None
    limit: float = 0.0
    exit_code: int | None = None
    seconds: float | None = None

    @classmethod
    def from_event(cls, event: dict) -> UnitRun:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in event.items() if k in known and v is not None or k == "unit"})


# the keys of a verdict's JSON, in order; the optional ones are left out while None
_FRONT = ("student", "notebook")                          # a class's result: whose, which file
_BACK = ("seconds", "recording", "graded_status", "not_recorded")


@dataclass
class Verdict:
    """The verdict on one submission (and, in a class, what happened after: ``student``, ``recording``, ...)."""

    assignment: str = ""
    sha256: str = ""
    grader: str = ""                                     # the assignment's fingerprint
    problems: list[str] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    cells: dict = field(default_factory=dict)           # unit -> the student's source (None: no such cell)
    answers: dict = field(default_factory=dict)         # grade_id of a hand-graded cell -> the student's text
    units: dict[str, UnitResult] = field(default_factory=dict)
    tests: dict[str, TestResult] = field(default_factory=dict)
    internal_errors: dict[str, str] | None = None       # unit -> the grader's traceback
    diagnoses: dict[str, list[str]] = field(default_factory=dict)  # unit -> the planted bugs its failures match
    status: Status = Status.OK
    score: float = 0.0
    max_score: float = 0.0
    manual_max: float = 0.0
    run: dict = field(default_factory=dict)             # facts about the run (without the worker's stderr)
    seconds: float | None = None
    student: str | None = None
    notebook: str | None = None
    recording: list[str] | None = None                  # notes on how nbgrader recorded it
    graded_status: Status | None = None                 # the verdict's status when it is not-recorded
    not_recorded: list[str] | None = None               # the steps after grading that failed, and why
    extra: dict = field(default_factory=dict)           # keys of a JSON file this version does not know

    def unit_points(self, units=None) -> dict[str, tuple[float, float]]:
        """Points earned and possible per unit (``units``: the assignment's, for a verdict that has none)."""
        points: dict[str, list[float]] = {unit: [0.0, 0.0] for unit in (units or self.units)}
        for test in self.tests.values():
            points.setdefault(test.unit, [0.0, 0.0])
            points[test.unit][0] += test.points
            points[test.unit][1] += test.max_points
        return {unit: (p, m) for unit, (p, m) in points.items()}

    def to_json(self) -> dict:
        """The verdict as JSON-ready data (statuses as plain strings; optional keys only when set, ``diagnoses``
        only when a unit has one)."""
        out = {key: getattr(self, key) for key in _FRONT if getattr(self, key) is not None}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in (*_FRONT, *_BACK, "extra") or f.name == "internal_errors" and value is None \
                    or f.name == "diagnoses" and not value:
                continue
            if f.name == "units":
                value = {u: {**vars(info), "status": str(info.status)} for u, info in value.items()}
            elif f.name == "tests":
                value = {g: dict(vars(test)) for g, test in value.items()}
            out[f.name] = str(value) if isinstance(value, Status) else value
        for key in _BACK:
            value = getattr(self, key)
            if value is not None:
                out[key] = str(value) if isinstance(value, Status) else value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict) -> Verdict:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values["units"] = {u: UnitResult.from_json(info) for u, info in data.get("units", {}).items()}
        values["tests"] = {g: TestResult(**test) for g, test in data.get("tests", {}).items()}
        values["status"] = Status(data.get("status", Status.OK))
        values["graded_status"] = _status(data.get("graded_status"))
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})
