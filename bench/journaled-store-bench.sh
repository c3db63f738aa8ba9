#!/usr/bin/env bash
#! journaled-store-bench.sh: store-bench (bench/src/bin/store_bench.rs) on journaled file
#! systems, the usual production setup (issue 15): a journaled ext4 and an XFS, each an image
#! on the same disk attached through a loop device, made fresh for the run and removed after.
#!
#! Each store variant is one store-bench run, so the one-file-per-message baselines are
#! measured again beside it, in the same run: `plain` (the store as it was: appending
#! segments), `prezero` (segments prepared ahead, written full of zeros and fsynced, so a
#! commit's fdatasync has no size or extent change to journal), `prezero+dsync` (the same
#! with O_DSYNC writes instead of write + fdatasync), `prezero+delay` (with a 200 us group
#! commit delay while other writers are on their way).
#!
#! Usage (as root): bench/journaled-store-bench.sh [--fs ext4,xfs] [--variants plain,prezero,...]
#!        [--seconds 2] [--rounds 3] [--writers 16,64] [--size 4G] [--no-build]
set -euo pipefail

FS_LIST=ext4,xfs
VARIANTS=plain,prezero,prezero+dsync,prezero+delay
SECONDS_EACH=2
ROUNDS=3
WRITERS=16,64
SIZE=4G
DO_BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --fs) FS_LIST="$2"; shift 2 ;;
        --variants) VARIANTS="$2"; shift 2 ;;
        --seconds) SECONDS_EACH="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --writers) WRITERS="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --no-build) DO_BUILD=0; shift ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "journaled-store-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "journaled-store-bench: needs root (mount -o loop)" >&2; exit 1; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/store-bench"
if [ "$DO_BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p mailroom-bench --bin store-bench)
fi
command -v mkfs.xfs > /dev/null || { apt-get update -qq && apt-get install -y -qq xfsprogs > /dev/null; }

WORK="$ROOT/target/bench-tmp/journaled"
MNT="$WORK/mnt"
mkdir -p "$MNT"
cleanup() {
    mountpoint -q "$MNT" && umount "$MNT"
    rm -f "$WORK"/*.img
}
trap cleanup EXIT

flags_of() {
    case "$1" in
        plain) echo "" ;;
        prezero) echo "--preallocate" ;;
        prezero+dsync) echo "--preallocate --dsync" ;;
        prezero+delay) echo "--preallocate --commit-delay-us 200" ;;
        *) echo "journaled-store-bench: unknown variant $1" >&2; exit 2 ;;
    esac
}

for fs in ${FS_LIST//,/ }; do
    img="$WORK/$fs.img"
    rm -f "$img"; truncate -s "$SIZE" "$img"
    case "$fs" in
        ext4) mkfs.ext4 -q -F -J size=128 "$img" ;;   # a journal (the root ext4 has none)
        xfs) mkfs.xfs -q -f "$img" ;;
        *) echo "journaled-store-bench: unknown file system $fs" >&2; exit 2 ;;
    esac
    mount -o loop "$img" "$MNT"
    echo "== $fs: $(findmnt -no SOURCE,FSTYPE,OPTIONS "$MNT")"
    for v in ${VARIANTS//,/ }; do
        echo "-- $fs, store variant $v"
        # shellcheck disable=SC2046
        "$BIN" --dir "$MNT" --seconds "$SECONDS_EACH" --rounds "$ROUNDS" --writers "$WRITERS" \
            $(flags_of "$v") | sed -n '/^median/,/^$/p'
    done
    umount "$MNT"; rm -f "$img"
done
