# Sourced by the benchmarks that run beside task-spooler and nq (bench/throughput, bench/cli).
#   find_tsp              prints task-spooler's binary: tsp, or ts where that is task-spooler (moreutils has a ts too)
#   install_comparators   as root, installs task-spooler and nq where one is missing; 1 (with why on stderr) if still missing

find_tsp() {
  if command -v tsp >/dev/null; then command -v tsp; return; fi
  if command -v ts >/dev/null && ts -V 2>&1 </dev/null | grep -qi spooler; then command -v ts; fi
}

install_comparators() {
  [ -n "$(find_tsp)" ] && command -v nq >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "run.sh: installing task-spooler nq"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq task-spooler nq >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq task-spooler nq >/dev/null; } \
      || { echo "run.sh: could not install task-spooler/nq" >&2; return 1; }
  else
    echo "run.sh: task-spooler and/or nq missing (as root: apt-get install task-spooler nq)" >&2
    return 1
  fi
}
