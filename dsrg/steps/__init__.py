"""The pipeline steps (paper Figure 2 and Section 4.1), one module each, each with ``run(cfg)``.

train_cls -> seeds -> train_seg (DSRG step 1) -> pseudo_labels -> retrain -> evaluate; ``pipeline``
runs them in order, skipping the steps already complete (see :mod:`dsrg.runs`).
"""
