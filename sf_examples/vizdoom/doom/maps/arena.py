"""A deathmatch map written here, for 2.x's multiplayer scenarios whose maps are not ours to ship.

2.x plays doom_duel_bots on ssl2.wad, doom_deathmatch_full on freedm.wad and doom_dwango5 on
dwango5.wad: community deathmatch maps. This map is a stand-in with the same ingredients, not
their layout: a 2048 x 2048 square split into a 3 x 3 grid of rooms by walls with doorways (some
walls left out), a raised centre platform with steps, 16 deathmatch starts, every weapon of
the deathmatch action space (shotgun, super shotgun, chaingun, rocket launcher, plasma rifle),
ammo, stimpacks and medikits, and armor. In a `-deathmatch` game the engine respawns the pickups.
"""

from __future__ import annotations

import random

from sf_examples.vizdoom.doom.maps.wad import Udmf, map_lumps, pack_wad, square

SIZE = 2048.0
HEIGHT = 160
WALL_THICKNESS = 16.0
DOOR = 192.0

WALL = "BRICK7"
FLOOR = "FLOOR5_2"
CEILING = "CEIL5_1"
STEP = "STEP4"

# Doom editor numbers
DEATHMATCH_START = 11
PLAYER_STARTS = (1, 2, 3, 4, 4001, 4002, 4003, 4004)
WEAPONS = (2001, 82, 2002, 2003, 2004)  # shotgun, super shotgun, chaingun, rocket launcher, plasma rifle
AMMO = (2048, 2049, 2046, 2047, 2007, 2008)  # box of bullets, box of shells, box of rockets, cell, clip, shells
HEALTH = (2011, 2012)  # stimpack, medikit
ARMOR = (2018, 2019)  # green armor, blue armor

Rect = tuple[float, float, float, float]


def _walls(rng: random.Random) -> list[Rect]:
    walls: list[Rect] = []
    cell = SIZE / 3
    half = WALL_THICKNESS / 2
    for i in (1, 2):
        line = i * cell
        for j in range(3):
            start, end = j * cell, (j + 1) * cell
            for vertical in (True, False):
                if rng.random() < 0.25:
                    continue
                d0 = rng.uniform(start + 64, end - 64 - DOOR)
                for a, b in ((start, d0), (d0 + DOOR, end)):
                    if b - a < 32:
                        continue
                    walls.append((line - half, a, line + half, b) if vertical else (a, line - half, b, line + half))
    return walls


def _free_points(rng: random.Random, walls: list[Rect], avoid: list[Rect], count: int) -> list[tuple[float, float]]:
    margin = 64.0
    step = 128.0
    points = []
    n = int(SIZE // step)
    for i in range(n):
        for j in range(n):
            x, y = step / 2 + i * step, step / 2 + j * step
            if not (margin <= x <= SIZE - margin and margin <= y <= SIZE - margin):
                continue
            if any(x0 - margin < x < x1 + margin and y0 - margin < y < y1 + margin for x0, y0, x1, y1 in walls + avoid):
                continue
            points.append((x, y))
    rng.shuffle(points)
    if len(points) < count:
        raise RuntimeError(f"the arena has only {len(points)} free points, {count} needed")
    return points[:count]


def arena_map(seed: int = 2020) -> list[tuple[str, bytes]]:
    rng = random.Random(f"arena-{seed}")
    m = Udmf()
    floor = m.sector(0, HEIGHT, FLOOR, CEILING, light=176)
    m.room(square(0, 0, SIZE, SIZE), floor, WALL)
    walls = _walls(rng)
    for rect in walls:
        m.pillar(square(*rect), floor, WALL)
    # the centre platform (32 high) with a 16-high step around it: walked up, a vantage point
    c = SIZE / 2
    step_rect = (c - 224, c - 224, c + 224, c + 224)
    top_rect = (c - 160, c - 160, c + 160, c + 160)
    step = m.sector(16, HEIGHT, FLOOR, CEILING, light=192)
    top = m.sector(32, HEIGHT, FLOOR, CEILING, light=208)
    m.inner_sector(square(*step_rect), floor, step, STEP)
    m.inner_sector(square(*top_rect), step, top, STEP)

    points = _free_points(rng, walls, [step_rect], 16 + 8 + len(WEAPONS) * 2 + 12 + 8 + 4)
    it = iter(points)
    for _ in range(16):
        x, y = next(it)
        m.thing(x, y, DEATHMATCH_START, angle=rng.choice((0, 90, 180, 270)))
    for ednum in PLAYER_STARTS:
        x, y = next(it)
        m.thing(x, y, ednum, angle=rng.choice((0, 90, 180, 270)))
    for ednum in WEAPONS * 2:
        m.thing(*next(it), ednum)
    for i in range(12):
        m.thing(*next(it), AMMO[i % len(AMMO)])
    for i in range(8):
        m.thing(*next(it), HEALTH[i % len(HEALTH)])
    for i in range(4):
        m.thing(*next(it), ARMOR[i % len(ARMOR)])
    m.thing(c, c, 2019)  # blue armor on the platform: worth the climb
    m.thing(c + 64, c, 2003)  # and a rocket launcher
    return map_lumps("MAP01", m.textmap())


def arena_wad() -> bytes:
    return pack_wad(arena_map())
