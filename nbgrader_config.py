"""nbgrader configuration of the DINO course: instructor notebooks in solutions/, student notebooks in assignments/.

Regenerate the student notebooks with `make release` (= `python -m autograder release`), which runs
`nbgrader generate_assignment` with this file.
"""

from autograder.release import STUB, preprocessors

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "dino-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "results", "*.pth"]

# the student version: solution regions become a stub that raises (named by autograder.release.NameStubs)
c.ClearSolutions.code_stub = {"python": STUB}
c.ClearSolutions.text_stub = "*YOUR ANSWER HERE*"
c.GenerateAssignment.preprocessors = preprocessors()

# autograding: the notebook picks its grading budget from NBGRADER_EXECUTION; one cell never needs minutes
c.Execute.timeout = 300
