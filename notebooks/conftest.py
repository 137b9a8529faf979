"""Which lessons the test run executes, and what nbval compares.

Every lesson listed in PENDING exists and is complete in its text, but has not yet passed a
full run on the 2-core CPU within its time budget (see README, "Lesson status"). They are
kept out of `make test` until they do, so that a green run means every executed lesson
passed; run one by hand with `pytest --nbval-lax notebooks/NN_x.ipynb`.

Checked cells (tagged `nbval-check-output` in the cell's metadata, out of the learner's way)
compare what they print to stdout and display. Their stderr is not compared: library warnings there carry install paths and depend on the CPU
(bitsandbytes, for one, warns only where AVX512-BF16 exists), so they differ between
machines without the lesson being any different.
"""

PENDING: list[str] = []  # none at present

collect_ignore = PENDING


def pytest_collection_modifyitems(items):
    for item in items:
        notebook = item.parent
        skip = getattr(notebook, "skip_compare", None)
        if skip is not None and "stderr" not in skip:
            notebook.skip_compare = skip + ("stderr",)
