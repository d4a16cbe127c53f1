#!/usr/bin/env bash
# Pulls the models the shipped scenarios use into the Ollama of docker-compose.yml (or any Ollama
# at OLLAMA_HOST), waiting for it to answer first.
#   scripts/setup_ollama.sh [MODEL ...]        default: llama3.2:1b tinyllama
set -euo pipefail
host="${OLLAMA_HOST:-http://localhost:11434}"
case "$host" in http://*|https://*) ;; *) host="http://$host" ;; esac
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(llama3.2:1b tinyllama)
for _ in $(seq 1 60); do
  curl -sf "$host/" >/dev/null && break
  sleep 2
done
curl -sf "$host/" >/dev/null || { echo "Ollama does not answer at $host" >&2; exit 1; }
for model in "${models[@]}"; do
  echo "pulling $model"
  curl -sf "$host/api/pull" -d "{\"model\": \"$model\", \"stream\": false}" >/dev/null
done
curl -s "$host/api/tags"
echo
