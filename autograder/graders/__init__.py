"""The graders of Assignment 1: one pytest module per graded unit (``UNIT`` names it)."""
