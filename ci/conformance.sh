#!/usr/bin/env bash
# The conformance matrix: runs the data-driven suite (tests/conformance.rs, cases under
# conformance/cases/) once per Envoy version — every case in both xDS variants, state of the world
# and delta — and writes target/conformance/report.{md,json} (a result column per version and variant).
#
#   ci/conformance.sh               # every version in conformance/envoy-versions
#   ci/conformance.sh 1.36.4 1.40.0 # just these
#   ISOBAR_CONFORMANCE_XDS_APIS=sotw ci/conformance.sh   # one variant only
#
# Exits non-zero if any case failed on any version (or a run produced no results).
set -uo pipefail
cd "$(dirname "$0")/.."

out=target/conformance
mkdir -p "$out"
if [ "$#" -gt 0 ]; then
    versions=("$@")
else
    mapfile -t versions < <(grep -v '^[[:space:]]*\(#\|$\)' conformance/envoy-versions | sed 's/[[:space:]]//g; /^$/d')
fi
[ "${#versions[@]}" -gt 0 ] || { echo "no Envoy versions" >&2; exit 2; }
xds_apis=${ISOBAR_CONFORMANCE_XDS_APIS:-sotw,delta}
export ISOBAR_CONFORMANCE_XDS_APIS="$xds_apis"

echo "==> conformance: building the suite"
cargo test --features e2e --test conformance --no-run || exit 1

status=0
timings="$out/timings.tsv"
: > "$timings"
for v in "${versions[@]}"; do
    results="$out/results-$v.jsonl"
    log="$out/log-$v.txt"
    rm -f "$results"
    echo "==> conformance: Envoy $v"
    started=$(date +%s)
    ISOBAR_ENVOY_VERSION="$v" ISOBAR_CONFORMANCE_REPORT="$PWD/$results" \
        cargo test --features e2e --test conformance -- --nocapture >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - started ))
    printf '%s\t%s\t%s\n' "$v" "$secs" "$rc" >> "$timings"
    grep '^conformance ' "$log" || true
    if [ "$rc" -ne 0 ]; then
        status=1
        if [ ! -s "$results" ]; then
            echo "Envoy $v: the suite produced no results (exit $rc); see $log" >&2
            tail -30 "$log" >&2
        fi
    fi
    echo "    Envoy $v: ${secs} s, exit $rc"
done

python3 - "$out" "$xds_apis" "${versions[@]}" <<'PY' || status=1
import json, sys, os
out, apis, versions = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
apis = [a.strip() for a in apis if a.strip()]
rows = []
for v in versions:
    p = os.path.join(out, f"results-{v}.jsonl")
    if os.path.exists(p):
        with open(p) as f:
            rows += [json.loads(l) for l in f if l.strip()]
timings = {}
with open(os.path.join(out, "timings.tsv")) as f:
    for line in f:
        v, secs, rc = line.rstrip("\n").split("\t")
        timings[v] = {"seconds": int(secs), "exit": int(rc)}
for r in rows:
    r.setdefault("xds_api", "sotw")
cases = sorted({r["case"] for r in rows})
columns = [(v, a) for v in versions for a in apis]
by = {(r["case"], r["version"], r["xds_api"]): r for r in rows}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump({"versions": versions, "xds_apis": apis, "timings": timings, "results": rows}, f, indent=2)
def cell(r):
    if r is None:
        return "not run"
    if not r["pass"]:
        return "**FAIL**"
    return "skip" if r["reason"].startswith("skipped") else "pass"
lines = ["# isobar conformance matrix", "",
         "Each case runs on each Envoy version in each xDS variant (`sotw`: state of the world; "
         "`delta`: incremental), a fresh isobar + Envoy each.", "",
         "| case | " + " | ".join(f"{v} {a}" for v, a in columns) + " |",
         "|---|" + "---|" * len(columns)]
for c in cases:
    lines.append(f"| {c} | " + " | ".join(cell(by.get((c, v, a))) for v, a in columns) + " |")
# Both variants of a version run in one process: its wall time spans both columns.
lines.append("| **wall time** | " + " | ".join(
    (f"{timings[v]['seconds']} s" if v in timings else "-") if a == apis[0] else "(same run)"
    for v, a in columns) + " |")
failures = [r for r in rows if not r["pass"]]
lines += ["", "## Failures", ""]
if not failures:
    lines.append("None.")
for r in failures:
    reason = r["reason"].replace("|", "\\|").replace("\n", " ")
    if len(reason) > 500:
        reason = reason[:500] + "… (full reason in report.json)"
    lines.append(f"* `{r['case']}` on Envoy {r['version']}, {r['xds_api']}: {reason}")
missing = [(c, v, a) for c in cases for v, a in columns if (c, v, a) not in by]
for c, v, a in missing:
    lines.append(f"* `{c}` on Envoy {v}, {a}: not run (see target/conformance/log-{v}.txt)")
notes = [r for r in rows if r["pass"] and r.get("note")]
if notes:
    lines += ["", "## Notes", ""]
    for r in notes:
        lines.append(f"* `{r['case']}` on Envoy {r['version']}, {r['xds_api']}: {r['note']}")
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
bad = failures or missing or not rows or any(t["exit"] for t in timings.values())
sys.exit(1 if bad else 0)
PY
echo "==> conformance: report in $out/report.md and $out/report.json"
exit "$status"
