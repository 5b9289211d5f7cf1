#!/usr/bin/env bash
# The main job on the embedded default: a local datastore that holds data but no index (as after
# `aws s3 cp` or a restore), bootstrapped by two peers. Peer 1 discovers and publishes the index and
# hydrates; peer 2 finds the index, hydrates, and writes nothing to the datastore.
set -euo pipefail
cd "$(dirname "$0")/.."
syncops=.venv/bin/syncops
work=$(mktemp -d "${TMPDIR:-/tmp}/syncops-demo.XXXXXX")
store="$work/datastore"

echo "== seeding $store: data, internal files and a namespace, but no .datastore-index.json"
mkdir -p "$store/data/models" "$store/data/raw" "$store/_control" "$store/team-b/models"
for i in 1 2 3; do printf '{"model": %d, "weights": [0.%d, 0.%d]}\n' "$i" "$i" "$i" > "$store/data/models/m$i.json"; done
head -c 1048576 /dev/urandom > "$store/data/raw/sample.bin"
printf 'x,y\n1,2\n' > "$store/data/table.csv"
touch "$store/data/.lock" "$store/data/_catalog.db" "$store/data/_catalog.db-wal"   # internal: never data
echo '{}' > "$store/_control/state.json"                                            # internal tree
echo '{"name": "team-b"}' > "$store/team-b/.namespace.json"                        # its own datastore
echo 'not ours' > "$store/team-b/models/other.json"
find "$store" -type f | sed "s|$store/|  |" | sort

echo
echo "== peer 1: $syncops bootstrap file://$store $work/peer1"
"$syncops" bootstrap "file://$store" "$work/peer1"
index="$store/.datastore-index.json"
before=$(sha256sum "$index" | cut -c1-16)
mtime_before=$(stat -c %Y.%N "$index" 2>/dev/null || stat -c %Y "$index")
echo "published index ($before…):"
sed 's/^/  /' "$index"

echo
echo "== peer 2: $syncops bootstrap file://$store $work/peer2 --json"
"$syncops" bootstrap "file://$store" "$work/peer2" --json | tee "$work/peer2.json"
after=$(sha256sum "$index" | cut -c1-16)
mtime_after=$(stat -c %Y.%N "$index" 2>/dev/null || stat -c %Y "$index")

echo
echo "== result"
echo "peer 1 files: $(find "$work/peer1" -type f ! -name .datastore-index.json | wc -l), peer 2 files: $(find "$work/peer2" -type f ! -name .datastore-index.json | wc -l)"
if [ "$before" = "$after" ] && [ "$mtime_before" = "$mtime_after" ] && grep -q '"index_written": false' "$work/peer2.json"; then
  echo "peer 2 wrote nothing: the datastore index is unchanged ($after…)"
else
  echo "peer 2 changed the datastore index ($before… -> $after…)" >&2
  exit 1
fi
diff -r --exclude=.datastore-index.json "$work/peer1" "$work/peer2" && echo "peer 1 and peer 2 hold the same bytes"

echo
echo "== the sync model: peer 2 edits data/table.csv (same size) and pushes; peer 1 has an untouched, stale copy"
printf 'x,y\n3,4\n' > "$work/peer2/data/table.csv"
"$syncops" push "file://$store" "$work/peer2"
echo "-- peer 1 pushes its stale copy: nothing is uploaded (an untouched copy never overwrites newer data)"
"$syncops" push "file://$store" "$work/peer1"
echo "-- peer 1: $syncops status (the plan; writes nothing)"
"$syncops" status "file://$store" "$work/peer1"
echo "-- peer 1 hydrates: the same-size update is fetched"
"$syncops" hydrate "file://$store" "$work/peer1"
if cmp -s "$work/peer1/data/table.csv" "$work/peer2/data/table.csv"; then
  echo "peer 1 now holds peer 2's edit"
else
  echo "peer 1 did not get peer 2's edit" >&2
  exit 1
fi
echo "(demo files are in $work)"
