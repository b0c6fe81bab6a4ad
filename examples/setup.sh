#!/usr/bin/env bash
# Creates (or refreshes) the Python virtual environment the examples train in.
#   bash examples/setup.sh            -> .venv at the repository root
#   VENV=/some/dir bash examples/setup.sh
# Idempotent: an existing venv whose requirements are already satisfied is left as is.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  "$python" -m venv "$venv"
fi

stamp="$venv/.lopper-requirements"
want="$(cat "$root"/examples/*/requirements.txt 2>/dev/null | sort -u)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$venv/bin/python" -c 'import sklearn, numpy, tensorboardX' 2>/dev/null; then
  echo "$venv is up to date"
  exit 0
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
for req in "$root"/examples/*/requirements.txt; do
  echo "installing $req"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
done
printf '%s' "$want" > "$stamp"
"$venv/bin/python" -c 'import sklearn, numpy; print("scikit-learn", sklearn.__version__, "numpy", numpy.__version__)'
