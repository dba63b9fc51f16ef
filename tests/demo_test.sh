#!/usr/bin/env bash
# Runs npu-demo against an emulator of its own, and fails when either fails:
# the demo's checks, or the emulator's exit status (a sanitizer report).
# Usage: demo_test.sh NPU_EMU NPU_DEMO
set -u
emu_bin=$1 demo_bin=$2
dir=$(mktemp -d /tmp/npu-emu-demotest-XXXXXX)
export NPU_EMU_SOCKET=$dir/emu.sock
"$emu_bin" --socket "$NPU_EMU_SOCKET" --profile a2 --log "$dir/emu.log" &
emu=$!
for _ in $(seq 200); do [ -S "$NPU_EMU_SOCKET" ] && break; sleep 0.05; done
"$demo_bin"
demo_status=$?
kill -TERM "$emu"
wait "$emu"
emu_status=$?
if [ "$emu_status" -ne 0 ]; then
    echo "demo_test: npu-emu exited with status $emu_status; its log:" >&2
    cat "$dir/emu.log" >&2
fi
rm -rf "$dir"
[ "$demo_status" -eq 0 ] && [ "$emu_status" -eq 0 ]
