#!/usr/bin/env bash
# A CSV-in, CSV-out job on 1 million points, timed end to end (reading the map, reading the
# points, finding each point's ward, writing the result), in the same run:
#   - `ioc wards locate` (the fast CSV path, both cores),
#   - shapely 2's best vectorised pipeline we know of: pandas with the pyarrow CSV reader,
#     prepared polygons with `contains_xy` on the points inside each polygon's bounding box (on
#     this map it beats `STRtree.query(predicate="within")`, which is timed too), pyarrow's CSV
#     writer.
# Best of three runs each. Points are uniform over the bounding box of Ho Chi Minh City's 2025
# units on the mainland (Côn Đảo, 180 km offshore, would make nearly every point sea). Needs
# ../shared/data (or IOC_SHARED_DATA); installs shapely, pandas and pyarrow into a private venv
# if missing. Prints a Markdown table; with --write it replaces the section in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${IOC_SHARED_DATA:-../shared/data}
WARDS="$DATA/vietnam/hcmc_2025/hcmc_wards_2025.geojson"
[ -f "$WARDS" ] || { echo "needs $WARDS (set IOC_SHARED_DATA)"; exit 2; }
N=${IOC_LOCATE_POINTS:-1000000}
WORK=$(mktemp -d -t ioc-locate.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
step() { printf '==> %s\n' "$*" >&2; }

VENV=${IOC_BENCH_VENV:-$HOME/.cache/ioc-bench-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import shapely, pandas, pyarrow' 2>/dev/null; then
  step "installing shapely, pandas and pyarrow into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'shapely>=2' pandas pyarrow >&2
fi
step "building ioc (release)"
cargo build --release --locked -q
IOC=target/release/ioc

step "writing $N points"
"$VENV/bin/python" - "$WARDS" "$WORK/points.csv" "$N" <<'PY'
import json, random, sys
wards, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
xs, ys = [], []
for f in json.load(open(wards))["features"]:
    if f["properties"]["name"] == "Côn Đảo":
        continue
    g = f["geometry"]
    for p in ([g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]):
        for x, y, *_ in p[0]:
            xs.append(x); ys.append(y)
x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
rng = random.Random(7)
with open(out, "w") as o:
    o.write("id,lon,lat\n")
    o.write("".join(f"{i},{rng.uniform(x0, x1):.6f},{rng.uniform(y0, y1):.6f}\n" for i in range(n)))
PY

best() { sort -n | head -n1; }
step "ioc wards locate (3 runs)"
ioc_s=$(for _ in 1 2 3; do
  s=$(date +%s.%N)
  "$IOC" wards locate "$WORK/points.csv" --boundaries "$WARDS" --id-property code --name-property name \
    -o "$WORK/ioc.csv" --quiet
  python3 -c "print($(date +%s.%N) - $s)"
done | best)

step "shapely (3 runs of each pipeline)"
shapely_json=$("$VENV/bin/python" - "$WARDS" "$WORK/points.csv" "$WORK/shapely.csv" <<'PY'
import json, sys, time
import numpy as np, pandas as pd, shapely, pyarrow as pa, pyarrow.csv as pacsv
wards_file, points, out = sys.argv[1:4]

def load():
    feats = json.load(open(wards_file))["features"]
    polys = shapely.from_geojson([json.dumps(f["geometry"]) for f in feats])
    shapely.prepare(polys)
    return polys, np.array([str(f["properties"]["code"]) for f in feats], dtype=object), \
        np.array([f["properties"]["name"] for f in feats], dtype=object)

def write(df, ward, name):
    df["ward_id"] = ward; df["ward_name"] = name
    pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), out)

def by_bbox():
    polys, ids, names = load()
    df = pd.read_csv(points, engine="pyarrow")
    x, y = df["lon"].to_numpy(), df["lat"].to_numpy()
    hit = np.full(len(df), -1)
    for k, p in enumerate(polys):
        a, b, c, d = shapely.bounds(p)
        idx = np.nonzero((hit < 0) & (x >= a) & (x <= c) & (y >= b) & (y <= d))[0]
        if len(idx):
            idx = idx[shapely.contains_xy(p, x[idx], y[idx])]
            hit[idx] = k
    found = hit >= 0
    ward = np.full(len(df), None, dtype=object); name = ward.copy()
    ward[found] = ids[hit[found]]; name[found] = names[hit[found]]
    write(df, ward, name)
    return int(found.sum())

def by_tree():
    polys, ids, names = load()
    df = pd.read_csv(points, engine="pyarrow")
    pi, wi = shapely.STRtree(polys).query(shapely.points(df["lon"].to_numpy(), df["lat"].to_numpy()), predicate="within")
    first = np.unique(pi, return_index=True)[1]
    ward = np.full(len(df), None, dtype=object); name = ward.copy()
    ward[pi[first]] = ids[wi[first]]; name[pi[first]] = names[wi[first]]
    write(df, ward, name)
    return len(first)

result = {}
for f in (by_bbox, by_tree):
    times = []
    for _ in range(3):
        t = time.perf_counter(); found = f(); times.append(time.perf_counter() - t)
    result[f.__name__] = min(times)
    result[f.__name__ + "_found"] = found
print(json.dumps(result))
PY
)
ioc_found=$(awk -F, 'NR > 1 && $4 != "" {n++} END {print n}' "$WORK/ioc.csv")
table=$(python3 - "$ioc_s" "$shapely_json" "$N" "$ioc_found" <<'PY'
import json, subprocess, sys, datetime
ioc, sh, n, ioc_found = float(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p' | head -n1"], capture_output=True, text=True).stdout.strip()
best = min(sh["by_bbox"], sh["by_tree"])
print(f"Machine: {cpu}, 2 cores; shapely {__import__('shapely').__version__}; measured {datetime.date.today()}.")
print()
print("| pipeline (CSV in, CSV out, map read included) | points | best of 3 | points in a ward | ioc faster by |")
print("|---|---|---|---|---|")
print(f"| `ioc wards locate` (fast CSV path, 2 cores) | {n:,} | **{ioc:.2f} s** | {ioc_found:,} | – |")
print(f"| shapely 2: bounding box + `contains_xy` per polygon, pyarrow CSV | {n:,} | {sh['by_bbox']:.2f} s | {sh['by_bbox_found']:,} | {sh['by_bbox']/ioc:.1f}× |")
print(f"| shapely 2: `STRtree.query(predicate='within')`, pyarrow CSV | {n:,} | {sh['by_tree']:.2f} s | {sh['by_tree_found']:,} | {sh['by_tree']/ioc:.1f}× |")
print()
print(f"Against shapely's best pipeline: **{best/ioc:.1f}×**.")
PY
)
echo "$table"
if [ "${1:-}" = "--write" ]; then
  python3 - "$table" <<'PY'
import sys
path = "BENCHMARKS.md"
text = open(path).read()
start = text.index("<!-- locate:start -->") + len("<!-- locate:start -->")
end = text.index("<!-- locate:end -->")
open(path, "w").write(text[:start] + "\n" + sys.argv[1] + "\n" + text[end:])
PY
  echo "BENCHMARKS.md updated" >&2
fi
