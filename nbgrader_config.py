"""nbgrader configuration of the course: instructor notebooks in solutions/, student notebooks in assignments/.

With it, nbgrader's own commands are the course's: ``nbgrader generate_assignment <id>`` makes the student
notebook (``python -m autograder release`` runs exactly that), and ``nbgrader autograde <id>`` grades every
submission with the course's grading engine (sandboxed, each unit on its own; see
autograder/commands/nbgrader_hooks.py): the same points per test cell as ``python -m autograder grade``
and ``python -m autograder autograde``.
"""

from autograder.commands.nbgrader_hooks import configure

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

configure(c)
