"""Action spaces of the Doom envs: groups of mutually exclusive buttons, turned into gymnasium spaces.

A Doom "action" is a vector with one value per available button. Here the buttons come in
*groups* of mutually exclusive choices, each with an implicit "none":
`(("MOVE_LEFT", "MOVE_RIGHT"), ("ATTACK",))` means "left, right or neither" x "attack or not".

Three kinds of gymnasium space are built from the same groups:

- `discrete`: one Discrete over every combination (3 x 2 = 6 above): what the simple
  scenarios use, a single softmax over few actions learns fastest;
- `multidiscrete`: one Discrete per group, as `MultiDiscrete([3, 2])`: the harder scenarios
  with many buttons, where the product would be too large;
- with `continuous_turn_deg > 0` the turning group is replaced by a `Box(-1, 1, (1,))` mapped to
  `TURN_LEFT_RIGHT_DELTA` (degrees per tic, applied on every skipped tic too) and the space is a
  `Tuple(Discrete, ..., Discrete, Box)`: one Discrete per remaining group, then the turn.

Buttons are named by their ViZDoom `Button` names, so this module never imports vizdoom.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

TURN_DELTA_BUTTON = "TURN_LEFT_RIGHT_DELTA"
TURN_BUTTONS = ("TURN_LEFT", "TURN_RIGHT")
ACTION_SPACE_KINDS = ("discrete", "multidiscrete")


class DoomActionSpace:
    """Maps a gymnasium action to the list of button values `DoomGame.make_action` takes."""

    def __init__(self, groups: Sequence[Sequence[str]], kind: str = "discrete", continuous_turn_deg: float = 0.0):
        if kind not in ACTION_SPACE_KINDS:
            raise ValueError(f"action space kind {kind!r} is not one of {ACTION_SPACE_KINDS}")
        groups = [tuple(group) for group in groups]
        if not groups or any(not group for group in groups):
            raise ValueError(f"every button group needs at least one button, got {groups}")
        self.kind = kind
        self.continuous_turn_deg = float(continuous_turn_deg)
        if self.continuous_turn_deg > 0:
            # the turn buttons give way to the delta button, driven by the Box component
            groups = [group for group in groups if tuple(group) != TURN_BUTTONS]
        self.groups = groups

        self.buttons: list[str] = [button for group in groups for button in group]
        if len(set(self.buttons)) != len(self.buttons):
            raise ValueError(f"a button appears in more than one group: {groups}")
        if self.continuous_turn_deg > 0:
            self.buttons.append(TURN_DELTA_BUTTON)
        num_buttons = len(self.buttons)

        # per group: row j = the button values of choice j (row 0 = none of the group's buttons)
        self._group_tables: list[np.ndarray] = []
        offset = 0
        for group in groups:
            table = np.zeros((len(group) + 1, num_buttons), dtype=np.float64)
            for j in range(len(group)):
                table[j + 1, offset + j] = 1.0
            self._group_tables.append(table)
            offset += len(group)
        self.nvec = [len(group) + 1 for group in groups]

        if kind == "discrete":
            # row i = the button values of the i-th combination (itertools.product order: last group fastest)
            self._combinations = np.array(
                [
                    sum(self._group_tables[g][c] for g, c in enumerate(choice))
                    for choice in itertools.product(*[range(n) for n in self.nvec])
                ]
            )

        self.space = self._make_space()

    def _make_space(self) -> gym.Space:
        if self.continuous_turn_deg > 0:
            if self.kind == "discrete":
                discrete = [gym.spaces.Discrete(len(self._combinations))]
            else:
                discrete = [gym.spaces.Discrete(n) for n in self.nvec]
            return gym.spaces.Tuple((*discrete, gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)))
        if self.kind == "discrete":
            return gym.spaces.Discrete(len(self._combinations))
        return gym.spaces.MultiDiscrete(self.nvec)

    def to_buttons(self, action) -> list[float]:
        """The button values for `action` (an element of `self.space`, or its numpy equivalent)."""
        turn = None
        if self.continuous_turn_deg > 0:
            *discrete, turn = action
            turn = float(np.clip(np.asarray(turn, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
            choices = [int(c) for c in discrete]
        elif self.kind == "discrete":
            choices = [int(action)]
        else:
            choices = [int(c) for c in np.asarray(action).reshape(-1)]

        if self.kind == "discrete":
            buttons = self._combinations[choices[0]].copy()
        else:
            if len(choices) != len(self._group_tables):
                raise ValueError(f"expected {len(self._group_tables)} action components, got {action!r}")
            buttons = sum(table[c] for table, c in zip(self._group_tables, choices))
        if turn is not None:
            buttons[-1] = turn * self.continuous_turn_deg
        return buttons.tolist()

    def describe(self) -> str:
        groups = " x ".join("(none|" + "|".join(group) + ")" for group in self.groups)
        turn = f" + continuous turn (+-{self.continuous_turn_deg:g} deg/tic)" if self.continuous_turn_deg > 0 else ""
        return f"{self.space}: {groups}{turn}"
