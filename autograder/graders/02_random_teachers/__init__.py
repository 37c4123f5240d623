"""The graders of Assignment 2, Random teachers are good teachers."""
