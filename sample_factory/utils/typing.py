"""Type aliases that sample-factory 2.x scripts annotate with (`from sample_factory.utils.typing import Config`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from sample_factory.utils.attr_dict import AttrDict

Config = argparse.Namespace | AttrDict
StatusCode = int
PolicyID = int
Device = str
MpQueue = Any
MpLock = Any
Env = Any
ObsSpace = gym.spaces.Space | gym.spaces.Dict
ActionSpace = gym.spaces.Space
CreateEnvFunc = Callable[[str, Config | None, AttrDict | None, str | None], Env]
ActionDistribution = Any
