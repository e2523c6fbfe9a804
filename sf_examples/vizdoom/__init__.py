"""ViZDoom example envs: `python -m sf_examples.vizdoom.train_vizdoom --env=doom_basic --experiment=basic`."""
