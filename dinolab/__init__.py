"""dinolab: the course's experiment bed for DINO and the random-teacher study (after the seed's ``dinopl``).

    python -m dinolab --help                                        every option, by group
    python -m dinolab --from_json configs/random_teacher.json --n_epochs 5 --enc vgg11_bn
    python -m dinolab sweep --from_json configs/random_teacher.json --grid seed=0,1,2 --jobs 2

Defaults are Assignment 1's full DINO; a JSON file overrides them; command-line flags override the JSON. The bed
holds no algorithm of its own: the losses, the teacher, the student initializations, the distillation loop and the
probes are the course's solution notebooks' (loaded from ``solutions/`` by :mod:`dinolab.code`), the networks and the
views are :mod:`dinocourse`'s. It is an instructor's tool (students do not get ``solutions/``); a student can point
``--code`` at their own finished notebooks instead.
"""
