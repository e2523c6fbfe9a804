"""The two-colours maps: sample-factory 2.x's doom_two_colors_easy / _hard task, on a map written here.

The task as 2.x's two_colors WADs define it (its scripts' numbers; the code and map are this
project's own): a closed 1280 x 1280 room whose floor is acid (sector special 83, the ZDoom damage
floor 2.x uses), so health drains all the time. Armor pickups of two colours lie around, 10 of each
at the start and then one of each colour every 60 tics, at random places. At the start of each
episode a coin decides which colour is good: picking up the good one heals 25, the other hurts 25
(no armor is given). A tall column of the good colour stands in the room (in the hard version it
is removed after 90 tics, so the agent must remember it). The engine's reward is 0.01 per tic
alive (the episode ends at death or after 2100 tics); 2.x shapes it with +1 whenever health goes up.
"""

from __future__ import annotations

from sf_examples.vizdoom.doom.maps.decorate import (
    SXF_ABSOLUTEANGLE,
    SXF_ABSOLUTEPOSITION,
    SXF_NOCHECKPOSITION,
    frames,
    invisible_actor,
)
from sf_examples.vizdoom.doom.maps.wad import Udmf, map_lumps, pack_wad, square

ROOM = 1280.0
DIRECTOR_EDNUM = 15011
TOTEM_AT = (640.0, 840.0)
START_AT = (640.0, 256.0)
WALL = "STONE2"
ACID = "NUKAGE1"
CEILING = "CEIL4_1"
ACID_SPECIAL = 83
MARGIN = 40.0  # pickups keep this far from the walls
PILLARS = ((256.0, 512.0, 384.0, 528.0), (896.0, 704.0, 1024.0, 720.0), (560.0, 1040.0, 576.0, 1168.0))

# colour: (armor sprite, totem sprite)
COLOURS = {"Green": ("ARM1", "COL1"), "Red": ("ARM2", "COL3")}


def _pickups() -> str:
    parts = []
    for colour, (sprite, _) in COLOURS.items():
        spawn = f"""  Spawn:
    {sprite} A 6
    {sprite} B 7 Bright
    Loop"""
        parts.append(f"""ACTOR Good{colour}Pickup : Health
{{
  +INVENTORY.ALWAYSPICKUP
  Inventory.Amount 25
  Inventory.MaxAmount 100
  Inventory.PickupMessage ""
  States
  {{
{spawn}
  }}
}}

ACTOR Bad{colour}Pickup : CustomInventory
{{
  +INVENTORY.ALWAYSPICKUP
  Inventory.PickupMessage ""
  States
  {{
{spawn}
  Pickup:
    TNT1 A 0 DamageThing(25, 0)
    Stop
  }}
}}
""")
    return "\n".join(parts)


def _totems(hard: bool) -> str:
    parts = []
    for colour, (_, sprite) in COLOURS.items():
        stay = "90" if hard else "-1"
        parts.append(f"""ACTOR {colour}Totem
{{
  Radius 16
  Height 52
  +SOLID
  States
  {{
  Spawn:
    {sprite} A {stay}
    Stop
  }}
}}
""")
    return "\n".join(parts)


def _random_spawn(actor: str) -> str:
    """Spawns `actor` anywhere in the room (relative to the director, which stands at the room's centre)."""
    half = ROOM / 2 - MARGIN
    flags = SXF_ABSOLUTEPOSITION | SXF_ABSOLUTEANGLE
    return (
        f'A_SpawnItemEx("{actor}", frandom({-half:g}, {half:g}), frandom({-half:g}, {half:g}), 0, 0, 0, 0, 0, {flags})'
    )


def _director() -> str:
    totem_dx, totem_dy = TOTEM_AT[0] - ROOM / 2, TOTEM_AT[1] - ROOM / 2
    flags = SXF_ABSOLUTEPOSITION | SXF_NOCHECKPOSITION
    lines = [
        *invisible_actor(f"TwoColorsDirector {DIRECTOR_EDNUM}"),
        '    TNT1 A 0 A_Jump(128, "RedIsGood")',
    ]
    for good, bad in (("Green", "Red"), ("Red", "Green")):
        lines += [
            f"  {good}IsGood:",
            f'    TNT1 A 0 A_SpawnItemEx("{good}Totem", {totem_dx:g}, {totem_dy:g}, 0, 0, 0, 0, 0, {flags})',
            *frames(10, _random_spawn(f"Good{good}Pickup")),
            *frames(10, _random_spawn(f"Bad{bad}Pickup")),
            f"  {good}Clock:",
            *frames(1, _random_spawn(f"Good{good}Pickup"), 30),
            *frames(1, _random_spawn(f"Bad{bad}Pickup"), 30),
            f"    Goto {good}Clock",
        ]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def two_colors_map(hard: bool) -> list[tuple[str, bytes]]:
    m = Udmf()
    room = m.sector(0, 128, ACID, CEILING, light=192, special=ACID_SPECIAL)
    m.room(square(0, 0, ROOM, ROOM), room, WALL)
    for rect in PILLARS:
        m.pillar(square(*rect), room, WALL)
    m.thing(*START_AT, 1, angle=90)  # facing the totem
    m.thing(ROOM / 2, ROOM / 2, DIRECTOR_EDNUM)
    decorate = "\n".join([_pickups(), _totems(hard), _director()])
    return [("DECORATE", decorate.encode("ascii")), *map_lumps("MAP01", m.textmap())]


def two_colors_wad(hard: bool) -> bytes:
    return pack_wad(two_colors_map(hard))
