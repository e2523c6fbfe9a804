"""doom_basic with four seeds, the way sample-factory 2.x reports its curves.

python -m sample_factory.launcher.run --run=sf_examples.vizdoom.experiments.doom_basic_seeds --max_parallel=2
"""

from sample_factory.launcher.run_description import Experiment, ParamGrid, RunDescription

_params = ParamGrid([("seed", [0, 1111, 2222, 3333])])

_experiments = [
    Experiment(
        "doom_basic",
        "python -m sf_examples.vizdoom.train_vizdoom --env=doom_basic --train_for_env_steps=500000",
        _params.generate_params(randomize=False),
    ),
]

RUN_DESCRIPTION = RunDescription("doom_basic_seeds", experiments=_experiments)
