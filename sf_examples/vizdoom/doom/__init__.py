"""ViZDoom envs, their flags and model, laid out as sample-factory 2.x users import them."""
