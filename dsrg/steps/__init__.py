"""The pipeline steps (paper Figure 2 and Section 4.1), one module each, each with ``run(cfg, resume)``.

train_cls -> seeds -> train_seg (DSRG step 1) -> pseudo_labels -> retrain -> evaluate; ``pipeline`` runs
them in order, skipping the steps already complete; ``dry_run`` says what it would do, ``summary`` what a
run measured. The steps are listed once, in :data:`dsrg.run.folders.STEPS`. What every step sets up is
:mod:`dsrg.run.context`, the networks it builds :mod:`dsrg.run.networks`, the loop of the steps that label a
split :mod:`dsrg.run.labelling`.
"""
