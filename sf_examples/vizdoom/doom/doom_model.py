"""The Doom model under sample-factory 2.x's name: `make_vizdoom_encoder(cfg, obs_space)`.

Doom observations are a Dict of the screen (`obs`) and, in the battles and matches, `measurements`;
2.x's VizdoomEncoder runs a conv encoder on the screen and an MLP on the measurements (where there
are any) and concatenates them, which is what the library's default encoder does with any such Dict. Registering this factory, as the
course does, therefore trains the same model as registering nothing.
"""

from __future__ import annotations

from sample_factory.model.encoder import Encoder, MultiInputEncoder


def make_vizdoom_encoder(cfg, obs_space) -> Encoder:
    return MultiInputEncoder(cfg, obs_space)
