"""A CartPole learning-rate sweep, 3 rates x 2 seeds, a minute each on 2 cores.

python -m sample_factory.launcher.run --run=sf_examples.experiments.cartpole_lr_sweep --max_parallel=2
python -m sample_factory.launcher.results --run=sf_examples.experiments.cartpole_lr_sweep --plot=lr.png --group_by=learning_rate
"""

from sample_factory.launcher.run_description import Experiment, ParamGrid, RunDescription

_params = ParamGrid(
    [
        ("seed", [1, 2]),
        ("learning_rate", [1e-4, 3e-4, 1e-3]),
    ]
)

_experiments = [
    Experiment(
        "cartpole_lr",
        "python -m sf_examples.train_gym_env --env=CartPole-v1 --num_workers=1 --train_for_env_steps=200000",
        _params.generate_params(randomize=False),
    ),
]

RUN_DESCRIPTION = RunDescription("cartpole_lr_sweep", experiments=_experiments)
