"""DECORATE helpers: the generated maps do in DECORATE actors what sample-factory 2.x's maps do in ACS.

ACS needs a compiler (acc) that is not at hand here; DECORATE is plain text that the engine reads
when it loads the WAD. The two things 2.x's ACS scripts do that matter for the task, spawning
monsters and pickups at random places over time and moving the player to a random start, are done
by invisible helper actors:

- a *director* (placed in the map) spawns the first wave at tic 0 and then keeps spawning on a
  clock (`TNT1 A 70` frames are 2-second waits);
- a *spot spawner* jumps to one of N states at random (`A_Jump(256, "P0", ..., "Pn")`), each of
  which spawns its item at one of N precomputed free spots, at absolute coordinates
  (`A_SpawnItemEx(type, X - x, Y - y, Z - z, ..., SXF_ABSOLUTEPOSITION)`), and vanishes.

Rewards do not come from ACS globals either: the env computes them in Python from game variables
(KILLCOUNT, HEALTH; see DoomSpec.scenario_rewards).
"""

from __future__ import annotations

from collections.abc import Sequence

# A_SpawnItemEx flags (ZDoom's values)
SXF_ABSOLUTEPOSITION = 2
SXF_ABSOLUTEANGLE = 4
SXF_NOCHECKPOSITION = 32

Spot = tuple[float, float, float]  # x, y, floor height


def invisible_actor(name: str) -> list[str]:
    """The opening lines of an actor that is never seen nor touched, up to its first Spawn frame:
    spawners and directors, which only run their states."""
    return [
        f"ACTOR {name}",
        "{",
        "  +NOINTERACTION",
        "  +NOBLOCKMAP",
        "  States",
        "  {",
        "  Spawn:",
        "    TNT1 A 0",
    ]


def spot_spawner(name: str, spawns: str, spots: Sequence[Spot], check_position: bool, jitter: float = 0.0) -> str:
    """An invisible actor that spawns one `spawns` at a random spot of `spots`, then disappears.

    `check_position=False` spawns even where another actor stands (a monster must not be lost);
    `jitter` spreads pickups up to that many units around their spot.
    """
    if not spots:
        raise ValueError(f"{name}: no spots to spawn at")
    flags = SXF_ABSOLUTEPOSITION | SXF_ABSOLUTEANGLE | (0 if check_position else SXF_NOCHECKPOSITION)
    labels = ", ".join(f'"P{i}"' for i in range(len(spots)))
    lines = [
        *invisible_actor(name),
        f"    TNT1 A 0 A_Jump(256, {labels})",
        "    Stop",
    ]
    dx = f" + frandom({-jitter:g}, {jitter:g})" if jitter else ""
    for i, (x, y, z) in enumerate(spots):
        lines += [
            f"  P{i}:",
            f'    TNT1 A 0 A_SpawnItemEx("{spawns}", {x:g} - x{dx}, {y:g} - y{dx}, {z:g} - z, 0, 0, 0,'
            f" random(0, 359), {flags})",
            "    Stop",
        ]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def frames(count: int, action: str, duration: int = 0) -> list[str]:
    """`count` frames of `duration` tics each running `action` (0-tic frames all run in one tic)."""
    return [f"    TNT1 A {duration} {action}" for _ in range(count)]


def spawn_here(actor: str) -> str:
    """The action that spawns `actor` where the caller stands (helpers spawn whatever the position)."""
    return f'A_SpawnItemEx("{actor}", 0, 0, 0, 0, 0, 0, 0, {SXF_NOCHECKPOSITION})'
