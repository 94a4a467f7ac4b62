# Sourced by the benchmark scripts that start weir processes: builds the
# release binary ($weir), makes a scratch directory ($work), and kills the
# processes whose ids are in $pids (and removes $work) on exit; median,
# now and minus time what they run.
cargo build --release --bin weir
weir=target/release/weir
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { print a - b }'; }
