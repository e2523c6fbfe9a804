"""Writing Doom maps: a UDMF TEXTMAP builder (ZDoom namespace) and a PWAD packer.

A map here is one sector-based level written as UDMF text (the ZDoom wiki's "Universal Doom Map
Format" spec): `vertex`, `linedef`, `sidedef`, `sector` and `thing` blocks. It carries no BSP
nodes: ViZDoom's engine (ZDoom 2.8) builds them itself when it loads a UDMF map without ZNODES,
so nothing here needs a node builder. Extra lumps (DECORATE actors, MAPINFO) ride in the same WAD.

Geometry conventions (Doom's): the front side of a linedef is on the right of v1 -> v2. An area's
outer boundary is walked clockwise (y up) so its front faces inside; a solid pillar cut out of an
area is walked counter-clockwise, so its one-sided walls face the area around it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

Point = tuple[float, float]


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _block(kind: str, fields: dict) -> str:
    body = "".join(f"{key} = {_format(value)};\n" for key, value in fields.items() if value is not None)
    return f"{kind}\n{{\n{body}}}\n"


@dataclass
class Udmf:
    """A map under construction; `textmap()` renders it. Indices follow insertion order."""

    vertices: list[Point] = field(default_factory=list)
    linedefs: list[dict] = field(default_factory=list)
    sidedefs: list[dict] = field(default_factory=list)
    sectors: list[dict] = field(default_factory=list)
    things: list[dict] = field(default_factory=list)
    _vertex_index: dict[Point, int] = field(default_factory=dict)

    def vertex(self, p: Point) -> int:
        key = (float(p[0]), float(p[1]))
        if key not in self._vertex_index:
            self._vertex_index[key] = len(self.vertices)
            self.vertices.append(key)
        return self._vertex_index[key]

    def sector(self, floor: int, ceiling: int, floor_tex: str, ceiling_tex: str, light: int = 160, **extra) -> int:
        fields = {
            "heightfloor": floor,
            "heightceiling": ceiling,
            "texturefloor": floor_tex,
            "textureceiling": ceiling_tex,
            "lightlevel": light,
        }
        fields.update(extra)
        self.sectors.append(fields)
        return len(self.sectors) - 1

    def _side(self, sector: int, **textures) -> int:
        self.sidedefs.append({"sector": sector, **textures})
        return len(self.sidedefs) - 1

    def wall(self, a: Point, b: Point, sector: int, texture: str):
        """A one-sided (solid) wall whose front, facing `sector`, is on the right of a -> b."""
        front = self._side(sector, texturemiddle=texture)
        self.linedefs.append({"v1": self.vertex(a), "v2": self.vertex(b), "sidefront": front, "blocking": True})

    def two_sided(self, a: Point, b: Point, front_sector: int, back_sector: int, texture: str, **flags):
        """A see-through line between two sectors (front on the right of a -> b); steps get `texture`."""
        front = self._side(front_sector, texturebottom=texture, texturetop=texture)
        back = self._side(back_sector, texturebottom=texture, texturetop=texture)
        line = {"v1": self.vertex(a), "v2": self.vertex(b), "sidefront": front, "sideback": back, "twosided": True}
        line.update(flags)
        self.linedefs.append(line)

    def room(self, corners: list[Point], sector: int, texture: str):
        """The outer walls of an area: `corners` in clockwise order (y up)."""
        for a, b in zip(corners, corners[1:] + corners[:1]):
            self.wall(a, b, sector, texture)

    def pillar(self, corners: list[Point], sector: int, texture: str):
        """A solid block cut out of `sector`: `corners` clockwise, walled facing outwards."""
        ccw = corners[::-1]
        for a, b in zip(ccw, ccw[1:] + ccw[:1]):
            self.wall(a, b, sector, texture)

    def inner_sector(self, corners: list[Point], outer: int, inner: int, texture: str):
        """A sector (raised floor, other light) inside `outer`: `corners` clockwise, front facing inside."""
        for a, b in zip(corners, corners[1:] + corners[:1]):
            self.two_sided(a, b, inner, outer, texture)

    def thing(self, x: float, y: float, doomednum: int, angle: int = 0, tid: int = 0, **flags):
        fields = {"x": float(x), "y": float(y), "type": doomednum, "angle": angle}
        if tid:
            fields["id"] = tid
        for key in ("skill1", "skill2", "skill3", "skill4", "skill5", "single", "coop", "dm"):
            fields[key] = flags.pop(key, True)
        fields.update(flags)
        self.things.append(fields)

    def textmap(self) -> bytes:
        parts = ['namespace = "zdoom";\n']
        parts += [_block("thing", t) for t in self.things]
        parts += [_block("vertex", {"x": x, "y": y}) for x, y in self.vertices]
        parts += [_block("linedef", line) for line in self.linedefs]
        parts += [_block("sidedef", side) for side in self.sidedefs]
        parts += [_block("sector", sector) for sector in self.sectors]
        return "".join(parts).encode("ascii")


def square(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    """The corners of an axis-aligned rectangle, clockwise (y up), starting bottom-left."""
    return [(x0, y0), (x0, y1), (x1, y1), (x1, y0)]


def pack_wad(lumps: list[tuple[str, bytes]]) -> bytes:
    """A PWAD holding `lumps` in order (names up to 8 characters)."""
    header_size = 12
    data = b""
    directory = b""
    for name, content in lumps:
        if len(name) > 8:
            raise ValueError(f"WAD lump name {name!r} is longer than 8 characters")
        directory += struct.pack("<ii8s", header_size + len(data), len(content), name.encode("ascii"))
        data += content
    return struct.pack("<4sii", b"PWAD", len(lumps), header_size + len(data)) + data + directory


def map_lumps(map_name: str, textmap: bytes) -> list[tuple[str, bytes]]:
    """The lumps of one UDMF map: marker, TEXTMAP, ENDMAP."""
    return [(map_name.upper(), b""), ("TEXTMAP", textmap), ("ENDMAP", b"")]
