"""Which lessons the test run executes.

Every lesson listed in PENDING exists and is complete in its text, but has not yet passed a
full run on the 2-core CPU within its time budget (see README, "Lesson status"). They are
kept out of `make test` until they do, so that a green run means every executed lesson
passed; run one by hand with `pytest --nbval-lax notebooks/NN_x.ipynb`.
"""

PENDING = [
    "03_training_parameters.ipynb",
    "04_lora.ipynb",
    "05_qlora.ipynb",
    "07_full_and_freeze.ipynb",
    "08_dpo.ipynb",
    "09_multitask_and_scale.ipynb",
    "11_hyperparameter_lab.ipynb",
]

collect_ignore = PENDING
