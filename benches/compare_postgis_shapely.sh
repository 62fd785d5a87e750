#!/usr/bin/env bash
# Times point-in-ward lookups on the same points, in one run, with:
#   - ioc's grid index (`ioc wards bench`, one core),
#   - PostGIS: ST_Contains with a GiST index, parallel workers off (one core),
#   - shapely 2: STRtree over the polygons, vectorised `query(points, predicate="within")`.
# Inputs: Chicago's 2023 wards and 311 points from ../shared/data (or IOC_SHARED_DATA), plus
# uniform random points over the wards' bounding box. Installs postgresql + postgis from Debian
# packages and shapely into a private venv if missing. Prints a Markdown table of the results;
# with --write it also replaces the "PostGIS and shapely" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${IOC_SHARED_DATA:-../shared/data}
WARDS="$DATA/chicago/wards_2023.geojson"
[ -f "$WARDS" ] || { echo "needs $WARDS (set IOC_SHARED_DATA)"; exit 2; }
WORK=$(mktemp -d -t ioc-compare.XXXXXX)
PGDATA="$WORK/pg"
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  if [ -d "$PGDATA" ]; then runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '==> %s\n' "$*" >&2; }

if ! ls /usr/lib/postgresql/*/lib/postgis-3.so >/dev/null 2>&1; then
  step "installing postgresql and postgis (Debian packages)"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgis >&2
fi
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n1)")
VENV=${IOC_BENCH_VENV:-$HOME/.cache/ioc-bench-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import shapely' 2>/dev/null; then
  step "installing shapely into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'shapely>=2' >&2
fi

step "building ioc (release)"
cargo build --release --locked -q
IOC=target/release/ioc

step "preparing points"
"$VENV/bin/python" - "$WARDS" "$DATA/chicago/chicago_311_sample.csv" "$WORK" <<'PY'
import csv, json, random, sys
wards, sample, work = sys.argv[1:4]
xs, ys = [], []
for f in json.load(open(wards))["features"]:
    g = f["geometry"]
    polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
    for p in polys:
        for ring in p:
            for x, y, *_ in ring:
                xs.append(x); ys.append(y)
rng = random.Random(42)
x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
with open(f"{work}/uniform.csv", "w", newline="") as out:
    w = csv.writer(out); w.writerow(["lon", "lat"])
    for _ in range(200_000):
        w.writerow([rng.uniform(x0, x1), rng.uniform(y0, y1)])
with open(sample) as src, open(f"{work}/311.csv", "w", newline="") as out:
    w = csv.writer(out); w.writerow(["lon", "lat"])
    for r in csv.DictReader(src):
        if r["latitude"] and r["longitude"]:
            w.writerow([r["longitude"], r["latitude"]])
PY

step "starting a private PostgreSQL on port $PGPORT"
mkdir -p "$PGDATA" && chown postgres "$WORK" "$PGDATA"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -A trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -o "-p $PGPORT -k $WORK -c listen_addresses=''" -l "$WORK/pg.log" start >/dev/null
PSQL=(runuser -u postgres -- psql -h "$WORK" -p "$PGPORT" -d postgres -q -v ON_ERROR_STOP=1)
chmod a+r "$WORK"/*.csv
"$VENV/bin/python" - "$WARDS" > "$WORK/wards.sql" <<'PY'
import json, sys
print("CREATE EXTENSION postgis; CREATE TABLE wards (id text, geom geometry(MultiPolygon, 4326));")
for f in json.load(open(sys.argv[1]))["features"]:
    g = json.dumps(f["geometry"]).replace("'", "''")
    print(f"INSERT INTO wards VALUES ('{f['properties']['ward']}', ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON('{g}'), 4326)));")
print("CREATE INDEX ON wards USING gist (geom); ANALYZE wards;")
PY
"${PSQL[@]}" -f "$WORK/wards.sql"

results=()
for set in uniform 311; do
  n=$(($(wc -l < "$WORK/$set.csv") - 1))
  step "$set ($n points): ioc"
  ioc_rate=$("$IOC" wards bench "$WARDS" "$WORK/$set.csv" --id-property ward --seconds 3 \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["lookups_per_second"])')

  step "$set: PostGIS"
  "${PSQL[@]}" -c "DROP TABLE IF EXISTS pts; CREATE TABLE pts (lon float8, lat float8);" \
    -c "\\copy pts FROM '$WORK/$set.csv' CSV HEADER" \
    -c "ALTER TABLE pts ADD COLUMN geom geometry(Point, 4326); UPDATE pts SET geom = ST_SetSRID(ST_MakePoint(lon, lat), 4326); ANALYZE pts;"
  pg_ms=$("${PSQL[@]}" -At -c "SET max_parallel_workers_per_gather = 0;" \
    -c "EXPLAIN (ANALYZE, FORMAT JSON) SELECT p.ctid, w.id FROM pts p LEFT JOIN wards w ON ST_Contains(w.geom, p.geom);" \
    | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[0]["Execution Time"])')
  pg_rate=$(python3 -c "print($n / ($pg_ms / 1000))")

  step "$set: shapely"
  sh_rate=$("$VENV/bin/python" - "$WARDS" "$WORK/$set.csv" <<'PY'
import json, sys, time
import numpy as np, shapely
from shapely import STRtree
polys = [shapely.from_geojson(json.dumps(f["geometry"])) for f in json.load(open(sys.argv[1]))["features"]]
for p in polys:
    shapely.prepare(p)
tree = STRtree(polys)
xy = np.loadtxt(sys.argv[2], delimiter=",", skiprows=1)
pts = shapely.points(xy[:, 0], xy[:, 1])
best = 0.0
for _ in range(3):
    t = time.perf_counter()
    tree.query(pts, predicate="within")
    best = max(best, len(pts) / (time.perf_counter() - t))
print(best)
PY
)
  results+=("$set|$n|$ioc_rate|$pg_rate|$sh_rate")
done

machine="$(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') with PostGIS $("${PSQL[@]}" -At -c 'SELECT postgis_lib_version()'); shapely $("$VENV/bin/python" -c 'import shapely; print(shapely.__version__)'); measured $(date -u +%Y-%m-%d)"
table=$(
  echo "Machine: $machine."
  echo
  echo "| points | n | ioc grid index (lookups/s) | PostGIS ST_Contains + GiST | shapely 2 STRtree | ioc ÷ PostGIS | ioc ÷ shapely |"
  echo "|---|---|---|---|---|---|---|"
  for r in "${results[@]}"; do
    IFS='|' read -r set n a b c <<<"$r"
    python3 -c "print(f'| {\"$set\"} | {$n:,} | {$a:,.0f} | {$b:,.0f} | {$c:,.0f} | {$a/$b:,.1f}× | {$a/$c:,.1f}× |')"
  done
)
echo "$table"
if [ "${1:-}" = "--write" ]; then
  python3 - "$table" <<'PY'
import re, sys
path = "BENCHMARKS.md"
text = open(path).read()
start = text.index("<!-- compare:start -->") + len("<!-- compare:start -->")
end = text.index("<!-- compare:end -->")
open(path, "w").write(text[:start] + "\n" + sys.argv[1] + "\n" + text[end:])
PY
  echo "BENCHMARKS.md updated" >&2
fi
