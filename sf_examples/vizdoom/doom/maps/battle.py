"""The battle maps: sample-factory 2.x's doom_battle / doom_battle2 / doom_benchmark task, on maps written here.

The task as 2.x's battle.wad scripts define it (its ACS source is in the WAD it ships; the facts
used here are its numbers, the code and map are this project's own):

- a closed square arena, 1856 x 1856 units, 128 high, with solid pillars; the player starts at
  one of 20 spots, facing a random way, with only the pistol and 20 bullets;
- 15 imps (10 in battle2) with 5 hit points each, spawned at random places; a killed imp
  vanishes and a new one appears at a random place 70 tics (2 s) later, so the arena always holds
  the same number; imps spawned later are stronger: one more hit point every 420 tics (the
  director hands the player a BattleClock token every 420 tics, a new imp counts them);
- 30 medikits (+20 health each) and 15 ammo clips at random places at the start, then one more
  medikit every 70 tics and one more clip every 280 tics;
- the reward is +1 per imp killed (2.x's ACS adds it to the engine's reward; here the env reads
  KILLCOUNT, see DoomSpec.scenario_rewards); 2.x shapes it with +0.005 per hit point gained and
  -0.003 per hit point lost. An episode lasts 2100 tics (a minute) or until the player dies.

battle2 is the harder map of 2.x: a maze of walls and rooms with raised ledges over the same
square, 10 imps. 2.x's battle2.wad has many floor heights and stairs; this one has a maze of
walls and a few low platforms, which is the part that makes battle2 harder (imps out of sight,
paths around walls), but not its exact shape.
"""

from __future__ import annotations

import random

from sf_examples.vizdoom.doom.maps.decorate import frames, invisible_actor, spawn_here, spot_spawner
from sf_examples.vizdoom.doom.maps.wad import Udmf, map_lumps, pack_wad, square

ARENA = 1856.0
HEIGHT = 128
SPOT_CLEARANCE = 48.0  # a spot is at least this far from any wall (an imp is 20 wide)
NUM_PLAYER_STARTS = 20
FIRST_START_TID = 10
DIRECTOR_EDNUM = 15001
IMP_HEALTH = 5  # at the start; one more every 420 tics
MAX_CLOCK = 10  # imps stop getting stronger after 4200 tics (2 episodes' worth)

WALL = "STARTAN3"
FLOOR = "FLOOR4_8"
CEILING = "CEIL3_5"
PLATFORM_WALL = "STEP6"

Rect = tuple[float, float, float, float]


def _clear(x: float, y: float, blocks: list[Rect], margin: float) -> bool:
    if not (margin <= x <= ARENA - margin and margin <= y <= ARENA - margin):
        return False
    return all(not (x0 - margin < x < x1 + margin and y0 - margin < y < y1 + margin) for x0, y0, x1, y1 in blocks)


def _overlaps(rect: Rect, others: list[Rect], gap: float) -> bool:
    x0, y0, x1, y1 = rect
    return any(x0 < b1 + gap and b0 < x1 + gap and y0 < c1 + gap and c0 < y1 + gap for b0, c0, b1, c1 in others)


def _battle_pillars(rng: random.Random) -> list[Rect]:
    """Scattered pillars 64-192 units wide, at least 128 apart (every gap is a passage)."""
    pillars: list[Rect] = []
    while len(pillars) < 24:
        w, h = rng.choice((64, 96, 128, 192)), rng.choice((64, 96, 128, 192))
        x, y = rng.randrange(160, int(ARENA - 160 - w), 32), rng.randrange(160, int(ARENA - 160 - h), 32)
        rect = (float(x), float(y), float(x + w), float(y + h))
        if not _overlaps(rect, pillars, 128.0):
            pillars.append(rect)
    return pillars


