"""Action spaces of the Doom envs: groups of mutually exclusive buttons, turned into gymnasium spaces.

A Doom "action" is a vector with one value per available button. Here the buttons come in
*groups* of mutually exclusive choices, each with an implicit "none":
`(("MOVE_LEFT", "MOVE_RIGHT"), ("ATTACK",))` means "left, right or neither" x "attack or not".

Three kinds of gymnasium space are built from the same groups:

- `discrete`: one Discrete over every combination (3 x 2 = 6 above). With a single group this is
  sample-factory 2.x's "one button at a time" space: `(("MOVE_LEFT", "MOVE_RIGHT", "ATTACK"),)`
  is Discrete(4) = none, left, right, attack (2.x's doom_basic);
- `multidiscrete`: one Discrete per group, as `MultiDiscrete([3, 2])`;
- `tuple`: one Discrete per group, as `Tuple(Discrete(3), Discrete(2))`: 2.x's spaces for most
  scenarios (same choices as `multidiscrete`, and the same logits layout, so 2.x checkpoints fit);
- with `continuous_turn_deg > 0` the turning group is replaced by a `Box(-1, 1, (1,))` mapped to
  `TURN_LEFT_RIGHT_DELTA` (degrees per tic, applied on every skipped tic too) and the space is a
  `Tuple(Discrete, ..., Discrete, Box)`: one Discrete per remaining group, then the turn;
- with `turn_bins > 0` the turning group is replaced by a `Discretized(turn_bins, -turn_max_deg,
  turn_max_deg)` component (a Discrete whose index i means `-max + i * 2 max / (bins - 1)` degrees
  per tic on `TURN_LEFT_RIGHT_DELTA`): 2.x's `Discretized(11, -10, 10)` (battle) and
  `Discretized(21, -12.5, 12.5)` (deathmatch) turning; the space is a Tuple ending with it.

Buttons are named by their ViZDoom `Button` names, so this module never imports vizdoom.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

TURN_DELTA_BUTTON = "TURN_LEFT_RIGHT_DELTA"
TURN_BUTTONS = ("TURN_LEFT", "TURN_RIGHT")
ACTION_SPACE_KINDS = ("discrete", "multidiscrete", "tuple")


class Discretized(gym.spaces.Discrete):
    """A Discrete that stands for evenly spaced values of a continuous action (2.x's class of that name)."""

    def __init__(self, n: int, min_action: float, max_action: float):
        super().__init__(n)
        self.min_action = float(min_action)
        self.max_action = float(max_action)

    def to_continuous(self, discrete_action) -> float:
        step = (self.max_action - self.min_action) / (int(self.n) - 1)
        return self.min_action + int(discrete_action) * step

    def __repr__(self) -> str:
        return f"Discretized({int(self.n)}, {self.min_action:g}, {self.max_action:g})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Discretized)
            and super().__eq__(other)
            and (other.min_action, other.max_action) == (self.min_action, self.max_action)
        )


class DoomActionSpace:
    """Maps a gymnasium action to the list of button values `DoomGame.make_action` takes."""

    def __init__(
        self,
        groups: Sequence[Sequence[str]],
        kind: str = "discrete",
        continuous_turn_deg: float = 0.0,
        turn_bins: int = 0,
        turn_max_deg: float = 0.0,
    ):
        if kind not in ACTION_SPACE_KINDS:
            raise ValueError(f"action space kind {kind!r} is not one of {ACTION_SPACE_KINDS}")
        groups = [tuple(group) for group in groups]
        if not groups or any(not group for group in groups):
            raise ValueError(f"every button group needs at least one button, got {groups}")
        if continuous_turn_deg > 0 and turn_bins > 0:
            raise ValueError("turning is either continuous (continuous_turn_deg) or discretized (turn_bins), not both")
        if turn_bins == 1 or (turn_bins > 1 and turn_max_deg <= 0):
            raise ValueError(
                f"discretized turning needs turn_bins >= 2 and turn_max_deg > 0, got {turn_bins}, {turn_max_deg}"
            )
        self.kind = kind
        self.continuous_turn_deg = float(continuous_turn_deg)
        self.turn_bins = int(turn_bins)
        self.turn_max_deg = float(turn_max_deg)
        self._delta_turn = self.continuous_turn_deg > 0 or self.turn_bins > 0
        if self._delta_turn:
            # the turn buttons give way to the delta button, driven by the Box component
            groups = [group for group in groups if tuple(group) != TURN_BUTTONS]
        self.groups = groups

        self.buttons: list[str] = [button for group in groups for button in group]
        if len(set(self.buttons)) != len(self.buttons):
            raise ValueError(f"a button appears in more than one group: {groups}")
        if self._delta_turn:
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
        if self._delta_turn:
            if self.kind == "discrete":
                discrete = [gym.spaces.Discrete(len(self._combinations))]
            else:
                discrete = [gym.spaces.Discrete(n) for n in self.nvec]
            if self.turn_bins > 0:
                turn = Discretized(self.turn_bins, -self.turn_max_deg, self.turn_max_deg)
            else:
                turn = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
            return gym.spaces.Tuple((*discrete, turn))
        if self.kind == "discrete":
            return gym.spaces.Discrete(len(self._combinations))
        if self.kind == "tuple":
            return gym.spaces.Tuple([gym.spaces.Discrete(n) for n in self.nvec])
        return gym.spaces.MultiDiscrete(self.nvec)

    def to_buttons(self, action) -> list[float]:
        """The button values for `action` (an element of `self.space`, or its numpy equivalent)."""
        turn = None
        if self._delta_turn:
            *discrete, turn = action
            if self.turn_bins > 0:
                turn = self.space[-1].to_continuous(
                    int(np.clip(int(np.asarray(turn).reshape(-1)[0]), 0, self.turn_bins - 1))
                )
            else:
                turn = self.continuous_turn_deg * float(
                    np.clip(np.asarray(turn, dtype=np.float64).reshape(-1)[0], -1.0, 1.0)
                )
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
            buttons[-1] = turn
        return buttons.tolist()

    def describe(self) -> str:
        groups = " x ".join("(none|" + "|".join(group) + ")" for group in self.groups)
        turn = ""
        if self.continuous_turn_deg > 0:
            turn = f" + continuous turn (+-{self.continuous_turn_deg:g} deg/tic)"
        elif self.turn_bins > 0:
            turn = f" + turn in {self.turn_bins} steps of +-{self.turn_max_deg:g} deg/tic"
        return f"{self.space}: {groups}{turn}"
