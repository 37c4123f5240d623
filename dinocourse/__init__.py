"""The DINO course's Python package: the data layer, the sample builder, the notebook runner and the demo."""