def _battle2_walls(rng: random.Random) -> list[Rect]:
    """A maze: a 4 x 4 grid of rooms whose walls (16 thick) have one or two doorways each."""
    walls: list[Rect] = []
    cell = ARENA / 4
    thickness = 16.0
    door = 160.0
    for i in range(1, 4):
        line = i * cell
        for j in range(4):
            start, end = j * cell, (j + 1) * cell
            # wall segments along x = line (vertical) and along y = line (horizontal), each with a doorway
            for vertical in (True, False):
                if rng.random() < 0.2:  # some walls are missing altogether: bigger rooms
                    continue
                d0 = rng.uniform(start + 48, end - 48 - door)
                for a, b in ((start, d0), (d0 + door, end)):
                    if b - a < 24:
                        continue
                    if vertical:
                        walls.append((line - thickness / 2, a, line + thickness / 2, b))
                    else:
                        walls.append((a, line - thickness / 2, b, line + thickness / 2))
    return walls


def _platforms(rng: random.Random, blocks: list[Rect]) -> list[Rect]:
    """Low platforms (24 high: walked onto, not over) in some rooms."""
    platforms: list[Rect] = []
    tries = 0
    while len(platforms) < 6 and tries < 1000:
        tries += 1
        w, h = rng.choice((128, 192, 256)), rng.choice((128, 192, 256))
        x, y = rng.randrange(96, int(ARENA - 96 - w), 32), rng.randrange(96, int(ARENA - 96 - h), 32)
        rect = (float(x), float(y), float(x + w), float(y + h))
        if not _overlaps(rect, blocks + platforms, 64.0):
            platforms.append(rect)
    return platforms


