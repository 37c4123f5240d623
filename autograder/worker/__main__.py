"""python -m autograder.worker: the grading process inside the sandbox (see :mod:`autograder.worker.process`)."""

import sys

from autograder.worker.process import main

sys.exit(main())
