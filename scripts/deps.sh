#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test rockraft:
# clang + libclang-dev (RocksDB's bindings) and redis-tools (redis-cli, redis-benchmark);
# with --with-redis-server also Redis itself (the benchmarks' baseline and the differential
# tests' oracle) and redis-py (python3-redis, for the client tests).
set -euo pipefail
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
if [ "${1:-}" != "--build-only" ]; then
  command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
  command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
fi
if [ "${1:-}" = "--with-redis-server" ]; then
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  /usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || need+=(python3-redis)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
