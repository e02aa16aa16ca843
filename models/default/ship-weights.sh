#!/usr/bin/env bash
# Copies a training run's current EMA weights and logs into models/default/ and records
# the file's hash and size in card.json:
#   models/default/ship-weights.sh RUN_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run="${1:?usage: ship-weights.sh RUN_DIR}"
for f in ema.safetensors loss.csv val.csv config.json; do
    [ -f "$run/$f" ] || { echo "missing $run/$f" >&2; exit 1; }
done
cmp -s <(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$run/config.json") \
       <(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$here/config.json") \
    || { echo "$run was trained with another architecture than $here/config.json" >&2; exit 1; }
# The checkpoint is written atomically, so a copy is never half a file; the logs may be a
# few rows ahead of it, which is harmless.
cp "$run/ema.safetensors" "$here/model.safetensors"
cp "$run/loss.csv" "$run/val.csv" "$here/"
python3 "$here/plot_loss.py" "$here"
python3 - "$here" <<'EOF'
import hashlib, json, os, sys
d = sys.argv[1]
path = os.path.join(d, "model.safetensors")
data = open(path, "rb").read()
card_path = os.path.join(d, "card.json")
card = json.load(open(card_path))
card["sha256"] = hashlib.sha256(data).hexdigest()
card["size"] = len(data)
card["sha256_note"] = "Hash of the weights committed with this card (written by models/default/ship-weights.sh); retraining changes it."
with open(card_path, "w") as f:
    json.dump(card, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(f"model.safetensors: {len(data)} bytes, sha256 {card['sha256']}")
EOF
tail -n 1 "$here/loss.csv" | sed 's/^/last loss.csv row: /'
tail -n 1 "$here/val.csv" | sed 's/^/last val.csv row: /'
