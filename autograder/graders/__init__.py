"""The graders of every assignment: ``<assignment id>/test_<unit>.py``, one pytest module per graded unit."""