def _spots(blocks: list[Rect], platforms: list[Rect], step: float, rng: random.Random, count: int) -> list:
    """Up to `count` free points of a grid (x, y, floor height), a deterministic random choice."""
    free = []
    n = int(ARENA // step)
    for i in range(n):
        for j in range(n):
            x, y = step / 2 + i * step, step / 2 + j * step
            if not _clear(x, y, blocks, SPOT_CLEARANCE):
                continue
            # not on a platform's edge: a spot is either well inside a platform or well away from it
            if any(_near_edge(x, y, p) for p in platforms):
                continue
            on = any(p[0] <= x <= p[2] and p[1] <= y <= p[3] for p in platforms)
            free.append((x, y, 24.0 if on else 0.0))
    rng.shuffle(free)
    return sorted(free[:count])


def _near_edge(x: float, y: float, rect: Rect, margin: float = SPOT_CLEARANCE) -> bool:
    x0, y0, x1, y1 = rect
    inside_outer = x0 - margin < x < x1 + margin and y0 - margin < y < y1 + margin
    inside_inner = x0 + margin < x < x1 - margin and y0 + margin < y < y1 - margin
    return inside_outer and not inside_inner


def _decorate(monsters: int, spots: list, item_spots: list, start_tids: int) -> str:
    starts = ", ".join(f'"S{i}"' for i in range(start_tids))
    parts = [
        """ACTOR BattleMedikit : Health
{
  +INVENTORY.ALWAYSPICKUP
  Inventory.Amount 20
  Inventory.MaxAmount 100
  Inventory.PickupMessage "$GOTMEDIKIT"
  States
  {
  Spawn:
    MEDI A -1
    Stop
  }
}

ACTOR BattleImp : DoomImp
{
  Health 5
  States
  {
  Spawn:
    TNT1 A 0
"""
        + "".join(
            f'    TNT1 A 0 A_JumpIfInventory("BattleClock", {n}, "Health{IMP_HEALTH + n}", AAPTR_PLAYER1)\n'
            for n in range(MAX_CLOCK, 0, -1)
        )
        + "    Goto Idle\n"
        + "".join(
            f"  Health{IMP_HEALTH + n}:\n    TNT1 A 0 A_SetHealth({IMP_HEALTH + n})\n    Goto Idle\n"
            for n in range(MAX_CLOCK, 0, -1)
        )
        + """  Idle:
    TROO AB 10 A_Look
    Loop
  Death:
  XDeath:
    TNT1 A 0 A_NoBlocking
    TNT1 A 70
    TNT1 A 0 """
        + spawn_here("BattleImpSpawner")
        + """
    Stop
  }
}

// one more imp hit point every 420 tics: the director gives the player one of these, the imps count them
ACTOR BattleClock : Inventory
{
  Inventory.MaxAmount 100
  +INVENTORY.UNDROPPABLE
}
""",
        spot_spawner("BattleImpSpawner", "BattleImp", spots, check_position=False),
        spot_spawner("BattleMedikitSpawner", "BattleMedikit", item_spots, check_position=True, jitter=24.0),
        spot_spawner("BattleClipSpawner", "Clip", item_spots, check_position=True, jitter=24.0),
        # Given to the player at tic 0: a random start spot and angle, the pistol and 20 bullets only
        f"""ACTOR BattleStart : CustomInventory
{{
  +INVENTORY.ALWAYSPICKUP
  +INVENTORY.QUIET
  Inventory.PickupMessage ""
  States
  {{
  Spawn:
    TNT1 A -1
    Stop
  Pickup:
    TNT1 A 0 A_TakeInventory("Fist", 1)
    TNT1 A 0 A_TakeInventory("Clip", 30)
    TNT1 A 0 A_SetAngle(random(0, 359))
    TNT1 A 0 A_Jump(256, {starts})
    Stop
"""
        + "".join(
            f"  S{i}:\n    TNT1 A 0 Thing_Move(0, {FIRST_START_TID + i}, 1)\n    Stop\n" for i in range(start_tids)
        )
        + """  }
}
""",
    ]
    director = [
        *invisible_actor(f"BattleDirector {DIRECTOR_EDNUM}"),
        '    TNT1 A 0 A_GiveInventory("BattleStart", 1, AAPTR_PLAYER1)',
        *frames(monsters, spawn_here("BattleImpSpawner")),
        *frames(30, spawn_here("BattleMedikitSpawner")),
        *frames(15, spawn_here("BattleClipSpawner")),
        "  Clock:",
        # 2.x's schedule: a medikit every 70 tics, a clip every 280, an imp hit point more every 420
        *[
            line
            for slot in range(1, 13)  # 12 x 70 = 840 tics, then again
            for line in (
                *frames(1, spawn_here("BattleMedikitSpawner"), 70),
                *(frames(1, spawn_here("BattleClipSpawner")) if slot * 70 % 280 == 0 else []),
                *(frames(1, 'A_GiveInventory("BattleClock", 1, AAPTR_PLAYER1)') if slot * 70 % 420 == 0 else []),
            )
        ],
        "    Loop",
        "  }",
        "}",
        "",
    ]
    return "\n".join(parts + director)


def battle_map(variant: str, seed: int = 2020) -> list[tuple[str, bytes]]:
    """The lumps of `battle` (open arena, 15 imps) or `battle2` (maze with platforms, 10 imps)."""
    rng = random.Random(f"{variant}-{seed}")
    m = Udmf()
    arena = m.sector(0, HEIGHT, FLOOR, CEILING, light=160)
    m.room(square(0, 0, ARENA, ARENA), arena, WALL)
    if variant == "battle":
        blocks, platforms, monsters = _battle_pillars(rng), [], 15
    elif variant == "battle2":
        blocks = _battle2_walls(rng)
        platforms, monsters = _platforms(rng, blocks), 10
    else:
        raise ValueError(f"unknown battle map {variant!r}")
    for rect in blocks:
        m.pillar(square(*rect), arena, WALL)
    for rect in platforms:
        raised = m.sector(24, HEIGHT, FLOOR, CEILING, light=176)
        m.inner_sector(square(*rect), arena, raised, PLATFORM_WALL)

    spots = _spots(blocks, platforms, 96.0, rng, 64)
    item_spots = _spots(blocks, platforms, 96.0, rng, 96)
    starts = rng.sample([s for s in spots if s[2] == 0.0], NUM_PLAYER_STARTS)
    x, y, _ = starts[0]
    m.thing(x, y, 1, angle=0)  # player 1 start; the director's BattleStart moves the player at once
    for i, (sx, sy, _) in enumerate(starts):
        m.thing(sx, sy, 9001, tid=FIRST_START_TID + i)  # map spots for Thing_Move
    m.thing(ARENA / 2, ARENA / 2, DIRECTOR_EDNUM)
    decorate = _decorate(monsters, spots, item_spots, len(starts))
    return [("DECORATE", decorate.encode("ascii")), *map_lumps("MAP01", m.textmap())]


def battle_wad(variant: str) -> bytes:
    return pack_wad(battle_map(variant))
